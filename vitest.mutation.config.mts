/**
 * Vitest config for `npm run test:mutation` only: StrykerJS runs the domain's unit tests
 * (test/domain/**\/*.test.ts) against each mutant of lambdas/domain. Those tests are pure (no
 * embedded DynamoDB, no browser), so one worker suffices and each mutant's run stays short.
 * `npm test` keeps using vitest.config.mts.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/domain/**/*.test.ts'],
    testTimeout: 60_000,
    env: {
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_TRACE_ENABLED: 'false',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
    },
  },
});
