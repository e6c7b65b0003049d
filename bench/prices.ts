/**
 * Published on-demand prices (us-east-1) the benchmark turns units and requests into, and the
 * unit sizes it measures against. Every figure is stated in the output with its source and the
 * date it was looked up.
 */

export const PRICES_LOOKED_UP = '2026-11-24';

export const PRICES = {
  region: 'us-east-1',
  lookedUp: PRICES_LOOKED_UP,
  note: `as published by AWS, looked up ${PRICES_LOOKED_UP}`,
  dynamodb: {
    /** On-demand, DynamoDB Standard table class, after the November 2024 price cut. */
    usdPerMillionWriteRequestUnits: 0.625,
    usdPerMillionReadRequestUnits: 0.125,
    source: 'https://aws.amazon.com/dynamodb/pricing/on-demand/',
    /** Where the figures were cross-checked (the AWS page renders its rate table client-side). */
    corroboratedBy: [
      'https://aws.amazon.com/dynamodb/pricing/on-demand/ (unit definitions: 1 RRU per strongly consistent read up to 4 KB, 1 WRU per write up to 1 KB)',
      'https://airbyte.com/data-engineering-resources/dynamodb-pricing (US East: $0.625 per million WRU, $0.125 per million RRU)',
    ],
  },
  lambda: {
    /** arm64, first pricing tier. */
    usdPerGbSecond: 0.0000133334,
    usdPerMillionRequests: 0.2,
    memoryGb: 0.5,
    /** Lambda bills duration rounded up to the millisecond. */
    billingGranularityMs: 1,
    source: 'https://aws.amazon.com/lambda/pricing/',
    corroboratedBy: [
      'https://app.unpkg.com/artillery@2.0.28/files/lib/platform/aws-lambda/prices.js (arm64 base rate 0.0000133334 per GB-second)',
    ],
  },
  httpApi: {
    /** First 300 million requests a month. */
    usdPerMillionRequests: 1.0,
    /** HTTP API requests are metered in 512 KB increments. */
    meteringIncrementBytes: 512 * 1024,
    source: 'https://aws.amazon.com/api-gateway/pricing/',
    corroboratedBy: [
      'https://docs.aws.amazon.com/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html (HTTP, us-east-1: first 300 million $1.00 per million; metered in 512 KB increments)',
    ],
  },
  sqs: {
    /** Standard queue, first 100 billion requests a month (the 1 million free requests ignored). */
    usdPerMillionRequests: 0.4,
    /** Each 64 KB chunk of a request's payload is billed as one request. */
    chunkBytes: 64 * 1024,
    batchSize: 10,
    source: 'https://aws.amazon.com/sqs/pricing/',
    corroboratedBy: ['https://cloudburn.io/blog/amazon-sqs-pricing (standard $0.40 per million, 64 KB chunking)'],
  },
} as const;

/** DynamoDB unit sizes (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html). */
export const UNIT = {
  writeBytes: 1024,
  /** Strongly consistent read (eventually consistent reads cost half). */
  readBytes: 4096,
} as const;

/** Minimum write units to store `bytes` of records: one unit per 1 KB, no per-item rounding. */
export const minWriteUnits = (bytes: number): number => bytes / UNIT.writeBytes;
/** Minimum strongly consistent read units to read `bytes` of records once. */
export const minReadUnits = (bytes: number): number => bytes / UNIT.readBytes;

/** Request-count cost of moving `records` of `recordBytes` through an SQS standard queue in batches of 10. */
export function sqsUsdPerMillion(recordBytes: number): {
  requestsPerBatch: number;
  chunksPerBatchPayload: number;
  usdPerMillionRecords: number;
} {
  const chunks = Math.max(1, Math.ceil((PRICES.sqs.batchSize * recordBytes) / PRICES.sqs.chunkBytes));
  // SendMessageBatch and ReceiveMessage carry the payload; DeleteMessageBatch carries receipt handles only.
  const requestsPerBatch = chunks + chunks + 1;
  const batchesPerMillion = 1e6 / PRICES.sqs.batchSize;
  return {
    requestsPerBatch,
    chunksPerBatchPayload: chunks,
    usdPerMillionRecords: (batchesPerMillion * requestsPerBatch * PRICES.sqs.usdPerMillionRequests) / 1e6,
  };
}

/** Lambda cost of one invocation of `ms` (rounded up to the billing granularity). */
export function lambdaUsdPerInvocation(ms: number): number {
  const billedMs = Math.ceil(Math.max(ms, 1) / PRICES.lambda.billingGranularityMs) * PRICES.lambda.billingGranularityMs;
  return (billedMs / 1000) * PRICES.lambda.memoryGb * PRICES.lambda.usdPerGbSecond + PRICES.lambda.usdPerMillionRequests / 1e6;
}

/** Billed HTTP API requests for one call: the larger of its request and response payloads, in 512 KB increments. */
export const httpApiMeteredRequests = (requestBytes: number, responseBytes: number): number =>
  Math.max(1, Math.ceil(Math.max(requestBytes, responseBytes) / PRICES.httpApi.meteringIncrementBytes));
