/**
 * Fault injection (local/faults.ts): the spec and its errors, each kind against the embedded
 * store (a throttle is not applied, a lost response is, a slow call is slow, and the SDK's own
 * retries run after each), seeded replay, the runtime's knob and counts, and the HTTP edge's
 * answer when storage still fails after the SDK's retries (503 with retry-after, never a 500).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { startEmbeddedDynamo, tableSpecsFromDefs, type EmbeddedDynamo } from '../../local/dynamo';
import {
  addFaults,
  FaultInjector,
  FAULTS_MIDDLEWARE,
  formatFaultSpec,
  parseFaultSpec,
  withFaults,
  type FaultSpec,
} from '../../local/faults';
import { parseStartArgs } from '../../local/start-args';
import { startLocalRuntime } from '../../local/server';
import { SignedHttp } from '../../local/client';
import { synthTemplate, type Template } from '../../local/template';

const { specs, env: tableEnv } = tableSpecsFromDefs('faults');
const TABLE = tableEnv.LOGS_TABLE!;
const spec = (text: string): FaultSpec => parseFaultSpec(text, '--faults')!;

let plain: EmbeddedDynamo;
let template: Template;
beforeAll(async () => {
  plain = await startEmbeddedDynamo({ tables: specs });
  template = synthTemplate();
}, 120_000);
afterAll(async () => {
  await plain?.close();
});

function faulty(text: string, maxAttempts = 1): { client: DynamoDBClient; faults: FaultInjector } {
  const client = new DynamoDBClient({
    endpoint: plain.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts,
  });
  const faults = new FaultInjector(spec(text));
  addFaults(client, faults, 'dynamodb');
  return { client, faults };
}
const put = (pk: string) => new PutItemCommand({ TableName: TABLE, Item: { pk: { S: pk } } });
const exists = async (pk: string) =>
  (await plain.client.send(new GetItemCommand({ TableName: TABLE, Key: { pk: { S: pk } }, ConsistentRead: true }))).Item !== undefined;

describe('the fault spec', () => {
  it('parses every kind, the slow duration and the seed, and prints back as it parses', () => {
    const s = spec('throttle=0.05, applied-then-error=0.02,slow=0.01:800ms,seed=42');
    expect(s).toEqual({ throttle: 0.05, appliedThenError: 0.02, slow: 0.01, slowMs: 800, seed: 42, seedGiven: true });
    expect(formatFaultSpec(s)).toBe('throttle=0.05,applied-then-error=0.02,slow=0.01:800ms,seed=42');
    expect(spec(formatFaultSpec(s))).toEqual(s);
    expect(spec('slow=1:2s,seed=0')).toMatchObject({ slow: 1, slowMs: 2000, throttle: 0, appliedThenError: 0, seed: 0 });
  });

  it('draws a seed when none is given (and says so), and reads empty, off and none as no faults', () => {
    const s = spec('throttle=0.5');
    expect(s.seedGiven).toBe(false);
    expect(Number.isInteger(s.seed)).toBe(true);
    for (const off of ['', '  ', 'off', 'none']) expect(parseFaultSpec(off, '--faults')).toBeUndefined();
  });

  it.each([
    ['throtle=0.1', /--faults has an unknown fault kind 'throtle'/],
    ['throttle=1.5', /--faults gives throttle the probability '1.5', which is not a number from 0 to 1/],
    ['throttle=-0.1', /probability '-0.1'/],
    ['throttle=abc', /probability 'abc'/],
    ['throttle=', /probability ''/],
    ['slow=0.1', /slow needs a probability and a duration, e.g. slow=0.01:800ms/],
    ['slow=0.1:800us', /slow needs a probability and a duration/],
    ['slow=0.1:0ms', /slow duration of 0 ms; it must be from 1 ms to 60 s/],
    ['slow=0.1:61s', /slow duration of 61000 ms/],
    ['throttle=0.1,throttle=0.2', /names throttle twice/],
    ['seed=-1', /seed '-1', which is not a whole number/],
    ['seed=4294967296', /seed '4294967296'/],
    ['throttle', /'throttle', which is not KIND=VALUE/],
  ])('refuses %s with a message naming the flag', (text, message) => {
    expect(() => parseFaultSpec(text, '--faults')).toThrow(message);
  });

  it('npm start takes --faults, else LOGRELAY_FAULTS; the flag wins, also to turn faults off', () => {
    expect(parseStartArgs([], {})).not.toHaveProperty('faults');
    expect(parseStartArgs(['--faults', 'throttle=0.1,seed=3'], {})).toMatchObject({
      faults: { throttle: 0.1, seed: 3 },
      faultsFrom: '--faults',
    });
    expect(parseStartArgs([], { LOGRELAY_FAULTS: 'slow=0.5:10ms' })).toMatchObject({
      faults: { slow: 0.5, slowMs: 10 },
      faultsFrom: 'LOGRELAY_FAULTS',
    });
    expect(parseStartArgs(['--faults', 'off'], { LOGRELAY_FAULTS: 'throttle=1' })).not.toHaveProperty('faults');
    expect(() => parseStartArgs([], { LOGRELAY_FAULTS: 'throttle=2' })).toThrow(/LOGRELAY_FAULTS gives throttle the probability '2'/);
  });

  it('npm start refuses a bad spec before starting anything, naming the flag', () => {
    const r = spawnSync(
      process.execPath,
      [join(__dirname, '../../node_modules/tsx/dist/cli.mjs'), join(__dirname, '../../bin/local.ts'), '--faults', 'throttle=0.1,lost=0.2'],
      {
        encoding: 'utf8',
        env: { ...process.env, PORT: '0' },
        timeout: 30_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/logrelay: --faults has an unknown fault kind 'lost'/);
  }, 40_000);
});

describe('each kind against the embedded store', () => {
  it('throttle: refused before it is sent, as DynamoDB refuses it (ProvisionedThroughputExceededException, client fault, 400), not applied', async () => {
    const { client, faults } = faulty('throttle=1,seed=1');
    try {
      const e = (await client.send(put('throttled')).catch((x: unknown) => x)) as {
        name: string;
        $fault: string;
        $metadata: { httpStatusCode: number };
      };
      expect(e).toMatchObject({ name: 'ProvisionedThroughputExceededException', $fault: 'client', $metadata: { httpStatusCode: 400 } });
      expect(await exists('throttled')).toBe(false);
      expect(faults.counts()).toEqual({ throttle: 1, 'applied-then-error': 0, slow: 0 });
      expect(client.middlewareStack.identify().some((m) => m.startsWith(FAULTS_MIDDLEWARE))).toBe(true);
    } finally {
      client.destroy();
    }
  });

  it('throttle: the SDK retries it (each attempt draws its own fault)', async () => {
    const { client, faults } = faulty('throttle=1,seed=1', 3);
    try {
      const e = (await client.send(put('throttled-3')).catch((x: unknown) => x)) as { $metadata: { attempts: number } };
      expect(e.$metadata.attempts).toBe(3);
      expect(faults.counts().throttle).toBe(3);
      expect(faults.sdkRetries.dynamodb).toBe(2);
      expect(await exists('throttled-3')).toBe(false);
    } finally {
      client.destroy();
    }
  });

  it('applied-then-error: applied, then answered as a lost response (InternalServerError, server fault, 500)', async () => {
    const { client, faults } = faulty('applied-then-error=1,seed=1');
    try {
      const e = (await client.send(put('applied')).catch((x: unknown) => x)) as { name: string };
      expect(e).toMatchObject({ name: 'InternalServerError', $fault: 'server', $metadata: { httpStatusCode: 500 } });
      expect(await exists('applied')).toBe(true);
      expect(faults.counts()['applied-then-error']).toBe(1);
    } finally {
      client.destroy();
    }
  });

  it('applied-then-error: the SDK sends the write again, so a counter update is applied once per attempt', async () => {
    const { client } = faulty('applied-then-error=1,seed=1', 3);
    try {
      const update = new UpdateItemCommand({
        TableName: TABLE,
        Key: { pk: { S: 'counter' } },
        UpdateExpression: 'ADD n :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
      });
      await expect(client.send(update)).rejects.toMatchObject({ name: 'InternalServerError', $metadata: { attempts: 3 } });
      const item = await plain.client.send(new GetItemCommand({ TableName: TABLE, Key: { pk: { S: 'counter' } }, ConsistentRead: true }));
      expect(item.Item?.n?.N).toBe('3');
    } finally {
      client.destroy();
    }
  });

  it('applied-then-error: a call DynamoDB refused stays refused (nothing was applied to lose)', async () => {
    const { client, faults } = faulty('applied-then-error=1,seed=1');
    try {
      await plain.client.send(put('taken'));
      const cond = new PutItemCommand({ TableName: TABLE, Item: { pk: { S: 'taken' } }, ConditionExpression: 'attribute_not_exists(pk)' });
      await expect(client.send(cond)).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
      expect(faults.counts()['applied-then-error']).toBe(0);
    } finally {
      client.destroy();
    }
  });

  it('slow: the call takes the given time longer, and succeeds', async () => {
    const { client, faults } = faulty('slow=1:150ms,seed=1');
    try {
      const t0 = performance.now();
      await client.send(put('slow'));
      expect(performance.now() - t0).toBeGreaterThanOrEqual(145);
      expect(await exists('slow')).toBe(true);
      expect(faults.counts().slow).toBe(1);
    } finally {
      client.destroy();
    }
  });
});

describe('seeded replay', () => {
  const outcomes = async (text: string): Promise<string[]> => {
    const { client, faults } = faulty(text);
    try {
      const out: string[] = [];
      for (let i = 0; i < 60; i++) {
        // Whether a call was slowed is read from the injector's count, not from the clock: on a
        // shared machine an unslowed call can take 20 ms too. The clock checks only the lower
        // bound, which no scheduler can break: a slowed call took at least its delay.
        const slowBefore = faults.counts('dynamodb').slow;
        const t0 = performance.now();
        const r = await client.send(put(`replay-${i}`)).then(
          () => 'ok',
          (e: { name: string }) => e.name,
        );
        const slowed = faults.counts('dynamodb').slow > slowBefore;
        if (slowed) expect(performance.now() - t0).toBeGreaterThanOrEqual(24);
        out.push(`${r}${slowed ? '+slow' : ''}`);
      }
      return out;
    } finally {
      client.destroy();
    }
  };

  it('the same seed gives the same fault sequence; another seed another one', async () => {
    const text = 'throttle=0.2,applied-then-error=0.2,slow=0.2:25ms';
    const a = await outcomes(`${text},seed=7`);
    const b = await outcomes(`${text},seed=7`);
    const c = await outcomes(`${text},seed=8`);
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
    expect(new Set(a)).toEqual(
      new Set([
        'ok',
        'ProvisionedThroughputExceededException',
        'InternalServerError',
        'ok+slow',
        'ProvisionedThroughputExceededException+slow',
        'InternalServerError+slow',
      ]),
    );
  });

  it('draws three numbers a call whatever they decide, so the n-th call always gets the same faults', () => {
    const a = new FaultInjector(spec('throttle=0.3,applied-then-error=0.3,slow=0.3:5ms,seed=99'));
    const b = new FaultInjector(spec('throttle=0.3,applied-then-error=0.3,slow=0.3:5ms,seed=99'));
    const draws = Array.from({ length: 1000 }, () => a.draw());
    expect(Array.from({ length: 1000 }, () => b.draw())).toEqual(draws);
    // The rates are the spec's (within a few points over 1,000 calls); a throttle is never also a lost response.
    expect(draws.filter((d) => d.throttle).length).toBeGreaterThan(250);
    expect(draws.filter((d) => d.throttle).length).toBeLessThan(350);
    expect(draws.filter((d) => d.throttle && d.appliedThenError)).toHaveLength(0);
  });

  it('wraps a plain function standing in for an AWS call with the same model', async () => {
    const faults = new FaultInjector(spec('throttle=1,seed=1'));
    let called = 0;
    const call = withFaults(faults, 'cloudwatch', async () => ++called);
    await expect(call()).rejects.toMatchObject({ name: 'Throttling', $fault: 'client' });
    expect(called).toBe(0);
    const lost = withFaults(new FaultInjector(spec('applied-then-error=1,seed=1')), 'appconfig', async () => ++called);
    await expect(lost()).rejects.toMatchObject({ name: 'InternalServerException', $fault: 'server' });
    expect(called).toBe(1);
  });
});

describe('the local runtime with faults', () => {
  const credentials = () => {
    const path = join(mkdtempSync(join(tmpdir(), 'logrelay-faults-')), 'credentials.json');
    writeFileSync(
      path,
      JSON.stringify({
        principals: [{ name: 'f', accessKeyId: 'LRFAULTS00000000', secretAccessKey: 'faults-secret-0000000000000000000000', admin: true }],
      }),
    );
    return path;
  };

  it('has no faults by default; with a spec it exposes the injector and its counts', async () => {
    const rt = await startLocalRuntime({ port: 0, template, credentialsPath: credentials(), log: () => {}, faults: null });
    try {
      expect(rt.faults).toBeUndefined();
      expect(rt.dynamo.client.middlewareStack.identify().some((m) => m.startsWith(FAULTS_MIDDLEWARE))).toBe(false);
    } finally {
      await rt.close();
    }
  }, 60_000);

  it('storage still failing after the SDK retries answers 503 with retry-after 1, never a 500: throttled, or a lost response', async () => {
    // Rates 0 to start, so the host reads its configuration; then storage fails every call.
    const rt = await startLocalRuntime({
      port: 0,
      template,
      credentialsPath: credentials(),
      log: () => {},
      faults: spec('throttle=0,seed=1'),
    });
    try {
      const api = new SignedHttp(rt.url, rt.principals[0]!);
      expect((await api.call('POST', '/logs', { logId: 'before-faults' })).status).toBe(201);
      const rates = rt.faults!.spec;
      for (const [kind, code] of [
        ['throttle', 'StorageThrottled'],
        ['appliedThenError', 'StorageUnavailable'],
      ] as const) {
        rates.throttle = kind === 'throttle' ? 1 : 0;
        rates.appliedThenError = kind === 'appliedThenError' ? 1 : 0;
        const r = await api.call('POST', '/logs', { logId: `under-${kind}` });
        expect(r.status).toBe(503);
        expect(r.headers['retry-after']).toBe('1');
        expect(r.body.error.code).toBe(code);
      }
      expect(rt.faults!.counts('dynamodb').throttle).toBe(3);
      expect(rt.faults!.counts('dynamodb')['applied-then-error']).toBeGreaterThanOrEqual(3);
      expect(rt.faults!.sdkRetries.dynamodb).toBeGreaterThanOrEqual(4);
    } finally {
      await rt.close();
    }
  }, 60_000);

  it('puts the faults on the handlers’ AppConfig calls too (the admin routes’: data routes make none), inside the SDK’s retries', async () => {
    const rt = await startLocalRuntime({
      port: 0,
      template,
      credentialsPath: credentials(),
      log: () => {},
      faults: spec('slow=1:1ms,seed=1'),
    });
    try {
      const api = new SignedHttp(rt.url, rt.principals[0]!);
      expect((await api.call('POST', '/logs', { logId: 'slowly' })).status).toBe(201);
      expect((await api.call('POST', '/logs/slowly/records', { records: [{ data: 1 }] })).status).toBe(201);
      // Hosts serve config from the rollout item (lambdas/services/rollout.ts): no AppConfig call.
      expect(rt.faults!.calls.appconfig).toBe(0);
      expect((await api.call('POST', '/configs/limits/versions', { content: { maxRecordsPerAppend: 9 } })).status).toBe(201);
      expect((await api.call('GET', '/configs')).status).toBe(200);
      expect(rt.faults!.counts('appconfig').slow).toBeGreaterThan(0);
      expect(rt.faults!.counts('dynamodb').slow).toBeGreaterThan(0);
    } finally {
      await rt.close();
    }
  }, 60_000);
});
