/**
 * Input that users sent and the service mishandled (issue 14), each as a named test: data
 * nested too deep, a session starting past the end of its log, numbers changed on the way
 * through; and what the fuzzer (test/http/fuzz.test.ts) found.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../support/harness';
import { recordDataTexts } from '../../lambdas/domain/json-text';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

const lastSeq = async (logId: string): Promise<number> => (await h.call('GET', `/logs/${logId}`)).body.lastSeq;

/** Receives up to `max` records and returns the raw JSON text of each one's data, by seq. */
async function receivedTexts(sessionId: string, max = 100): Promise<Map<number, string>> {
  const res = await h.send({ method: 'POST', path: `/sessions/${sessionId}/receive`, body: JSON.stringify({ maxRecords: max }) });
  expect(res.status).toBe(200);
  const seqs = (JSON.parse(res.text!) as { records: { seq: number }[] }).records.map((r) => r.seq);
  const texts = recordDataTexts(res.text!)!;
  return new Map(seqs.map((s, i) => [s, texts[i]!.text]));
}

describe('data nested too deep', () => {
  it('an append whose data nests arrays 5,000 deep is a 400 ValidationError naming the record and the limit, not a 500', async () => {
    await h.createLog('deep');
    await h.append('deep', [1]);
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const r = await h.call('POST', '/logs/deep/records', `{"records":[{"data":1},{"data":${deep}}]}`);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('ValidationError');
    expect(r.body.error.message).toBe(
      'The record at records[1] has data nested 5000 levels deep (arrays and objects); the limit is 100. Flatten it, or send the deep part as a JSON string.',
    );
    expect(await lastSeq('deep')).toBe(1);
  });

  it('data nested exactly 100 deep is appended and delivered as sent; 101 is refused', async () => {
    await h.createLog('deep100');
    const at = (n: number) => `${'{"a":'.repeat(n - 1)}[1]${'}'.repeat(n - 1)}`;
    expect((await h.call('POST', '/logs/deep100/records', `{"records":[{"data":${at(100)}}]}`)).status).toBe(201);
    const r = await h.call('POST', '/logs/deep100/records', `{"records":[{"data":${at(101)}}]}`);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/records\[0\] has data nested 101 levels deep .* the limit is 100\./);
    const sid = await h.openSession('deep100');
    expect((await receivedTexts(sid)).get(1)).toBe(at(100));
  });
});

