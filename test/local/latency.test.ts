/**
 * The storage latency model (local/latency.ts): N ms on every DynamoDB call, as SDK middleware
 * paid by each attempt; none at all for 0; `npm start` refuses a value that is not 0..10000.
 * Only lower bounds are asserted: a loaded machine makes every call slower, never faster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { startEmbeddedDynamo, tableSpecsFromDefs, type EmbeddedDynamo } from '../../local/dynamo';
import { addStorageLatency, STORAGE_LATENCY_MIDDLEWARE } from '../../local/latency';
import { parseStartArgs } from '../../local/start-args';
import { startLocalRuntime } from '../../local/server';
import { SignedHttp } from '../../local/client';
import { synthTemplate } from '../../local/template';

const N = 30;
const { specs, env: tableEnv } = tableSpecsFromDefs('latency');
const get = (client: DynamoDBClient) => client.send(new GetItemCommand({ TableName: tableEnv.LOGS_TABLE!, Key: { pk: { S: 'absent' } } }));
const hasLatency = (client: DynamoDBClient) => client.middlewareStack.identify().some((m) => m.startsWith(STORAGE_LATENCY_MIDDLEWARE));

/** Each call's duration in ms, one after the other. */
async function timed(n: number, call: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    out.push(performance.now() - t0);
  }
  return out;
}

function clientOf(endpoint: string, maxAttempts = 3): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts,
  });
}

let plain: EmbeddedDynamo;
beforeAll(async () => {
  plain = await startEmbeddedDynamo({ tables: specs });
});
afterAll(async () => {
  await plain?.close();
});

describe('addStorageLatency', () => {
  it('makes every call of the client take at least N ms against the embedded store', async () => {
    const client = clientOf(plain.endpoint);
    try {
      addStorageLatency(client, N);
      expect(hasLatency(client)).toBe(true);
      const ms = await timed(5, () => get(client));
      for (const m of ms) expect(m).toBeGreaterThanOrEqual(N);
    } finally {
      client.destroy();
    }
  });

  it('is paid again by each attempt the SDK retries', async () => {
    const client = clientOf(plain.endpoint, 3);
    try {
      addStorageLatency(client, N);
      // Outside the latency (priority high in the same step): times each attempt.
      const attempts: number[] = [];
      client.middlewareStack.add(
        (next) => async (args) => {
          const t0 = performance.now();
          try {
            return await next(args);
          } finally {
            attempts.push(performance.now() - t0);
          }
        },
        { step: 'deserialize', priority: 'high', name: 'testAttemptTimer' },
      );
      // Inside it (priority low): the first attempt fails as a throttled request would.
      let failed = false;
      client.middlewareStack.add(
        (next) => async (args) => {
          if (!failed) {
            failed = true;
            throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: {} });
          }
          return next(args);
        },
        { step: 'deserialize', priority: 'low', name: 'testThrottleOnce' },
      );
      const out = await get(client);
      expect(out.$metadata.attempts).toBe(2);
      expect(attempts).toHaveLength(2);
      for (const m of attempts) expect(m).toBeGreaterThanOrEqual(N);
    } finally {
      client.destroy();
    }
  });

  it('adds no middleware for 0, and refuses what is not a whole number of ms from 0 to 10000', () => {
    const client = clientOf(plain.endpoint);
    try {
      addStorageLatency(client, 0);
      expect(hasLatency(client)).toBe(false);
      for (const bad of [-1, 2.5, 10_001, Number.NaN, Infinity])
        expect(() => addStorageLatency(client, bad)).toThrow(/storage latency must be a whole number of milliseconds from 0 to 10000/);
      expect(hasLatency(client)).toBe(false);
    } finally {
      client.destroy();
    }
  });
});

describe('startEmbeddedDynamo', () => {
  it('has no latency middleware by default', () => {
    expect(hasLatency(plain.client)).toBe(false);
  });

  it('puts storageLatencyMs on the client it returns', async () => {
    const slow = await startEmbeddedDynamo({ tables: specs, storageLatencyMs: N });
    try {
      expect(hasLatency(slow.client)).toBe(true);
      for (const m of await timed(3, () => get(slow.client))) expect(m).toBeGreaterThanOrEqual(N);
    } finally {
      await slow.close();
    }
  });
});

