/**
 * Retry and backoff of the client against a scripted transport (an injected fetch) and an
 * injected sleep: no real waits, no service.
 */
import { describe, expect, it } from 'vitest';
import {
  ConflictError,
  ForbiddenError,
  LogrelayClient,
  NetworkError,
  NotFoundError,
  ServerError,
  ThrottledError,
  ValidationError,
  parseRetryAfter,
  retryDelayMs,
  retryPolicy,
  selectionBodies,
  toRanges,
  type FetchLike,
  type RetryOptions,
} from '../../client/src/index';

type Step = { status: number; body?: unknown; headers?: Record<string, string> } | { error: Error } | { status: number; bodyError: Error };

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: any;
}

/** A fetch that answers from a script, one step per request, and records what it was sent. */
function scripted(steps: Step[]) {
  const sent: Sent[] = [];
  const fetch: FetchLike = async (url, init) => {
    sent.push({ url, method: init.method, headers: init.headers, body: init.body === undefined ? undefined : JSON.parse(init.body) });
    const step = steps.shift();
    if (!step) throw new Error(`unexpected request ${init.method} ${url}: the script has no more answers`);
    if ('error' in step) throw step.error;
    const headers = Object.fromEntries(
      Object.entries('headers' in step && step.headers ? step.headers : {}).map(([k, v]) => [k.toLowerCase(), v]),
    );
    return {
      status: step.status,
      headers: { get: (name: string) => headers[name.toLowerCase()] ?? null },
      text: async () => {
        if ('bodyError' in step) throw step.bodyError;
        const b = 'body' in step ? step.body : undefined;
        return b === undefined ? '' : typeof b === 'string' ? b : JSON.stringify(b);
      },
    };
  };
  return { fetch, sent, left: () => steps.length };
}

/** What node's fetch throws: a TypeError whose cause carries the socket error's code. */
const netError = (code: string) =>
  Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(`${code} on socket`), { code }) });
const RESET = () => ({ error: netError('ECONNRESET') });
const REFUSED = () => ({ error: netError('ECONNREFUSED') });
const err = (status: number, code: string, headers?: Record<string, string>): Step => ({
  status,
  body: { error: { code, message: `${code}: a sentence a person can act on.` } },
  ...(headers ? { headers } : {}),
});

function setup(steps: Step[], retry: RetryOptions = {}, endpoint = 'http://127.0.0.1:8787') {
  const t = scripted(steps);
  const sleeps: number[] = [];
  const client = new LogrelayClient({
    endpoint,
    credentials: { accessKeyId: 'AKIDEXAMPLE00000', secretAccessKey: 'secret-secret-secret-secret' },
    fetch: t.fetch,
    retry: {
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      random: () => 0.5,
      ...retry,
    },
  });
  return { client, sent: t.sent, sleeps, left: t.left };
}

const created = { status: 201, body: { firstSeq: 1, lastSeq: 1 } };

