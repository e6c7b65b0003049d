import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The JSON report lets .ci/run print a plain "N passed, N failed" line.
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest/results.json' },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites each start their own embedded DynamoDB; two cores on CI.
    maxWorkers: 2,
    env: {
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_TRACE_ENABLED: 'false',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      AWS_SUPPRESS_NODE_DEPRECATION_WARNING: 'true',
    },
  },
});
