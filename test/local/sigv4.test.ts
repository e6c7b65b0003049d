import { execFile, execFileSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CredentialsFileError, loadOrCreateCredentials, type Principal } from '../../local/credentials';
import { splitRequestTarget, verifySigV4, type SigV4Request, type SigV4Result } from '../../local/sigv4';

const execFileAsync = promisify(execFile);

const alice: Principal = {
  name: 'alice',
  accessKeyId: 'LRALICE0000000000001',
  secretAccessKey: 'aliceSecretKey0123456789abcdefghijklmnop',
  admin: true,
};
const bob: Principal = {
  name: 'bob',
  accessKeyId: 'LRBOB000000000000002',
  secretAccessKey: 'bobSecretKey0123456789abcdefghijklmnopqr',
  admin: false,
};
const principals = [alice, bob];

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const HOST = 'api.local:8787';
const MIN = 60_000;

/** The SDK's query-string encoding (what a smithy client puts on the wire). */
const escapeUri = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
function wireQuery(query: Record<string, string | string[]>): string {
  return Object.keys(query)
    .sort()
    .flatMap((k) => ([] as string[]).concat(query[k]!).map((v) => `${escapeUri(k)}=${escapeUri(v)}`))
    .join('&');
}

interface ClientRequest {
  method?: string;
  /** The path as the client sends it (already %-encoded, as the SDK's HttpRequest.path is). */
  path: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  body?: string;
  signingDate?: number;
  principal?: Pick<Principal, 'accessKeyId' | 'secretAccessKey'>;
  region?: string;
  service?: string;
  /** false: like clients that send no x-amz-content-sha256 header. */
  applyChecksum?: boolean;
}

/** Signs as a client does, with the AWS SDK's SignatureV4; returns what the server receives. */
async function sdkSigned(c: ClientRequest): Promise<SigV4Request> {
  const p = c.principal ?? alice;
  const signer = new SignatureV4({
    service: c.service ?? 'execute-api',
    region: c.region ?? 'us-east-1',
    credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey },
    sha256: Sha256,
    ...(c.applyChecksum === undefined ? {} : { applyChecksum: c.applyChecksum }),
  });
  const body = c.body === undefined ? undefined : Buffer.from(c.body);
  const signed = await signer.sign(
    {
      method: c.method ?? 'GET',
      protocol: 'https:',
      hostname: 'api.local',
      path: c.path,
      query: c.query ?? {},
      headers: { host: HOST, ...(c.headers ?? {}) },
      ...(body ? { body } : {}),
    },
    { signingDate: new Date(c.signingDate ?? NOW) },
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) headers[k.toLowerCase()] = v;
  return { method: c.method ?? 'GET', path: c.path, query: wireQuery(c.query ?? {}), headers, body: body ?? Buffer.alloc(0) };
}

const verify = (req: SigV4Request, nowMs = NOW) => verifySigV4(req, principals, { nowMs, service: 'execute-api', maxSkewMs: 15 * MIN });

/** Every failure message must be something a person can act on: a sentence or two. */
function expectFailure(result: SigV4Result, code: string, pattern?: RegExp): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.code).toBe(code);
  expect(result.message).toMatch(/^[A-Z].{30,}\.$/s);
  expect(result.message).not.toMatch(/undefined|NaN|\[object/);
  if (pattern) expect(result.message).toMatch(pattern);
}

function expectPrincipal(result: SigV4Result, principal: Principal): void {
  if (!result.ok) throw new Error(`expected success, got ${result.code}: ${result.message}`);
  expect(result.principal).toEqual(principal);
}

