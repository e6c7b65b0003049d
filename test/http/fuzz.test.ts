/**
 * Bad and unusual input, generated from openapi.json (test/support/fuzz.ts), sent to the real
 * handlers: every answer must be a success or the contract's 4xx envelope with a sentence,
 * never a 5xx; a request the schema forbids must be refused; a refused request must write
 * nothing (no storage write call, the same items in every table, the fixtures' log and session
 * unchanged); and every record an append accepted must come back from a receive byte for byte
 * as the producer wrote it (minified). Seeded: FUZZ_SEED=n replays a run; a failure prints it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@smithy/core/checksum';
import { Harness, type RawReply, type RawRequest } from '../support/harness';
import { generateCases, routesOf, type FuzzCase, type FuzzContext } from '../support/fuzz';
import { recordDataTexts } from '../../lambdas/domain/json-text';
import { prng } from '../../bench/stats';
import { STORE_READS } from '../../lambdas/ports';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';

const SEED = Number(process.env.FUZZ_SEED ?? 20261206);

const clipped = (s: string | undefined, n = 300): string =>
  s === undefined ? '(none)' : s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s;

/** What is wrong with an answer, or undefined. */
function problemWith(c: FuzzCase, res: RawReply): string | undefined {
  const { status } = res;
  if (status >= 500) return `answered ${status}`;
  if (status < 200 || (status >= 300 && status < 400)) return `answered ${status}`;
  if (c.expect === 'refused' && status < 300) return `accepted (${status}) a request the schema forbids`;
  let body: any;
  try {
    body = res.text === undefined ? undefined : JSON.parse(res.text);
  } catch {
    return `answered ${status} with a body that is not JSON`;
  }
  if (status < 300) return undefined;
  if (!/^application\/json/.test(res.headers['content-type'] ?? '')) return `a ${status} without content-type application/json`;
  if (!body || typeof body !== 'object' || Object.keys(body).join() !== 'error') return `a ${status} whose body is not {"error": ...}`;
  const { code, message } = body.error ?? {};
  if (typeof code !== 'string' || !/^[A-Z][A-Za-z0-9]*$/.test(code)) return `a ${status} with code ${JSON.stringify(code)}`;
  if (Object.keys(body.error).sort().join() !== 'code,message') return `a ${status} whose error has fields ${Object.keys(body.error)}`;
  if (typeof message !== 'string' || !/^[A-Z][\s\S]{9,}\.$/.test(message)) return `a ${status} whose message is not a sentence`;
  if (message.length > 1000) return `a ${status} whose message is ${message.length} characters long`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the check is that the message holds no control characters
  if (/[\u0000-\u001f]/.test(message)) return `a ${status} whose message holds control characters`;
  return undefined;
}

interface Tally {
  requests: number;
  byStatus: Record<number, number>;
  failures: string[];
}
const tally = (): Tally => ({ requests: 0, byStatus: {}, failures: [] });

function note(t: Tally, c: FuzzCase, res: RawReply, extra?: string): void {
  t.requests++;
  t.byStatus[res.status] = (t.byStatus[res.status] ?? 0) + 1;
  const p = extra ?? problemWith(c, res);
  if (p)
    t.failures.push(
      `${c.name}\n    ${p}\n    request: ${c.method} ${clipped(c.path, 120)} ${c.isBase64Encoded ? '(base64) ' : ''}${clipped(c.body, 200)}\n    answer: ${res.status} ${clipped(res.text)}`,
    );
}