describe('retry-after and backoff', () => {
  it('honours retry-after on 503: waits at least the seconds asked, then succeeds', async () => {
    const { client, sent, sleeps } = setup([
      err(503, 'ServiceBusy', { 'Retry-After': '2' }),
      { status: 200, body: { logId: 'a', firstSeq: 1, lastSeq: 0, retentionHours: 1, createdAt: 'x' } },
    ]);
    const log = await client.describeLog('a');
    expect(log.logId).toBe('a');
    expect(sent).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThanOrEqual(2000);
    expect(sleeps[0]).toBeLessThanOrEqual(3000); // plus at most one second of jitter
  });

  it('honours retry-after given as an HTTP date', () => {
    const now = Date.parse('2026-11-25T10:00:00Z');
    expect(parseRetryAfter('Wed, 25 Nov 2026 10:00:07 GMT', now)).toBe(7);
    expect(parseRetryAfter('3', now)).toBe(3);
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('backs off exponentially with full jitter when no retry-after is given', async () => {
    const { client, sleeps } = setup(
      [err(429, 'TooManyRequests'), err(429, 'TooManyRequests'), err(429, 'TooManyRequests'), { status: 200, body: { profiles: {} } }],
      {
        baseDelayMs: 100,
        random: () => 0.999,
      },
    );
    await client.listConfigs();
    // floor(0.999 * 100 * 2^(n-1))
    expect(sleeps).toEqual([99, 199, 399]);
    const p = retryPolicy({ baseDelayMs: 100, random: () => 0 });
    expect(retryDelayMs(3, undefined, p)).toBe(0); // full jitter reaches down to zero
  });

  it('caps each wait at maxDelayMs and the attempts at maxAttempts, then throws the last error', async () => {
    const steps = Array.from({ length: 10 }, () => err(503, 'StorageThrottled'));
    const { client, sent, sleeps, left } = setup(steps, { maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 3000, random: () => 0.999 });
    const e = await client.describeSession('s-x').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ThrottledError);
    expect(e).toMatchObject({ code: 'StorageThrottled', status: 503, attempts: 5 });
    expect(sent).toHaveLength(5);
    expect(left()).toBe(5);
    expect(sleeps).toEqual([999, 1998, 2997, 2997]);
  });

  it('does not wait out a retry-after longer than the cap: throws at once with retryAfterSeconds', async () => {
    const { client, sent, sleeps } = setup([err(503, 'ServiceBusy', { 'retry-after': '60' }), created], { maxDelayMs: 20_000 });
    const e = await client.append('orders', [{ data: 1 }]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ThrottledError);
    expect(e).toMatchObject({ retryAfterSeconds: 60, attempts: 1 });
    expect(sent).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('stops waiting when the caller aborts during a backoff', async () => {
    const ac = new AbortController();
    const t = scripted([err(429, 'TooManyRequests'), created]);
    const client = new LogrelayClient({
      endpoint: 'http://127.0.0.1:8787',
      credentials: { accessKeyId: 'AKIDEXAMPLE00000', secretAccessKey: 'secret-secret-secret-secret' },
      fetch: t.fetch,
      retry: {
        sleep: (_ms, signal) => {
          ac.abort(new Error('shutting down'));
          return signal?.aborted ? Promise.reject(signal.reason as Error) : Promise.resolve();
        },
      },
    });
    await expect(client.append('orders', [{ data: 1 }], { signal: ac.signal })).rejects.toThrow('shutting down');
    expect(t.sent).toHaveLength(1);
  });
});

describe('what is retried, and what never is', () => {
  it('appends carry a fresh idempotency key per call, reused by every retry of that call', async () => {
    const { client, sent } = setup([RESET(), err(409, 'AppendInProgress', { 'retry-after': '1' }), created, created]);
    await client.append('orders', [{ data: { a: 1 } }]);
    await client.append('orders', [{ data: { a: 2 } }]);
    expect(sent).toHaveLength(4);
    const keys = sent.map((s) => s.body.idempotencyKey as string);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
    expect(keys[2]).toBe(keys[0]);
    expect(keys[3]).not.toBe(keys[0]);
  });

  it('a keyless append is never retried after it may have been written (lost connection, 500), only when refused', async () => {
    const lost = setup([RESET(), created]);
    await expect(lost.client.append('orders', [{ data: 1 }], { idempotencyKey: false })).rejects.toBeInstanceOf(NetworkError);
    expect(lost.sent).toHaveLength(1);
    expect(lost.sent[0]!.body).toEqual({ records: [{ data: 1 }] });

    const failed = setup([err(500, 'InternalError'), created]);
    await expect(failed.client.append('orders', [{ data: 1 }], { idempotencyKey: false })).rejects.toBeInstanceOf(ServerError);
    expect(failed.sent).toHaveLength(1);

    const refused = setup([err(503, 'ServiceBusy', { 'retry-after': '1' }), REFUSED(), created]);
    expect(await refused.client.append('orders', [{ data: 1 }], { idempotencyKey: false })).toEqual({ firstSeq: 1, lastSeq: 1 });
    expect(refused.sent).toHaveLength(3);
  });

  it('a 400 is never retried, whatever the operation', async () => {
    const { client, sent, sleeps } = setup([err(400, 'ValidationError'), created]);
    const e = await client.append('orders', [{ data: 1 }]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ValidationError);
    expect(e).toMatchObject({
      code: 'ValidationError',
      status: 400,
      message: 'ValidationError: a sentence a person can act on.',
      attempts: 1,
    });
    expect(sent).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('other 4xx are typed and not retried either: 404, 409, 403 (API Gateway body too)', async () => {
    const t = setup([err(404, 'LogNotFound'), err(409, 'LogExists'), { status: 403, body: { message: 'Forbidden' } }]);
    await expect(t.client.describeLog('nope')).rejects.toBeInstanceOf(NotFoundError);
    await expect(t.client.createLog({ logId: 'dup' })).rejects.toBeInstanceOf(ConflictError);
    const e = await t.client.listConfigs().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ForbiddenError);
    expect(e).toMatchObject({ code: 'Forbidden', message: 'Forbidden', status: 403 });
    expect(t.sent).toHaveLength(3);
  });

  it('non-idempotent creates are retried when refused (429, 503, connection refused), not after a lost response or a 5xx', async () => {
    const refused = setup([
      { status: 429, body: { message: 'Too Many Requests' } },
      REFUSED(),
      err(503, 'ServiceBusy', { 'retry-after': '0' }),
      { status: 201, body: { logId: 'a', createdAt: 'x', retentionHours: 168 } },
    ]);
    expect((await refused.client.createLog({ logId: 'a' })).logId).toBe('a');
    expect(refused.sent).toHaveLength(4);

    for (const failure of [
      RESET(),
      err(502, 'BadGateway'),
      err(504, 'GatewayTimeout'),
      { status: 201, bodyError: netError('ECONNRESET') },
    ] as Step[]) {
      const t = setup([
        failure,
        { status: 201, body: { bakeId: 'b-1' } },
        { status: 201, body: { sessionId: 's-1' } },
        { status: 201, body: { profile: 'delivery', version: '2' } },
      ]);
      await expect(t.client.startBake({ changes: [{ profile: 'delivery', version: '2' }] })).rejects.toThrow();
      expect(t.sent).toHaveLength(1);
    }
    for (const op of ['createSession', 'putConfigVersion'] as const) {
      const t = setup([RESET(), { status: 201, body: { sessionId: 's-1', ackTimeoutSeconds: 30 } }]);
      const call =
        op === 'createSession' ? t.client.createSession('orders') : t.client.putConfigVersion('delivery', { maxBatchRecords: 5 });
      await expect(call).rejects.toBeInstanceOf(NetworkError);
      expect(t.sent).toHaveLength(1);
    }
  });

  it('receive, ack, nack, extend and reads are retried after lost responses and 5xx', async () => {
    const t = setup([
      { status: 200, bodyError: netError('ECONNRESET') }, // the response was cut off mid-body
      { status: 200, body: { records: [{ seq: 1, data: 'x', deliveryCount: 2, leaseExpiresAt: 'x' }] } },
      err(502, 'BadGateway'),
      { status: 200, body: { acked: 1 } },
      RESET(),
      { status: 200, body: { released: 1 } },
      err(500, 'InternalError'),
      { status: 200, body: { extended: 1 } },
      { error: Object.assign(new Error('timed out'), { name: 'TimeoutError' }) },
      { status: 200, body: { ranges: [] } },
    ]);
    expect(await t.client.receive('s-1', { maxRecords: 5 })).toHaveLength(1);
    expect(await t.client.ack('s-1', [1])).toBe(1);
    expect(await t.client.nack('s-1', [1], { delaySeconds: 3 })).toBe(1);
    expect(await t.client.extend('s-1', [1], 30)).toBe(1);
    expect(await t.client.deadLetters('s-1')).toEqual([]);
    expect(t.sent.map((s) => `${s.method} ${new URL(s.url).pathname}`)).toEqual([
      'POST /sessions/s-1/receive',
      'POST /sessions/s-1/receive',
      'POST /sessions/s-1/ack',
      'POST /sessions/s-1/ack',
      'POST /sessions/s-1/nack',
      'POST /sessions/s-1/nack',
      'POST /sessions/s-1/extend',
      'POST /sessions/s-1/extend',
      'GET /sessions/s-1/dead-letters',
      'GET /sessions/s-1/dead-letters',
    ]);
    expect(t.sent[4]!.body).toEqual({ ranges: [[1, 1]], delaySeconds: 3 });
    expect(t.sent[6]!.body).toEqual({ ranges: [[1, 1]], seconds: 30 });
  });

  it('a receive carrying acks is retried as a receive is (lost answer, 500, 503), with the same acks each time', async () => {
    const rec = { seq: 9, data: 'x', deliveryCount: 1, leaseExpiresAt: 'x' };
    const t = setup([RESET(), err(500, 'InternalError'), err(503, 'ServiceBusy'), { status: 200, body: { records: [rec], acked: 2 } }]);
    expect(await t.client.receiveAndAck('s-1', { maxRecords: 5, ack: [4, 3, 7] })).toEqual({ records: [rec], acked: 2 });
    expect(t.sent).toHaveLength(4);
    for (const s of t.sent)
      expect(s.body).toEqual({
        maxRecords: 5,
        ack: {
          ranges: [
            [3, 4],
            [7, 7],
          ],
        },
      });

    // receive() with acks returns the records only; an answer without the count is refused (its acks may not have been applied).
    const u = setup([
      { status: 200, body: { records: [rec], acked: 1 } },
      { status: 200, body: { records: [rec] } },
    ]);
    expect(await u.client.receive('s-1', { ack: { seqs: [3] } })).toEqual([rec]);
    expect(u.sent[0]!.body).toEqual({ ack: { seqs: [3] } });
    await expect(u.client.receiveAndAck('s-1', { ack: [3] })).rejects.toMatchObject({ code: 'InvalidResponse', status: 200 });
  });

  it('a throttled function (the HTTP API\'s 500 {"message":"Internal Server Error"}) is retried with backoff on receive, ack and keyed appends, never on a keyless one', async () => {
    // Lambda refused the invocation (the receive function's reserved concurrency is used up);
    // API Gateway answers 500 with its own body, the same it gives for a function that failed
    // after doing its work, so the client cannot tell the two apart and treats it as ambiguous.
    const THROTTLED: Step = { status: 500, body: { message: 'Internal Server Error' } };
    const t = setup([
      THROTTLED,
      THROTTLED,
      { status: 200, body: { records: [] } },
      THROTTLED,
      { status: 200, body: { acked: 1 } },
      THROTTLED,
      created,
    ]);
    expect(await t.client.receive('s-1', { waitSeconds: 20 })).toEqual([]);
    expect(await t.client.ack('s-1', [1])).toBe(1);
    expect(await t.client.append('orders', [{ data: 1 }])).toEqual({ firstSeq: 1, lastSeq: 1 });
    expect(t.sent).toHaveLength(7);
    // Full jitter (random 0.5) over 200 ms doubling: 100, 200 for the receive; 100 for the ack and the append.
    expect(t.sleeps).toEqual([100, 200, 100, 100]);

    const keyless = setup([THROTTLED, created]);
    const e = await keyless.client.append('orders', [{ data: 1 }], { idempotencyKey: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ServerError);
    expect(e).toMatchObject({ status: 500, code: 'InternalError', message: 'Internal Server Error', attempts: 1 });
    expect(keyless.sent).toHaveLength(1);
  });

  it('a session delete whose answer was lost counts a 404 on the retry as done; a first-attempt 404 is an error', async () => {
    const lost = setup([RESET(), err(404, 'SessionNotFound')]);
    await expect(lost.client.deleteSession('s-1')).resolves.toBeUndefined();
    expect(lost.sent).toHaveLength(2);

    const gone = setup([err(404, 'SessionNotFound')]);
    await expect(gone.client.deleteSession('s-1')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('requests', () => {
  it('are signed with SigV4 for execute-api in the endpoint region, under the endpoint path', async () => {
    const t = scripted([{ status: 200, body: { profiles: {} } }]);
    const client = new LogrelayClient({
      endpoint: 'https://abc123.execute-api.eu-west-1.amazonaws.com/prod/',
      credentials: { accessKeyId: 'AKIDEXAMPLE00000', secretAccessKey: 'secret-secret-secret-secret', sessionToken: 'token-1' },
      fetch: t.fetch,
    });
    await client.listConfigs();
    const [s] = t.sent;
    expect(s!.url).toBe('https://abc123.execute-api.eu-west-1.amazonaws.com/prod/configs');
    expect(s!.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[^,]*host[^,]*, Signature=[0-9a-f]{64}$/,
    );
    expect(s!.headers['x-amz-security-token']).toBe('token-1');
    expect(s!.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
  });

  it('send acks of many scattered records as ranges, at most 10,000 per request, and add up the counts', async () => {
    expect(toRanges([5, 3, 4, 9, 1, 9])).toEqual([
      [1, 1],
      [3, 5],
      [9, 9],
    ]);
    const seqs = Array.from({ length: 25_000 }, (_, i) => 2 * i + 1); // no two adjacent
    expect(selectionBodies(seqs).map((b) => b.ranges!.length)).toEqual([10_000, 10_000, 5_000]);
    const t = setup([
      { status: 200, body: { acked: 10_000 } },
      { status: 200, body: { acked: 10_000 } },
      { status: 200, body: { acked: 5_000 } },
    ]);
    expect(await t.client.ack('s-1', seqs)).toBe(25_000);
    expect(t.sent).toHaveLength(3);
    expect(await t.client.ack('s-1', [])).toBe(0); // nothing named: no request
    expect(t.sent).toHaveLength(3);
  });

  it('appendMany batches by count and bytes, and splits a batch the service finds too large', async () => {
    const records = Array.from({ length: 12 }, (_, i) => ({ data: 'x'.repeat(100), key: String(i) }));
    const t = setup([
      { status: 201, body: { firstSeq: 1, lastSeq: 5 } },
      err(413, 'PayloadTooLarge'),
      { status: 201, body: { firstSeq: 6, lastSeq: 8 } },
      { status: 201, body: { firstSeq: 9, lastSeq: 10 } },
      { status: 201, body: { firstSeq: 11, lastSeq: 12 } },
    ]);
    const progress: number[] = [];
    const out = await t.client.appendMany('orders', records, { maxRecordsPerRequest: 5, onProgress: (p) => progress.push(p.records) });
    expect(t.sent.map((s) => s.body.records.length)).toEqual([5, 5, 3, 2, 2]);
    expect(out).toEqual({
      records: 12,
      requests: 4,
      appends: [
        { firstSeq: 1, lastSeq: 5 },
        { firstSeq: 6, lastSeq: 8 },
        { firstSeq: 9, lastSeq: 10 },
        { firstSeq: 11, lastSeq: 12 },
      ],
    });
    expect(progress).toEqual([5, 8, 10, 12]);
    // The split halves are new appends with new keys; nothing of the refused one was written.
    expect(new Set(t.sent.map((s) => s.body.idempotencyKey)).size).toBe(5);

    const bytes = setup([created, created, created]);
    await bytes.client.appendMany('orders', records.slice(0, 6), { maxRequestBytes: 400 });
    expect(bytes.sent.map((s) => s.body.records.length)).toEqual([2, 2, 2]);
    expect(bytes.sent.every((s) => JSON.stringify(s.body).length <= 400)).toBe(true);
  });
});

describe('consume with a scripted service', () => {
  /**
   * A tiny fake of the session routes: hands out `batches` in order, then nothing; records acks
   * (on their own or carried on a receive) and nacks.
   */
  function fakeSession(batches: { seq: number; data: unknown }[][], failReceiveWith?: Step) {
    const acked: number[] = [];
    const nacked: number[] = [];
    const queue = batches.map((b) =>
      b.map((r) => ({ ...r, deliveryCount: 1, leaseExpiresAt: new Date(Date.now() + 30_000).toISOString() })),
    );
    const seqsOf = (body: any): number[] => [
      ...(body.seqs ?? []),
      ...(body.ranges ?? []).flatMap(([a, b]: [number, number]) => Array.from({ length: b - a + 1 }, (_, i) => a + i)),
    ];
    const fetch: FetchLike = async (url, init) => {
      const path = new URL(url).pathname;
      const body = init.body ? JSON.parse(init.body) : undefined;
      const reply = (status: number, b: unknown) => ({ status, headers: { get: () => null }, text: async () => JSON.stringify(b) });
      if (path.endsWith('/receive')) {
        if (failReceiveWith && 'status' in failReceiveWith)
          return reply(failReceiveWith.status, (failReceiveWith as { body: unknown }).body);
        if (!body.ack) return reply(200, { records: queue.shift() ?? [] });
        acked.push(...seqsOf(body.ack));
        return reply(200, { records: queue.shift() ?? [], acked: seqsOf(body.ack).length });
      }
      if (path.endsWith('/ack')) {
        acked.push(...seqsOf(body));
        return reply(200, { acked: seqsOf(body).length });
      }
      if (path.endsWith('/nack')) {
        nacked.push(...seqsOf(body));
        return reply(200, { released: seqsOf(body).length });
      }
      throw new Error(`unexpected ${init.method} ${path}`);
    };
    const client = new LogrelayClient({
      endpoint: 'http://127.0.0.1:8787',
      credentials: { accessKeyId: 'AKIDEXAMPLE00000', secretAccessKey: 'secret-secret-secret-secret' },
      fetch,
    });
    return { session: client.session('s-1', { ackTimeoutSeconds: 30 }), acked, nacked };
  }

  it('consumeBatches acks what the handler did not name as failed and nacks the rest', async () => {
    const f = fakeSession([[1, 2, 3].map((seq) => ({ seq, data: seq })), [4, 5].map((seq) => ({ seq, data: seq }))]);
    const batches: number[][] = [];
    const summary = await f.session.consumeBatches(
      (records) => {
        batches.push(records.map((r) => r.seq));
        if (records[0]!.seq === 4) throw new Error('the whole batch fails');
        return { failed: [2] };
      },
      { waitSeconds: 0, stopWhenEmpty: true, onError: () => {} },
    );
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    expect(f.acked.sort()).toEqual([1, 3]);
    expect(f.nacked.sort()).toEqual([2, 4, 5]);
    expect(summary).toMatchObject({ received: 5, handled: 2, failed: 3, released: 0, acked: 2 });
  });

  it('on abort, releases what it received and had not started, and acks what was running', async () => {
    const f = fakeSession([[1, 2, 3, 4, 5].map((seq) => ({ seq, data: seq }))]);
    const stop = new AbortController();
    const ran: number[] = [];
    const summary = await f.session.consume(
      async (r) => {
        ran.push(r.seq);
        stop.abort();
        await new Promise((ok) => setImmediate(ok));
      },
      { concurrency: 1, waitSeconds: 0, signal: stop.signal },
    );
    expect(ran).toEqual([1]);
    expect(f.acked).toEqual([1]);
    expect(f.nacked.sort()).toEqual([2, 3, 4, 5]);
    expect(summary).toMatchObject({ received: 5, handled: 1, failed: 0, released: 4, acked: 1 });
  });

  it('a session that is gone stops the worker with the typed error', async () => {
    const f = fakeSession([], err(404, 'SessionNotFound'));
    await expect(f.session.consume(() => undefined, { waitSeconds: 0 })).rejects.toBeInstanceOf(NotFoundError);
  });
});
