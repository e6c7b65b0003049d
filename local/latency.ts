/**
 * The storage latency model of the local runtime: N ms added to every DynamoDB call, so the
 * service (and a benchmark) can be watched with storage a network round trip away, as it is in
 * AWS, instead of in this process. It is AWS SDK middleware on the client the handlers use, so
 * the domain code does not know about it, and every attempt pays it, SDK retries included.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

export const STORAGE_LATENCY_MIDDLEWARE = 'logrelayStorageLatency';
/** The most the knob accepts (10 s per call): far past any real round trip, and catches seconds typed for ms. */
export const MAX_STORAGE_LATENCY_MS = 10_000;
export const STORAGE_LATENCY_ENV = 'LOGRELAY_STORAGE_LATENCY_MS';

/** Throws, naming `name` (the flag or variable it came from), unless `ms` is an integer in 0..10000. */
export function checkStorageLatencyMs(ms: number, name: string): number {
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_STORAGE_LATENCY_MS) {
    throw new Error(`${name} must be a whole number of milliseconds from 0 to ${MAX_STORAGE_LATENCY_MS}; it is '${ms}'.`);
  }
  return ms;
}

/** Parses the text of a flag or environment variable: digits only ("5", not "5ms", "-1" or "2.5"), 0..10000. */
export function parseStorageLatencyMs(text: string, name: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) > MAX_STORAGE_LATENCY_MS) {
    throw new Error(`${name} must be a whole number of milliseconds from 0 to ${MAX_STORAGE_LATENCY_MS}; it is '${text}'.`);
  }
  return Number(text);
}

/** LOGRELAY_STORAGE_LATENCY_MS, validated; 0 when unset or empty. */
export function storageLatencyFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[STORAGE_LATENCY_ENV];
  return text === undefined || text.trim() === '' ? 0 : parseStorageLatencyMs(text, STORAGE_LATENCY_ENV);
}

/**
 * Delays every attempt of every call `client` sends by `ms`: half before the request goes out,
 * half after its answer (or error) comes back, so a write lands mid-way through the call, as
 * it does on a real round trip, and a caller racing it sees it as late as in AWS. 0 adds no
 * middleware at all.
 */
export function addStorageLatency(client: Pick<DynamoDBClient, 'middlewareStack'>, ms: number): void {
  checkStorageLatencyMs(ms, 'the storage latency');
  if (ms === 0) return;
  const before = Math.floor(ms / 2);
  const after = ms - before;
  client.middlewareStack.add(
    (next) => async (args) => {
      await sleepAtLeast(before);
      try {
        return await next(args);
      } finally {
        await sleepAtLeast(after);
      }
    },
    {
      // The deserialize step is the innermost one: its middleware wraps exactly one HTTP
      // exchange (the next handler sends the request), and it runs inside every finalizeRequest
      // middleware, the retry middleware included, whatever their priorities. So each attempt
      // pays the latency, as each attempt is a round trip in AWS. (In finalizeRequest it would
      // be per attempt only while it sorts after the retry middleware, which is priority high.)
      step: 'deserialize',
      name: STORAGE_LATENCY_MIDDLEWARE,
    },
  );
}

/** setTimeout may fire a little early by performance.now(); this waits until `ms` have really passed. */
async function sleepAtLeast(ms: number): Promise<void> {
  const until = performance.now() + ms;
  for (let left = ms; left > 0; left = until - performance.now()) {
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(left)));
  }
}