function report(t: Tally, what: string): void {
  console.log(
    `fuzz (seed ${SEED}) ${what}: ${t.requests} requests, by status ${JSON.stringify(t.byStatus)}, ${t.failures.length} problems`,
  );
  expect(
    t.failures.slice(0, 15).join('\n\n') + (t.failures.length > 15 ? `\n\n(and ${t.failures.length - 15} more)` : ''),
    `fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`,
  ).toBe('');
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const r = prng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('fuzzed from openapi.json: the data routes, through the handlers', () => {
  let h: Harness;
  let ctx: FuzzContext;
  /** seq -> the data text the append that wrote it sent (minified). */
  const expected = new Map<number, string>();
  const send = (c: FuzzCase): Promise<RawReply> => {
    const req: RawRequest = { method: c.method, path: c.path, body: c.body, isBase64Encoded: c.isBase64Encoded };
    if (c.headers) req.headers = c.headers;
    return h.send(req);
  };

  beforeAll(async () => {
    h = await Harness.start();
    await h.createLog('fz');
    const seeded = ['1', '{"a":[1,2]}', '"s"', '12345678901234567890123', '1e400'];
    const r = await h.send({
      method: 'POST',
      path: '/logs/fz/records',
      body: `{"records":[${seeded.map((d) => `{"data":${d}}`).join(',')}]}`,
    });
    expect(r.status).toBe(201);
    for (const [i, d] of seeded.entries()) expected.set(i + 1, d);
    ctx = { logId: 'fz', sessionId: await h.openSession('fz'), lastSeq: seeded.length };
  });
  afterAll(async () => h?.close());

  const dataRoutes = () => routesOf((_m, path) => !path.startsWith('/configs') && !path.startsWith('/bakes'));
  // Deleting the fixture session would leave the rest of the run nothing to work on.
  const cases = () => generateCases(dataRoutes(), ctx, SEED, (route) => route.method !== 'DELETE', 3);

  it('covers every data route of openapi.json', () => {
    const covered = new Set(cases().map((c) => c.name.split(':')[0]));
    expect([...covered].sort()).toEqual(
      dataRoutes()
        .map((r) => `${r.method} ${r.path}`)
        .sort(),
    );
  });

  it('requests the schema forbids: each refused with the 4xx envelope, and nothing written', async () => {
    const t = tally();
    const refused = shuffled(
      cases().filter((c) => c.expect === 'refused'),
      SEED,
    );
    const state = async () => ({
      items: await h.itemCounts(),
      log: (await h.call('GET', '/logs/fz')).body,
      session: (await h.call('GET', `/sessions/${ctx.sessionId}`)).body,
    });
    const before = await state();
    for (const c of refused) {
      h.calls = [];
      const res = await send(c);
      const writes = h.calls.filter((op) => !STORE_READS.has(op));
      note(t, c, res, writes.length && res.status >= 400 ? `refused (${res.status}) but wrote: ${writes.join(', ')}` : undefined);
    }
    expect(await state()).toEqual(before);
    expect(t.requests).toBeGreaterThan(1500);
    report(t, 'forbidden requests');
  });

  it('valid requests written in unusual ways, and unusual values: a success or a 4xx; a refused one writes nothing', async () => {
    const t = tally();
    const all = cases();
    const mixed = shuffled(
      [...all.filter((c) => c.expect === 'any'), ...all.filter((c) => c.expect === 'refused').slice(0, 300)],
      SEED + 1,
    );
    for (const c of mixed) {
      h.calls = [];
      const res = await send(c);
      const writes = h.calls.filter((op) => !STORE_READS.has(op));
      note(t, c, res, writes.length && res.status >= 400 ? `refused (${res.status}) but wrote: ${writes.join(', ')}` : undefined);
      if (res.status === 201 && c.path === '/logs/fz/records' && c.storedData) {
        const { firstSeq, lastSeq } = JSON.parse(res.text!);
        expect(lastSeq - firstSeq + 1, c.name).toBe(c.storedData.length);
        for (const [i, d] of c.storedData.entries()) expected.set(firstSeq + i, d);
      }
    }
    expect(t.requests).toBeGreaterThan(400);
    report(t, 'valid and unusual requests');
  });

  it("every accepted record's data comes back exactly as it was sent (minified), big numbers and all", async () => {
    const sid = await h.openSession('fz', { start: 'oldest', maxInFlight: 10_000 });
    const got = new Map<number, string>();
    for (;;) {
      const res = await h.send({ method: 'POST', path: `/sessions/${sid}/receive`, body: '{"maxRecords":1000}' });
      expect(res.status).toBe(200);
      const { records } = JSON.parse(res.text!) as { records: { seq: number }[] };
      if (!records.length) break;
      const texts = recordDataTexts(res.text!)!;
      for (const [i, r] of records.entries()) got.set(r.seq, texts[i]!.text);
      await h.ack(sid, { ranges: [[records[0]!.seq, records[records.length - 1]!.seq]] });
    }
    const lastSeq = (await h.call('GET', '/logs/fz')).body.lastSeq;
    expect(got.size).toBe(lastSeq);
    expect(expected.size).toBeGreaterThan(1000);
    const wrong = [...expected]
      .filter(([seq, text]) => got.get(seq) !== text)
      .map(([seq, text]) => `seq ${seq}: sent ${clipped(text, 80)}, received ${clipped(got.get(seq), 80)}`);
    expect(wrong.slice(0, 10), `seed ${SEED}`).toEqual([]);
  });
});

/** A SigV4-signed request of any bytes and headers, as a client sends it over HTTP. */
async function signedRaw(rt: LocalRuntime, c: FuzzCase): Promise<RawReply> {
  const url = new URL(rt.url);
  // fetch sends no body with GET (the suite above sends GETs bodies through the handlers).
  const body =
    c.body === undefined || c.method === 'GET'
      ? undefined
      : c.isBase64Encoded
        ? Buffer.from(c.body, 'base64')
        : Buffer.from(c.body, 'utf8');
  const headers: Record<string, string> = { host: url.host, ...(c.headers ?? (body ? { 'content-type': 'application/json' } : {})) };
  const signer = new SignatureV4({ service: 'execute-api', region: 'us-east-1', credentials: rt.principals[0]!, sha256: Sha256 });
  const signed = await signer.sign({
    method: c.method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path: c.path,
    headers,
    query: {},
    ...(body ? { body } : {}),
  });
  const res = await fetch(new URL(c.path, rt.url), {
    method: c.method,
    headers: signed.headers as Record<string, string>,
    ...(body ? { body } : {}),
  });
  const out: Record<string, string> = {};
  for (const [k, v] of res.headers) out[k] = v;
  const text = await res.text();
  return { status: res.status, headers: out, text: text || undefined };
}

describe('fuzzed from openapi.json: every route over HTTP on the local runtime, admin routes included', () => {
  let rt: LocalRuntime;
  let ctx: FuzzContext;
  beforeAll(async () => {
    rt = await startLocalRuntime({
      port: 0,
      credentialsPath: join(mkdtempSync(join(tmpdir(), 'logrelay-fuzz-')), 'c.json'),
      log: () => {},
    });
    const admin = rt.principals[0]!;
    expect(admin.admin).toBe(true);
    const c = (body: string, path: string) => signedRaw(rt, { name: 'setup', method: 'POST', path, body, expect: 'any' });
    expect((await c('{"logId":"fz"}', '/logs')).status).toBe(201);
    expect((await c('{"records":[{"data":1},{"data":2}]}', '/logs/fz/records')).status).toBe(201);
    const s = await c('{}', '/logs/fz/sessions');
    ctx = { logId: 'fz', sessionId: JSON.parse(s.text!).sessionId, lastSeq: 2, profile: 'delivery', version: '1', bakeId: 'b-none' };
  });
  afterAll(async () => rt?.close());

  it('answers every case with a success or the 4xx envelope, never a 5xx', async () => {
    const t = tally();
    const admin = generateCases(
      routesOf((_m, path) => path.startsWith('/configs') || path.startsWith('/bakes')),
      ctx,
      SEED,
      // A valid POST /bakes would start a real bake; the others only read or add a version.
      (route) => !(route.method === 'POST' && route.path === '/bakes'),
    );
    // The data routes' bodies and encodings once more through the real HTTP server (paths with
    // percent-encoding are left to the suite above: the signature covers the path as encoded).
    const data = generateCases(
      routesOf((m, path) => m === 'POST' && path.startsWith('/logs/{logId}/records')),
      ctx,
      SEED,
      () => true,
    ).filter((c) => !c.path.includes('%'));
    for (const c of [...admin.filter((x) => !x.path.includes('%')), ...data]) note(t, c, await signedRaw(rt, c));
    expect(t.requests).toBeGreaterThan(300);
    report(t, 'over HTTP');
  });

  it('what it found on the admin routes: a long bake id was a 500, a version written as 01 or 0x1 was version 1, ids came back whole in messages', async () => {
    const get = (path: string) => signedRaw(rt, { name: 'found', method: 'GET', path, expect: 'refused' });
    const long = await get(`/bakes/${'x'.repeat(10_000)}`);
    expect(long.status).toBe(404); // DynamoDB refused the 10,000-byte key: 500
    expect(JSON.parse(long.text!).error.code).toBe('BakeNotFound');
    expect(JSON.parse(long.text!).error.message.length).toBeLessThan(300);
    expect(
      (await signedRaw(rt, { name: 'found', method: 'POST', path: `/bakes/${'x'.repeat(10_000)}/abort`, expect: 'refused' })).status,
    ).toBe(404);
    expect((await get('/configs/delivery/versions/1')).status).toBe(200);
    for (const v of ['01', '1e0', '0x1']) expect((await get(`/configs/delivery/versions/${v}`)).status, v).toBe(404);
  });
});