describe('verifySigV4: requests signed with the AWS SDK', () => {
  it('accepts a signed POST with a JSON body and returns the principal', async () => {
    const req = await sdkSigned({
      method: 'POST',
      path: '/logs',
      headers: { 'content-type': 'application/json' },
      body: '{"logId":"a.b_c-d"}',
    });
    expectPrincipal(await verify(req), alice);
  });

  it('returns the principal whose key signed (a non-admin one too)', async () => {
    const req = await sdkSigned({ method: 'POST', path: '/logs', body: '{}', principal: bob });
    expectPrincipal(await verify(req), bob);
  });

  it('accepts a signed request with a query string (repeated keys, spaces, reserved characters)', async () => {
    const req = await sdkSigned({
      path: '/sessions/s-1/dead-letters',
      query: { maxRecords: '10', tag: ['b z', 'a+b', 'x/y'], 'odd key': "it's", empty: '' },
    });
    expect(req.query).toBe('empty=&maxRecords=10&odd%20key=it%27s&tag=b%20z&tag=a%2Bb&tag=x%2Fy');
    expectPrincipal(await verify(req), alice);
  });

  it('reads a raw "+" in the query as a space and "%2B" as a plus sign', async () => {
    const req = await sdkSigned({ path: '/logs/x', query: { q: 'a b', p: 'c+d' } });
    expectPrincipal(await verify({ ...req, query: 'q=a+b&p=c%2Bd' }), alice);
  });

  it('accepts clients that send no x-amz-content-sha256 header', async () => {
    const req = await sdkSigned({ method: 'POST', path: '/logs', body: '{"a":1}', applyChecksum: false });
    expect(req.headers['x-amz-content-sha256']).toBeUndefined();
    expectPrincipal(await verify(req), alice);
  });

  it('ignores headers added after signing (user-agent, accept, unsigned x-amz-*)', async () => {
    const req = await sdkSigned({ method: 'POST', path: '/logs', body: '{}' });
    req.headers = { ...req.headers, 'user-agent': 'test/1', accept: '*/*', 'x-amz-user-agent': 'aws-sdk-js/3' };
    expectPrincipal(await verify(req), alice);
  });

  it('accepts headers as Node delivers them: arrays of repeated values, mixed-case names', async () => {
    const req = await sdkSigned({ path: '/logs/x', headers: { 'x-custom': 'one,two' } });
    const { 'x-custom': _custom, host, ...rest } = req.headers as Record<string, string>;
    expectPrincipal(await verify({ ...req, headers: { ...rest, Host: host!, 'x-custom': ['one', ' two '] } }), alice);
  });

  describe('paths: the raw path is double-encoded, as AWS does for execute-api', () => {
    for (const path of ['/logs/a.b_c-d', '/logs/a.b_c-d/records', '/logs/a%20b', '/logs/caf%C3%A9', '/logs/100%25', '/logs/x~y', '/']) {
      it(`accepts ${path} signed as sent`, async () => {
        const req = await sdkSigned({ method: 'POST', path, body: '{"records":[]}' });
        expectPrincipal(await verify(req), alice);
      });
    }

    it('rejects a request whose client signed the decoded path but sent the encoded one', async () => {
      const req = await sdkSigned({ path: '/logs/a b' });
      expectFailure(await verify({ ...req, path: '/logs/a%20b' }), 'SignatureDoesNotMatch');
    });

    it('normalizes dot segments and repeated slashes as the signer does', async () => {
      const req = await sdkSigned({ path: '/logs/x' });
      expectPrincipal(await verify({ ...req, path: '/logs/./x' }), alice);
      expectPrincipal(await verify({ ...req, path: '//logs/x' }), alice);
    });
  });

  it('accepts SDK-signed requests sent over real HTTP (raw path and query from req.url)', async () => {
    const received: SigV4Result[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { path, query } = splitRequestTarget(req.url ?? '/');
        void verify({ method: req.method ?? 'GET', path, query, headers: req.headers, body: Buffer.concat(chunks) }).then((r) => {
          received.push(r);
          res.statusCode = r.ok ? 200 : 403;
          res.end();
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      for (const c of [
        { method: 'POST', path: '/logs/a%20b/records', query: { idem: 'x y', n: ['2', '1'] }, body: '{"records":[{"data":"é"}]}' },
        { method: 'GET', path: '/logs/a.b_c-d' },
        { method: 'DELETE', path: '/sessions/s%2F1' },
      ] as ClientRequest[]) {
        const signed = await sdkSigned({ ...c, headers: { 'content-type': 'application/json' } });
        const status = await new Promise<number>((resolve, reject) => {
          const { host: _host, ...headers } = signed.headers as Record<string, string>;
          const r = http.request(
            {
              host: '127.0.0.1',
              port,
              method: signed.method,
              path: signed.path + (signed.query ? `?${signed.query}` : ''),
              headers: { ...headers, host: HOST },
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          r.on('error', reject);
          r.end(signed.body);
        });
        expect(status, JSON.stringify(received.at(-1))).toBe(200);
      }
    } finally {
      server.close();
    }
  });
});

describe('verifySigV4: failures', () => {
  const post = (extra: Partial<ClientRequest> = {}) =>
    sdkSigned({
      method: 'POST',
      path: '/logs/l1/records',
      headers: { 'content-type': 'application/json' },
      body: '{"records":[{"data":1}]}',
      ...extra,
    });

  it('rejects a request signed with the wrong secret', async () => {
    const req = await post({ principal: { accessKeyId: alice.accessKeyId, secretAccessKey: 'not-the-secret-0123456789' } });
    expectFailure(
      await verify(req),
      'SignatureDoesNotMatch',
      /signature does not match.*check the secret key, the region, the service name execute-api and that the body was not changed/is,
    );
  });

  it('rejects a tampered body (with and without x-amz-content-sha256)', async () => {
    const withHash = await post();
    expectFailure(await verify({ ...withHash, body: Buffer.from('{"records":[{"data":2}]}') }), 'PayloadHashMismatch', /body/);
    const withoutHash = await post({ applyChecksum: false });
    expectFailure(
      await verify({ ...withoutHash, body: Buffer.from('{"records":[{"data":2}]}') }),
      'SignatureDoesNotMatch',
      /body was not changed/,
    );
  });

  it('rejects a tampered path, method, query or signed header', async () => {
    const req = await post({ query: { a: '1' } });
    expectFailure(await verify({ ...req, path: '/logs/l2/records' }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, method: 'PUT' }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, query: 'a=2' }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, query: '' }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, query: 'a=1&extra=1' }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, query: 'a=1&__proto__=x' }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, headers: { ...req.headers, 'content-type': 'text/plain' } }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, headers: { ...req.headers, host: 'evil.example' } }), 'SignatureDoesNotMatch');
  });

  it('rejects a signature made 16 minutes ago or 16 minutes ahead, accepts 14 minutes', async () => {
    expectFailure(await verify(await post({ signingDate: NOW - 16 * MIN })), 'RequestTimeTooSkewed', /16 minutes before.*clock/);
    expectFailure(await verify(await post({ signingDate: NOW + 16 * MIN })), 'RequestTimeTooSkewed', /16 minutes after/);
    expectPrincipal(await verify(await post({ signingDate: NOW - 14 * MIN })), alice);
    expectPrincipal(await verify(await post({ signingDate: NOW + 14 * MIN })), alice);
  });

  it('rejects an unsigned request, telling the caller how to sign', async () => {
    const r = await verify({ method: 'GET', path: '/logs/x', query: '', headers: { host: HOST }, body: Buffer.alloc(0) });
    expectFailure(
      r,
      'MissingAuthentication',
      /^The request is not signed\. Sign the request with AWS Signature Version 4 .*execute-api.*--aws-sigv4/,
    );
  });

  it('rejects an unknown access key', async () => {
    const req = await post({ principal: { accessKeyId: 'LRNOBODY000000000000', secretAccessKey: alice.secretAccessKey } });
    expectFailure(await verify(req), 'UnknownAccessKey', /LRNOBODY000000000000.*credentials/);
  });

  it('rejects a request signed for another service', async () => {
    const req = await post({ service: 'lambda' });
    expectFailure(await verify(req), 'WrongSigningService', /"lambda".*execute-api/);
  });

  it('accepts any region, but the region must be the one signed for', async () => {
    expectPrincipal(await verify(await post({ region: 'eu-west-1' })), alice);
    const req = await post({ region: 'eu-west-1' });
    const auth = String(req.headers.authorization).replace('/eu-west-1/', '/us-east-1/');
    expectFailure(await verify({ ...req, headers: { ...req.headers, authorization: auth } }), 'SignatureDoesNotMatch', /region us-east-1/);
  });

  it('rejects x-amz-content-sha256: UNSIGNED-PAYLOAD (execute-api signs the body)', async () => {
    const req = await post({ headers: { 'content-type': 'application/json', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
    expectFailure(await verify(req), 'PayloadHashMismatch', /UNSIGNED-PAYLOAD.*payload to be signed/);
  });

  describe('malformed authorization', () => {
    const cases: Array<[string, (auth: string, h: Record<string, string>) => Record<string, string | string[]>, RegExp]> = [
      ['another scheme', (_a, h) => ({ ...h, authorization: 'Bearer abc.def' }), /"Bearer", not AWS Signature Version 4/],
      ['SigV2', (_a, h) => ({ ...h, authorization: 'AWS LRALICE0000000000001:c2ln' }), /not AWS Signature Version 4/],
      ['no Signature', (a, h) => ({ ...h, authorization: a.replace(/, Signature=.*/, '') }), /has no Signature/],
      ['unknown component', (a, h) => ({ ...h, authorization: `${a}, Extra=1` }), /malformed at "Extra=1"/],
      ['short Credential', (a, h) => ({ ...h, authorization: a.replace(/\/aws4_request/, '') }), /Credential .* is malformed/],
      [
        'bad scope terminator',
        (a, h) => ({ ...h, authorization: a.replace(/aws4_request/, 'aws5_request') }),
        /must end with "aws4_request"/,
      ],
      ['non-hex Signature', (a, h) => ({ ...h, authorization: a.replace(/Signature=\w+/, 'Signature=xyz') }), /64 hexadecimal digits/],
      [
        'SignedHeaders without host',
        (a, h) => ({ ...h, authorization: a.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=x-amz-date') }),
        /Host header must be signed/,
      ],
      [
        'unsorted SignedHeaders',
        (a, h) => ({ ...h, authorization: a.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=x-amz-date;host') }),
        /alphabetical order/,
      ],
      [
        'signed header not sent',
        (a, h) => ({ ...h, authorization: a.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=host;x-amz-date;x-foo') }),
        /no x-foo header/,
      ],
      [
        'no X-Amz-Date',
        (_a, h) => {
          const { 'x-amz-date': _d, ...rest } = h;
          return rest;
        },
        /no X-Amz-Date/,
      ],
      ['bad X-Amz-Date', (_a, h) => ({ ...h, 'x-amz-date': '2024-05-01T12:00:00Z' }), /yyyymmddThhmmssZ/],
      [
        'X-Amz-Date not signed',
        (a, h) => ({ ...h, authorization: a.replace(/SignedHeaders=[^,]+/, 'SignedHeaders=host') }),
        /x-amz-date header carries the signing time/,
      ],
      ['scope date differs from X-Amz-Date', (_a, h) => ({ ...h, 'x-amz-date': '20240502T000500Z' }), /does not match the signing time/],
      ['two Authorization headers', (a, h) => ({ ...h, authorization: [a, a] }), /more than one Authorization/],
    ];
    for (const [name, mutate, pattern] of cases) {
      it(`rejects ${name} with a message that says what to fix`, async () => {
        const req = await sdkSigned({ path: '/logs/x', applyChecksum: false });
        const headers = req.headers as Record<string, string>;
        expectFailure(await verify({ ...req, headers: mutate(headers.authorization!, headers) }), 'MalformedAuthorization', pattern);
      });
    }

    it('rejects an invalid %-escape in the query string', async () => {
      const req = await sdkSigned({ path: '/logs/x' });
      expectFailure(await verify({ ...req, query: 'a=%zz' }), 'MalformedAuthorization', /invalid %-escape/);
    });

    it('rejects a request carrying both an Authorization header and a presigned signature', async () => {
      const req = await sdkSigned({ path: '/logs/x' });
      expectFailure(await verify({ ...req, query: `X-Amz-Signature=${'0'.repeat(64)}` }), 'MalformedAuthorization', /one way only/);
    });
  });
});

describe('verifySigV4: presigned URLs (X-Amz-Signature in the query)', () => {
  async function presigned(c: {
    path: string;
    query?: Record<string, string>;
    secret?: string;
    expiresIn?: number;
    method?: string;
    body?: string;
  }): Promise<SigV4Request> {
    const signer = new SignatureV4({
      service: 'execute-api',
      region: 'us-east-1',
      credentials: { accessKeyId: alice.accessKeyId, secretAccessKey: c.secret ?? alice.secretAccessKey },
      sha256: Sha256,
    });
    const body = c.body === undefined ? undefined : Buffer.from(c.body);
    const out = await signer.presign(
      {
        method: c.method ?? 'GET',
        protocol: 'https:',
        hostname: 'api.local',
        path: c.path,
        query: c.query ?? {},
        headers: { host: HOST },
        ...(body ? { body } : {}),
      },
      { signingDate: new Date(NOW), expiresIn: c.expiresIn ?? 300 },
    );
    return {
      method: c.method ?? 'GET',
      path: c.path,
      query: wireQuery(out.query as Record<string, string>),
      headers: { host: HOST, 'user-agent': 'x' },
      body: body ?? Buffer.alloc(0),
    };
  }

  it('accepts a URL presigned by the SDK, with its own query parameters and a body', async () => {
    expectPrincipal(await verify(await presigned({ path: '/sessions/s%201', query: { a: 'b c' } })), alice);
    expectPrincipal(await verify(await presigned({ path: '/logs', method: 'POST', body: '{"a":1}' })), alice);
  });

  it('rejects an expired presigned URL, a tampered one and a wrong secret', async () => {
    const req = await presigned({ path: '/logs/x', query: { a: '1' }, expiresIn: 300 });
    expectPrincipal(await verify(req, NOW + 299_000), alice);
    expectFailure(await verify(req, NOW + 301_000), 'PresignedUrlExpired', /expired at 20240501T120500Z.*Presign the URL again/);
    expectFailure(await verify({ ...req, query: req.query.replace('a=1', 'a=2') }), 'SignatureDoesNotMatch');
    expectFailure(await verify({ ...req, path: '/logs/y' }), 'SignatureDoesNotMatch');
    expectFailure(await verify(await presigned({ path: '/logs/x', secret: 'wrong-secret-0123456789' })), 'SignatureDoesNotMatch');
  });

  it('rejects a presigned URL missing a parameter, or with a bad X-Amz-Expires', async () => {
    const req = await presigned({ path: '/logs/x' });
    expectFailure(
      await verify({ ...req, query: req.query.replace(/X-Amz-Date=[^&]+&?/, '') }),
      'MalformedAuthorization',
      /exactly one X-Amz-Date/,
    );
    expectFailure(
      await verify({ ...req, query: req.query.replace(/X-Amz-Expires=\d+/, 'X-Amz-Expires=999999') }),
      'MalformedAuthorization',
      /one week/,
    );
  });
});

/**
 * An independent SigV4 implementation, written from AWS's documentation, used only as a test
 * oracle: for the Date-header form (which the SDK never produces) and to pin the canonical path.
 */
function oracleSign(o: {
  method: string;
  canonicalPath: string;
  canonicalQuery: string;
  headers: Record<string, string>;
  body: string;
  longDate: string;
  secret: string;
  accessKeyId: string;
  region?: string;
}): string {
  const region = o.region ?? 'us-east-1';
  const names = Object.keys(o.headers).sort();
  const canonical = [
    o.method,
    o.canonicalPath,
    o.canonicalQuery,
    `${names.map((n) => `${n}:${o.headers[n]!.trim()}`).join('\n')}\n`,
    names.join(';'),
    createHash('sha256').update(o.body).digest('hex'),
  ].join('\n');
  const scope = `${o.longDate.slice(0, 8)}/${region}/execute-api/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', o.longDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = Buffer.from(`AWS4${o.secret}`);
  for (const part of [o.longDate.slice(0, 8), region, 'execute-api', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(stringToSign).digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${o.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
}

describe('verifySigV4 against an independent SigV4 oracle', () => {
  it('agrees that the raw path "/logs/a%20b" is canonicalized as "/logs/a%2520b" (double encoding)', async () => {
    const headers = { host: HOST, 'x-amz-date': '20240501T120000Z' };
    const authorization = oracleSign({
      method: 'GET',
      canonicalPath: '/logs/a%2520b',
      canonicalQuery: 'a=1&b=x%20y',
      headers,
      body: '',
      longDate: '20240501T120000Z',
      secret: alice.secretAccessKey,
      accessKeyId: alice.accessKeyId,
    });
    const req: SigV4Request = {
      method: 'GET',
      path: '/logs/a%20b',
      query: 'b=x%20y&a=1',
      headers: { ...headers, authorization },
      body: Buffer.alloc(0),
    };
    expectPrincipal(await verify(req), alice);
    // And the same request as an SDK client signs it.
    expect((await sdkSigned({ path: '/logs/a%20b', query: { a: '1', b: 'x y' }, applyChecksum: false })).headers.authorization).toBe(
      authorization,
    );
  });

  it('accepts a request that carries its signing time in a Date header instead of X-Amz-Date', async () => {
    const date = 'Wed, 01 May 2024 12:00:00 GMT';
    const headers = { host: HOST, date, 'content-type': 'application/json' };
    const body = '{"a":1}';
    const authorization = oracleSign({
      method: 'POST',
      canonicalPath: '/logs',
      canonicalQuery: '',
      headers,
      body,
      longDate: '20240501T120000Z',
      secret: bob.secretAccessKey,
      accessKeyId: bob.accessKeyId,
    });
    const req: SigV4Request = { method: 'POST', path: '/logs', query: '', headers: { ...headers, authorization }, body: Buffer.from(body) };
    expectPrincipal(await verify(req), bob);
    expectFailure(await verify({ ...req, body: Buffer.from('{"a":2}') }), 'SignatureDoesNotMatch');
    expectFailure(await verify(req, NOW + 20 * MIN), 'RequestTimeTooSkewed', /from the date header/);
  });

  it('accepts a request that signs both Date and X-Amz-Date', async () => {
    const headers = { host: HOST, date: 'Wed, 01 May 2024 12:00:00 GMT', 'x-amz-date': '20240501T120000Z' };
    const authorization = oracleSign({
      method: 'GET',
      canonicalPath: '/logs/x',
      canonicalQuery: '',
      headers,
      body: '',
      longDate: '20240501T120000Z',
      secret: alice.secretAccessKey,
      accessKeyId: alice.accessKeyId,
    });
    expectPrincipal(
      await verify({ method: 'GET', path: '/logs/x', query: '', headers: { ...headers, authorization }, body: Buffer.alloc(0) }),
      alice,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Real curl --aws-sigv4 against a tiny server that runs verifySigV4.

/** LOGRELAY_TEST_CURL may name another curl binary (for example a newer build). */
const CURL = process.env.LOGRELAY_TEST_CURL ?? 'curl';
const curlVersion = ((): [number, number, number] | undefined => {
  try {
    const m = /^curl (\d+)\.(\d+)\.(\d+)/.exec(execFileSync(CURL, ['--version'], { encoding: 'utf8' }));
    return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
  } catch {
    return undefined;
  }
})();
const atLeast = (v: [number, number, number]) =>
  !!curlVersion && (curlVersion[0] - v[0] || curlVersion[1] - v[1] || curlVersion[2] - v[2]) >= 0;
/** --aws-sigv4 arrived in curl 7.75.0. */
const curlHasSigV4 = atLeast([7, 75, 0]);
/*
 * Before 8.14.0 curl did not canonicalize like AWS: it signed an escaped path without the
 * second encoding (fixed in 8.9.0), and the query unsorted and unencoded (8.3.0, valueless
 * parameters 8.5.0). API Gateway rejects those signatures, and so does the local runtime; the
 * README says so. Debian 12's curl is 7.88, so only canonical requests are tested with curl.
 */

describe(`real curl --aws-sigv4 (${CURL}: ${curlVersion?.join('.') ?? 'not found'})`, () => {
  let server: http.Server;
  let base: string;

  it('curl on this machine signs with --aws-sigv4 (7.75 or newer; .ci/run installs curl)', () => {
    expect(curlHasSigV4, `curl version ${curlVersion?.join('.') ?? 'not found'}`).toBe(true);
  });
  const seen: SigV4Result[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { path, query } = splitRequestTarget(req.url ?? '/');
        // The curl tests sign with the real clock.
        void verifySigV4({ method: req.method ?? 'GET', path, query, headers: req.headers, body: Buffer.concat(chunks) }, principals, {
          nowMs: Date.now(),
          service: 'execute-api',
          maxSkewMs: 15 * MIN,
        }).then((r) => {
          seen.push(r);
          res.writeHead(r.ok ? 200 : 403, { 'content-type': 'application/json' });
          res.end(JSON.stringify(r.ok ? { principal: r.principal.name } : { error: { code: r.code, message: r.message } }));
        });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  afterEach(() => {
    seen.length = 0;
  });

  async function curl(args: string[], user = `${alice.accessKeyId}:${alice.secretAccessKey}`): Promise<number> {
    const { stdout } = await execFileAsync(CURL, [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--aws-sigv4',
      'aws:amz:us-east-1:execute-api',
      '--user',
      user,
      ...args,
    ]);
    return Number(stdout);
  }
  const why = () => JSON.stringify(seen.at(-1));

  it('POST /logs with a JSON body: 200', async () => {
    expect(await curl(['-H', 'content-type: application/json', '-d', '{"a":1}', `${base}/logs`]), why()).toBe(200);
    expect(seen.at(-1)).toMatchObject({ ok: true, principal: { name: 'alice' } });
  });

  it('a wrong secret: 403', async () => {
    expect(
      await curl(['-H', 'content-type: application/json', '-d', '{"a":1}', `${base}/logs`], `${alice.accessKeyId}:wrong-secret-0123456789`),
    ).toBe(403);
    expect(seen.at(-1)).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
  });

  it('an unknown key: 403; no signature at all: 403', async () => {
    expect(await curl([`${base}/logs/x`], `LRNOBODY000000000000:${alice.secretAccessKey}`)).toBe(403);
    expect(seen.at(-1)).toMatchObject({ ok: false, code: 'UnknownAccessKey' });
    const { stdout } = await execFileAsync(CURL, ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${base}/logs/x`]);
    expect(Number(stdout)).toBe(403);
    expect(seen.at(-1)).toMatchObject({ ok: false, code: 'MissingAuthentication' });
  });

  it('GET with a path parameter, a non-admin principal: 200', async () => {
    expect(await curl([`${base}/logs/a.b_c-d`], `${bob.accessKeyId}:${bob.secretAccessKey}`), why()).toBe(200);
    expect(seen.at(-1)).toMatchObject({ ok: true, principal: { name: 'bob' } });
  });

  it('POST with a path parameter and DELETE: 200', async () => {
    expect(
      await curl(['-H', 'content-type: application/json', '-d', '{"records":[{"data":{"k":"v"}}]}', `${base}/logs/l-1/records`]),
      why(),
    ).toBe(200);
    expect(await curl(['-X', 'DELETE', `${base}/sessions/s_1`]), why()).toBe(200);
  });

  it('a query string already in canonical form (sorted, encoded): 200', async () => {
    expect(await curl([`${base}/sessions/s1/dead-letters?a=1&b=x%20y`]), why()).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------

describe('loadOrCreateCredentials', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'logrelay-creds-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the file once with one admin principal, then reads the same principals', () => {
    const path = join(dir, 'nested', '.logrelay', 'credentials.json');
    const first = loadOrCreateCredentials(path);
    expect(first.created).toBe(true);
    expect(first.path).toBe(path);
    expect(first.principals).toHaveLength(1);
    const [p] = first.principals;
    expect(p).toMatchObject({ name: 'admin', admin: true });
    expect(p!.accessKeyId).toMatch(/^LR[A-Z0-9]{18}$/);
    expect(p!.secretAccessKey).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ principals: first.principals });

    const second = loadOrCreateCredentials(path);
    expect(second).toEqual({ principals: first.principals, created: false, path });
    // A fresh file gets fresh keys.
    const other = loadOrCreateCredentials(join(dir, 'other.json'));
    expect(other.principals[0]!.accessKeyId).not.toBe(p!.accessKeyId);
    expect(other.principals[0]!.secretAccessKey).not.toBe(p!.secretAccessKey);
  });

  it('resolves a relative path against the working directory', () => {
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      const loaded = loadOrCreateCredentials('.logrelay/credentials.json');
      expect(loaded.path).toBe(join(dir, '.logrelay', 'credentials.json'));
    } finally {
      process.chdir(cwd);
    }
  });

  it('reads a hand-written file with several principals', () => {
    const path = join(dir, 'two.json');
    writeFileSync(path, JSON.stringify({ principals: [alice, bob] }));
    expect(loadOrCreateCredentials(path)).toEqual({ principals: [alice, bob], created: false, path });
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['not JSON', '{"principals": [', /is not valid JSON/],
    ['no principals array', '{"users": []}', /"principals" must be an array \(it is missing\)/],
    ['an empty list', '{"principals": []}', /"principals" is empty/],
    [
      'a non-boolean admin',
      JSON.stringify({ principals: [{ ...alice, admin: 'yes' }] }),
      /principals\[0\] \("alice"\)\.admin must be true or false \(got "yes"\)/,
    ],
    [
      'a missing name',
      JSON.stringify({ principals: [{ ...alice, name: undefined }] }),
      /principals\[0\]\.name must be a non-empty string without surrounding spaces \(it is missing\)/,
    ],
    ['a bad access key id', JSON.stringify({ principals: [{ ...alice, accessKeyId: 'ab/c' }] }), /accessKeyId must be 16 to 128 letters/],
    [
      'a short secret',
      JSON.stringify({ principals: [{ ...alice, secretAccessKey: 'short' }] }),
      /secretAccessKey must be a string of at least 16 characters.*\(it has 5\)/,
    ],
    [
      'duplicate access keys',
      JSON.stringify({ principals: [alice, { ...bob, accessKeyId: alice.accessKeyId }] }),
      /accessKeyId LRALICE0000000000001 is used by more than one principal/,
    ],
    [
      'duplicate names',
      JSON.stringify({ principals: [alice, { ...bob, name: 'alice' }] }),
      /name "alice" is used by more than one principal/,
    ],
  ];
  for (const [what, text, pattern] of malformed) {
    it(`rejects a file with ${what}, saying where and how to fix it`, () => {
      const path = join(dir, `bad-${what.replace(/\W+/g, '-')}.json`);
      writeFileSync(path, text);
      let error: unknown;
      try {
        loadOrCreateCredentials(path);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CredentialsFileError);
      const message = (error as Error).message;
      expect(message).toContain(path);
      expect(message).toMatch(pattern);
      expect(message).toMatch(/Fix the file .* or delete it to have a new one created/);
      // The file is left alone.
      expect(readFileSync(path, 'utf8')).toBe(text);
    });
  }
});
