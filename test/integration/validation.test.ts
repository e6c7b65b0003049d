/** Every caller mistake the contract names gets its 4xx, the error envelope, and a sentence to act on. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../support/harness';

let h: Harness;
let sid: string;
beforeAll(async () => {
  h = await Harness.start();
  await h.createLog('v');
  await h.append('v', [1, 2, 3]);
  sid = await h.openSession('v');
});
afterAll(async () => h?.close());

type Case = [name: string, method: string, path: () => string, body: unknown, status: number, code: string, mention?: RegExp];
const S = () => `/sessions/${sid}`;
const big = (bytes: number) => 'x'.repeat(bytes);

const cases: Case[] = [
  ['logId with a slash-like character', 'POST', () => '/logs', { logId: 'a b' }, 400, 'ValidationError', /logId/],
  ['logId too long', 'POST', () => '/logs', { logId: 'a'.repeat(129) }, 400, 'ValidationError', /logId/],
  ['retentionHours 0', 'POST', () => '/logs', { retentionHours: 0 }, 400, 'ValidationError', /retentionHours/],
  ['retentionHours 8761', 'POST', () => '/logs', { retentionHours: 8761 }, 400, 'ValidationError', /retentionHours/],
  ['retentionHours not an integer', 'POST', () => '/logs', { retentionHours: 1.5 }, 400, 'ValidationError', /retentionHours/],
  ['unknown field (a typo)', 'POST', () => '/logs', { logid: 'x' }, 400, 'ValidationError', /logid/],
  ['body is not JSON', 'POST', () => '/logs', '{"logId": ', 400, 'ValidationError', /not valid JSON/],
  ['body is a JSON array', 'POST', () => '/logs', [1], 400, 'ValidationError'],
  ['log exists', 'POST', () => '/logs', { logId: 'v' }, 409, 'LogExists', /already exists/],
  ['unknown log', 'GET', () => '/logs/nope', undefined, 404, 'LogNotFound'],
  ['log id that cannot exist', 'GET', () => '/logs/%20', undefined, 404, 'LogNotFound'],
  ['append: no records field', 'POST', () => '/logs/v/records', {}, 400, 'ValidationError', /records/],
  ['append: empty records', 'POST', () => '/logs/v/records', { records: [] }, 400, 'ValidationError', /at least one/],
  ['append: record without data', 'POST', () => '/logs/v/records', { records: [{ key: 'k' }] }, 400, 'ValidationError', /data/],
  ['append: key not a string', 'POST', () => '/logs/v/records', { records: [{ data: 1, key: 5 }] }, 400, 'ValidationError', /key/],
  [
    'append: too many records',
    'POST',
    () => '/logs/v/records',
    { records: Array.from({ length: 501 }, () => ({ data: 1 })) },
    400,
    'ValidationError',
    /at most 500/,
  ],
  [
    'append: record over maxRecordBytes',
    'POST',
    () => '/logs/v/records',
    { records: [{ data: big(262_145) }] },
    413,
    'PayloadTooLarge',
    /records\[0\]/,
  ],
  [
    'append: request over maxRequestBytes',
    'POST',
    () => '/logs/v/records',
    { records: Array.from({ length: 5 }, () => ({ data: big(250_000) })) },
    413,
    'PayloadTooLarge',
    /limit is 1048576/,
  ],
  ['append: unknown log', 'POST', () => '/logs/nope/records', { records: [{ data: 1 }] }, 404, 'LogNotFound'],
  ['session: bad start', 'POST', () => '/logs/v/sessions', { start: 'newest' }, 400, 'ValidationError', /start/],
  ['session: negative afterSeq', 'POST', () => '/logs/v/sessions', { start: { afterSeq: -1 } }, 400, 'ValidationError', /start/],
  ['session: ackTimeoutSeconds 0', 'POST', () => '/logs/v/sessions', { ackTimeoutSeconds: 0 }, 400, 'ValidationError', /ackTimeoutSeconds/],
  [
    'session: ackTimeoutSeconds 43201',
    'POST',
    () => '/logs/v/sessions',
    { ackTimeoutSeconds: 43201 },
    400,
    'ValidationError',
    /ackTimeoutSeconds/,
  ],
  ['session: maxInFlight 10001', 'POST', () => '/logs/v/sessions', { maxInFlight: 10001 }, 400, 'ValidationError', /maxInFlight/],
  ['session: maxDeliveries 0', 'POST', () => '/logs/v/sessions', { maxDeliveries: 0 }, 400, 'ValidationError', /maxDeliveries/],
  ['session: maxDeliveries 101', 'POST', () => '/logs/v/sessions', { maxDeliveries: 101 }, 400, 'ValidationError', /maxDeliveries/],
  [
    'session: idleTimeoutSeconds 59',
    'POST',
    () => '/logs/v/sessions',
    { idleTimeoutSeconds: 59 },
    400,
    'ValidationError',
    /idleTimeoutSeconds/,
  ],
  [
    'session: idleTimeoutSeconds 604801',
    'POST',
    () => '/logs/v/sessions',
    { idleTimeoutSeconds: 604801 },
    400,
    'ValidationError',
    /idleTimeoutSeconds/,
  ],
  ['session: unknown log', 'POST', () => '/logs/nope/sessions', {}, 404, 'LogNotFound'],
  ['receive: maxRecords 0', 'POST', () => `${S()}/receive`, { maxRecords: 0 }, 400, 'ValidationError', /maxRecords/],
  ['receive: maxRecords 1001', 'POST', () => `${S()}/receive`, { maxRecords: 1001 }, 400, 'ValidationError', /maxRecords/],
  ['receive: waitSeconds 21', 'POST', () => `${S()}/receive`, { waitSeconds: 21 }, 400, 'ValidationError', /waitSeconds/],
  ['receive: unknown session', 'POST', () => '/sessions/s-AAAAAAAAAAAAAAAAAAAAAA/receive', {}, 404, 'SessionNotFound'],
  ['receive: malformed session id', 'POST', () => '/sessions/nope/receive', {}, 404, 'SessionNotFound'],
  ['ack: names nothing', 'POST', () => `${S()}/ack`, {}, 400, 'ValidationError', /seqs.*ranges/],
  ['ack: seq 0', 'POST', () => `${S()}/ack`, { seqs: [0] }, 400, 'ValidationError', /seqs/],
  ['ack: backwards range', 'POST', () => `${S()}/ack`, { ranges: [[5, 3]] }, 400, 'ValidationError', /from <= to/],
  ['ack: range of three numbers', 'POST', () => `${S()}/ack`, { ranges: [[1, 2, 3]] }, 400, 'ValidationError', /ranges/],
  ['nack: delaySeconds 43201', 'POST', () => `${S()}/nack`, { seqs: [1], delaySeconds: 43201 }, 400, 'ValidationError', /delaySeconds/],
  ['extend: no seconds', 'POST', () => `${S()}/extend`, { seqs: [1] }, 400, 'ValidationError', /seconds/],
  ['extend: seconds 0', 'POST', () => `${S()}/extend`, { seqs: [1], seconds: 0 }, 400, 'ValidationError', /seconds/],
  ['dead letters: unknown session', 'GET', () => '/sessions/s-AAAAAAAAAAAAAAAAAAAAAA/dead-letters', undefined, 404, 'SessionNotFound'],
  ['delete: unknown session', 'DELETE', () => '/sessions/s-AAAAAAAAAAAAAAAAAAAAAA', undefined, 404, 'SessionNotFound'],
];

describe('bad input', () => {
  it.each(cases)('%s', async (_name, method, path, body, status, code, mention) => {
    const before = (await h.call('GET', '/logs/v')).body.lastSeq;
    const r = await h.call(method, path(), body);
    expect(r.status).toBe(status);
    expect(r.headers['content-type']).toBe('application/json');
    expect(Object.keys(r.body)).toEqual(['error']);
    expect(r.body.error.code).toBe(code);
    expect(r.body.error.message).toMatch(/^[A-Z].{10,}\.$/); // a sentence
    if (mention) expect(r.body.error.message).toMatch(mention);
    // A rejected request loses nothing and writes nothing.
    expect((await h.call('GET', '/logs/v')).body.lastSeq).toBe(before);
  });
});
