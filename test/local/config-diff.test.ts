/**
 * GET /configs/{profile}/versions/{version}?diff=N over signed HTTP on the local runtime: the
 * version as before plus `diff` (effective values, version N as control), the 400 and 404 for a
 * bad N, admin only; and the query string reaching the handler as API Gateway hands it over
 * (payload 2.0 `queryStringParameters`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../../local/server';
import type { SignedHttp } from '../../local/client';
import { startTestRuntime } from '../support/runtime';
import { queryParametersOf } from '../../local/gateway';

let rt: LocalRuntime;
let admin: SignedHttp;
let worker: SignedHttp;

beforeAll(async () => {
  ({ rt, admin, worker } = await startTestRuntime('DIFF'));
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

describe('GET /configs/{profile}/versions/{version}?diff=N on the local runtime', () => {
  it('answers the version plus its diff against N; without diff, exactly as before', async () => {
    const v2 = (await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 50, longPollIntervalMs: 250 } })).body
      .version as string;
    const v3 = (await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 20, maxBatchBytes: 4096 } })).body
      .version as string;

    const plain = await admin.call('GET', `/configs/delivery/versions/${v3}`);
    expect(plain.status).toBe(200);
    expect(plain.body).toEqual({ profile: 'delivery', version: v3, content: { maxBatchRecords: 20, maxBatchBytes: 4096 } });

    const d = await admin.call('GET', `/configs/delivery/versions/${v3}?diff=${v2}`);
    expect(d.status).toBe(200);
    expect(d.body).toEqual({
      profile: 'delivery',
      version: v3,
      content: { maxBatchRecords: 20, maxBatchBytes: 4096 },
      // v2 writes longPollIntervalMs at its default and v3 leaves it out: no difference.
      // v2 leaves maxBatchBytes out: its side is the default, 1,048,576.
      diff: [
        { path: 'maxBatchBytes', control: 1_048_576, experimental: 4096 },
        { path: 'maxBatchRecords', control: 50, experimental: 20 },
      ],
    });
    // Against version 1 (the stack's defaults), and the other way round.
    expect((await admin.call('GET', `/configs/delivery/versions/1?diff=${v2}`)).body.diff).toEqual([
      { path: 'maxBatchRecords', control: 50, experimental: 100 },
    ]);
    // Another query parameter is ignored, as before this one existed.
    expect((await admin.call('GET', `/configs/delivery/versions/${v3}?other=1`)).body).toEqual(plain.body);
  });

  it('answers 400 for a diff that is not a version number and 404 for one the profile does not have, each with a sentence', async () => {
    for (const bad of ['abc', '0', '01', '-2', '']) {
      const r = await admin.call('GET', `/configs/delivery/versions/1?diff=${bad}`);
      expect({ bad, status: r.status, code: r.body.error.code }).toEqual({ bad, status: 400, code: 'ValidationError' });
      expect(r.body.error.message).toMatch(/^The query parameter diff must be a version number such as 2/);
    }
    const missing = await admin.call('GET', '/configs/delivery/versions/1?diff=999');
    expect(missing.status).toBe(404);
    expect(missing.body.error).toEqual({
      code: 'VersionNotFound',
      message: 'Profile delivery has no version 999 to compare version 1 with (?diff=999). List the versions with GET /configs.',
    });
    expect((await admin.call('GET', '/configs/nope/versions/1?diff=1')).body.error.code).toBe('ProfileNotFound');
  });

  it('is an admin route: a worker principal gets 403', async () => {
    const r = await worker.call('GET', '/configs/delivery/versions/1?diff=1');
    expect(r.status).toBe(403);
  });
});

describe('the local gateway hands the query string over as API Gateway does', () => {
  it('decodes names and values, joins a repeated parameter with commas, and sets nothing without a query', () => {
    expect(queryParametersOf('')).toEqual({});
    expect(queryParametersOf('diff=2')).toEqual({ queryStringParameters: { diff: '2' } });
    expect(queryParametersOf('diff=1&diff=2&a%20b=c%2Bd+e&flag')).toEqual({
      queryStringParameters: { diff: '1,2', 'a b': 'c+d e', flag: '' },
    });
    // A parameter named like a prototype member is a parameter like any other.
    expect(queryParametersOf('__proto__=1').queryStringParameters).toEqual(JSON.parse('{"__proto__":"1"}'));
  });
});