describe('the local runtime', () => {
  it('passes storageLatencyMs to the client its handlers use: a request that reads the store takes at least N ms', async () => {
    const rt = await startLocalRuntime({
      port: 0,
      template: synthTemplate(),
      storageLatencyMs: N,
      credentialsPath: join(mkdtempSync(join(tmpdir(), 'logrelay-test-')), 'c.json'),
      log: () => {},
    });
    try {
      expect(rt.storageLatencyMs).toBe(N);
      expect(hasLatency(rt.dynamo.client)).toBe(true);
      const api = new SignedHttp(rt.url, rt.principals[0]!);
      const ms = await timed(3, async () => expect((await api.call('GET', '/logs/absent')).status).toBe(404));
      for (const m of ms) expect(m).toBeGreaterThanOrEqual(N);
    } finally {
      await rt.close();
    }
  });

  it('refuses an invalid storageLatencyMs before starting anything', async () => {
    await expect(startLocalRuntime({ port: 0, storageLatencyMs: -5, log: () => {} })).rejects.toThrow(
      /storageLatencyMs must be a whole number/,
    );
  });
});

describe('npm start --storage-latency-ms', () => {
  const env = { PORT: '0' };

  it('takes the flag, else LOGRELAY_STORAGE_LATENCY_MS, else 0; the flag wins', () => {
    expect(parseStartArgs([], env)).toMatchObject({ help: false, storageLatencyMs: 0, storageLatencyFrom: 'default' });
    expect(parseStartArgs([], { ...env, LOGRELAY_STORAGE_LATENCY_MS: '' })).toMatchObject({
      storageLatencyMs: 0,
      storageLatencyFrom: 'default',
    });
    expect(parseStartArgs(['--storage-latency-ms', '5'], env)).toMatchObject({
      storageLatencyMs: 5,
      storageLatencyFrom: '--storage-latency-ms',
    });
    expect(parseStartArgs(['--storage-latency-ms=10000'], env)).toMatchObject({ storageLatencyMs: 10_000 });
    expect(parseStartArgs([], { ...env, LOGRELAY_STORAGE_LATENCY_MS: '7' })).toMatchObject({
      storageLatencyMs: 7,
      storageLatencyFrom: 'LOGRELAY_STORAGE_LATENCY_MS',
    });
    expect(parseStartArgs(['--storage-latency-ms', '0'], { ...env, LOGRELAY_STORAGE_LATENCY_MS: '7' })).toMatchObject({
      storageLatencyMs: 0,
      storageLatencyFrom: '--storage-latency-ms',
    });
    // The flag wins even over an invalid variable, which it makes unused.
    expect(parseStartArgs(['--storage-latency-ms', '3'], { ...env, LOGRELAY_STORAGE_LATENCY_MS: 'slow' })).toMatchObject({
      storageLatencyMs: 3,
    });
    expect(parseStartArgs(['--data-dir', '/x'], env)).toMatchObject({ dataDir: '/x', port: 0 });
    expect(parseStartArgs(['-h'], env)).toEqual({ help: true });
  });

  it('refuses a value that is not a whole number of ms from 0 to 10000, naming the flag or the variable', () => {
    for (const bad of ['-1', '2.5', '5ms', '10001', '', 'abc', '1e3']) {
      expect(() => parseStartArgs([`--storage-latency-ms=${bad}`], env)).toThrow(
        `--storage-latency-ms must be a whole number of milliseconds from 0 to 10000; it is '${bad}'.`,
      );
    }
    expect(() => parseStartArgs([], { ...env, LOGRELAY_STORAGE_LATENCY_MS: '-1' })).toThrow(
      /^LOGRELAY_STORAGE_LATENCY_MS must be a whole number/,
    );
    expect(() => parseStartArgs(['--storage-latency-ms'], env)).toThrow(/--storage-latency-ms/);
  });

  it('exits 1 with the message, before starting anything', () => {
    const root = join(__dirname, '../..');
    const r = spawnSync(
      process.execPath,
      [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, 'bin/local.ts'), '--storage-latency-ms', 'fast'],
      {
        cwd: mkdtempSync(join(tmpdir(), 'logrelay-test-')),
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toContain("logrelay: --storage-latency-ms must be a whole number of milliseconds from 0 to 10000; it is 'fast'.");
    expect(r.stdout).not.toMatch(/listening/);
  });
});
