// @ts-check
/**
 * StrykerJS mutation testing of the domain (`npm run test:mutation`, on demand; not part of
 * `npm test` or CI). Flow: Stryker mutates lambdas/domain/**\/*.ts, runs the domain's unit tests
 * (vitest.mutation.config.mts: test/domain only) once per mutant with per-test coverage, and
 * fails the command when the mutation score falls under `thresholds.break`. Reports go to
 * reports/mutation/ (git-ignored).
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.mts' },
  mutate: ['lambdas/domain/**/*.ts'],
  // Per-test coverage: each mutant runs only the tests that reach it.
  coverageAnalysis: 'perTest',
  // Two cores shared with other work: one test runner at a time.
  concurrency: 1,
  // Static mutants (module-level: an exported arrow function as a whole, a constant table) need
  // every domain test re-run in a freshly loaded module (~14 s each here); Stryker estimated them
  // at 64% of the run's test time. The 61 it ignores are marked Ignored (not in the score).
  ignoreStatic: true,
  // The whole domain each run, so the score is the tree's, not a diff's.
  incremental: false,
  ignorePatterns: ['/cdk.out', '/.logrelay', '/coverage', '/.vitest', '/dist'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: 'reports/.stryker-tmp',
  cleanTempDir: 'always',
  // The command fails (exit 1) when the score is under `break`.
  thresholds: { high: 95, low: 93, break: 93 },
};