describe('a session cannot start past the end of its log', () => {
  it('{"afterSeq": 50} on a 5-record log is a 400 ValidationError that gives lastSeq and says to use "latest"', async () => {
    await h.createLog('short');
    await h.append('short', [1, 2, 3, 4, 5]);
    const r = await h.call('POST', '/logs/short/sessions', { start: { afterSeq: 50 } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('ValidationError');
    expect(r.body.error.message).toBe(
      'The session cannot start after record 50: log \'short\' ends at lastSeq 5. Use "start": "latest" to read only records appended from now on, or {"afterSeq": n} with n <= 5.',
    );
    // Nothing was created: the sessions table holds no new item.
    const counts = await h.itemCounts();
    expect((await h.call('POST', '/logs/short/sessions', { start: { afterSeq: 6 } })).status).toBe(400);
    expect(await h.itemCounts()).toEqual(counts);
  });

  it('{"afterSeq": lastSeq} is the end of the log: the session gets every record appended after it, none skipped', async () => {
    await h.createLog('edge');
    await h.append('edge', [1, 2, 3, 4, 5]);
    const sid = await h.openSession('edge', { start: { afterSeq: 5 } });
    await h.append(
      'edge',
      Array.from({ length: 50 }, (_, i) => i + 6),
    );
    const got = await h.receive(sid, { maxRecords: 100 });
    expect(got.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 6));
  });

  it('on an empty log only afterSeq 0 is allowed', async () => {
    await h.createLog('empty');
    expect((await h.call('POST', '/logs/empty/sessions', { start: { afterSeq: 0 } })).status).toBe(201);
    const r = await h.call('POST', '/logs/empty/sessions', { start: { afterSeq: 1 } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/ends at lastSeq 0/);
  });

  it('a huge afterSeq is the same 400, never a 500', async () => {
    for (const n of ['1e20', '9007199254740993', '12345678901234567890123']) {
      const r = await h.call('POST', '/logs/short/sessions', `{"start":{"afterSeq":${n}}}`);
      expect(r.status, n).toBe(400);
      expect(r.body.error.code).toBe('ValidationError');
    }
    expect((await h.call('POST', '/logs/short/sessions', '{"start":{"afterSeq":1e400}}')).status).toBe(400);
  });
});

describe('data comes back exactly as the producer wrote it', () => {
  it('12345678901234567890123 comes back as 12345678901234567890123 and 1e400 as 1e400, not rounded or null', async () => {
    await h.createLog('numbers');
    const sent = [
      '12345678901234567890123',
      '1e400',
      '-1e400',
      '-0',
      '1.0',
      '1E+2',
      '0.1000000000000000055511151231257827',
      '{"id":9007199254740993,"price":19.90}',
      '[1e400,12345678901234567890123]',
    ];
    const body = `{ "records": [ ${sent.map((d, i) => `{ "data": ${d}${i % 2 ? ', "key": "k"' : ''} }`).join(' ,\n ')} ] }`;
    const r = await h.call('POST', '/logs/numbers/records', body);
    expect(r.status).toBe(201);
    const sid = await h.openSession('numbers');
    const got = await receivedTexts(sid);
    expect([...got.values()]).toEqual(sent);
    // Also as the raw answer reads: the number tokens themselves.
    const again = await h.send({ method: 'POST', path: `/sessions/${await h.openSession('numbers')}/receive`, body: '{"maxRecords":2}' });
    expect(again.text).toMatch(
      /^\{"records":\[\{"seq":1,"data":12345678901234567890123,"deliveryCount":1,"leaseExpiresAt":"[^"]+"\},\{"seq":2,"data":1e400,"deliveryCount":1,"leaseExpiresAt":"[^"]+","key":"k"\}\]\}$/,
    );
  });

  it('keeps strings, escapes and duplicate names as written; drops only whitespace between tokens', async () => {
    await h.createLog('texts');
    const body = '{"records":[{"data": { "b" : "x  y\\u00e9\\/" , "a" : [ 1 , 2 ] , "b" : 2 } }, {"data":"\\ud800"}]}';
    expect((await h.call('POST', '/logs/texts/records', body)).status).toBe(201);
    const got = await receivedTexts(await h.openSession('texts'));
    expect([...got.values()]).toEqual(['{"b":"x  y\\u00e9\\/","a":[1,2],"b":2}', '"\\ud800"']);
  });

  it('a duplicated "data" or "records" counts as JSON.parse counts it: the last one', async () => {
    await h.createLog('dups');
    const body = '{"records":[{"data":"not me"}],"records":[{"data":1,"data":12345678901234567890123}]}';
    expect((await h.call('POST', '/logs/dups/records', body)).body).toEqual({ firstSeq: 1, lastSeq: 1 });
    expect([...(await receivedTexts(await h.openSession('dups'))).values()]).toEqual(['12345678901234567890123']);
  });

  it('maxRecordBytes counts the text that is stored', async () => {
    await h.createLog('sized');
    h.config = { ...h.config, limits: { ...h.config.limits, maxRecordBytes: 5 } };
    try {
      expect((await h.call('POST', '/logs/sized/records', '{"records":[{"data":   1e400   }]}')).status).toBe(201); // 5 bytes stored
      const r = await h.call('POST', '/logs/sized/records', '{"records":[{"data":123456}]}');
      expect(r.status).toBe(413);
      expect(r.body.error.message).toMatch(/records\[0\] has 6 bytes/);
    } finally {
      h.config = { ...h.config, limits: { ...h.config.limits, maxRecordBytes: 262_144 } };
    }
  });

  it('an idempotent retry compares the records as stored: spacing may differ, a number token may not', async () => {
    await h.createLog('idem');
    const first = await h.call('POST', '/logs/idem/records', '{"records":[{"data":{"n":1.0}}],"idempotencyKey":"k1"}');
    expect(first.body).toEqual({ firstSeq: 1, lastSeq: 1 });
    expect(
      (await h.call('POST', '/logs/idem/records', '{ "records" : [ { "data" : { "n" : 1.0 } } ] , "idempotencyKey" : "k1" }')).body,
    ).toEqual({ firstSeq: 1, lastSeq: 1 });
    // 1 is not what the first attempt wrote (1.0): another record, so the key is reused.
    const other = await h.call('POST', '/logs/idem/records', '{"records":[{"data":{"n":1}}],"idempotencyKey":"k1"}');
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IdempotencyKeyReused');
  });
});

describe('what the fuzzer found', () => {
  it('a body of null is not an object: 400, and no log is created from it', async () => {
    const counts = await h.itemCounts();
    for (const path of ['/logs', '/logs/short/sessions']) {
      const r = await h.call('POST', path, 'null');
      expect(r.status, path).toBe(400);
      expect(r.body.error.message).toMatch(/^The request is invalid: body: .*null/);
    }
    expect(await h.itemCounts()).toEqual(counts);
  });

  it('an idempotencyKey with a lone surrogate is refused (it has no UTF-8 form, so two such keys could be one in storage)', async () => {
    await h.createLog('lone');
    const r = await h.call('POST', '/logs/lone/records', '{"records":[{"data":1}],"idempotencyKey":"\\ud800"}');
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/idempotencyKey: must be well-formed Unicode/);
    expect((await h.call('POST', '/logs/lone/records', '{"records":[{"data":1}],"idempotencyKey":"😀"}')).status).toBe(201);
  });

  it('a body that is not JSON gets a sentence saying where, without quoting the body back', async () => {
    const r = await h.call('POST', '/logs', `{"logId": "a${'x'.repeat(500)}\n"}`);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toBe(
      'The request body is not valid JSON: a raw character U+000A inside a string (control characters must be escaped) at line 1, column 513. Send a JSON object, UTF-8 encoded, with content-type application/json.',
    );
  });

  it('a compressed, UTF-16 or Latin-1 body is a 400 that names the encoding, and its bytes are never stored as U+FFFD', async () => {
    await h.createLog('enc');
    const cases: [Buffer, Record<string, string>, RegExp][] = [
      [
        Buffer.from('1f8b0800000000000003', 'hex'),
        { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        /not valid UTF-8\. It was sent with content-encoding gzip/,
      ],
      [
        Buffer.from('\uFEFF{"records":[{"data":1}]}', 'utf16le'),
        { 'content-type': 'application/json; charset=utf-16' },
        /not valid UTF-8\. It was sent as charset utf-16: send UTF-8\./,
      ],
      [
        Buffer.from('{"records":[{"data":"café"}]}', 'latin1'),
        { 'content-type': 'application/octet-stream' },
        /not valid UTF-8\. It was sent as application\/octet-stream/,
      ],
    ];
    for (const [bytes, headers, message] of cases) {
      const r = await h.send({ method: 'POST', path: '/logs/enc/records', body: bytes.toString('base64'), isBase64Encoded: true, headers });
      expect(r.status).toBe(400);
      expect(JSON.parse(r.text!).error.message).toMatch(message);
    }
    const ok = await h.send({
      method: 'POST',
      path: '/logs/enc/records',
      body: Buffer.from('{"records":[{"data":"café"}]}').toString('base64'),
      isBase64Encoded: true,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(ok.status).toBe(201);
    expect(await lastSeq('enc')).toBe(1);
  });

  it('a leading byte order mark is ignored (RFC 8259 allows it)', async () => {
    expect((await h.call('POST', '/logs', '\uFEFF{"logId":"bom"}')).status).toBe(201);
  });

  it('an error message quotes a caller-supplied id or field name at most 200 characters long', async () => {
    const long = 'x'.repeat(5000);
    const r = await h.call('POST', '/logs', { [long]: 1 });
    expect(r.status).toBe(400);
    expect(r.body.error.message.length).toBeLessThan(600);
    const s = await h.call('GET', `/sessions/s-${long}`);
    expect(s.status).toBe(404);
    expect(s.body.error.message.length).toBeLessThan(600);
  });
});
