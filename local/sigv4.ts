/**
 * AWS Signature Version 4 verification for the local runtime: what API Gateway's IAM
 * authorization does in front of the deployed API.
 *
 * The signature is recomputed with the AWS SDK's own signer (`SignatureV4` from
 * @smithy/signature-v4 with the SDK's Node.js `Sha256` from @smithy/core, which hashes with
 * node:crypto), never by hand: the request is
 * rebuilt with exactly the headers the client signed, signed with the principal's secret at the
 * client's signing time, region and service, and the two signatures are compared in constant
 * time. Both forms are accepted: the Authorization header and presigned query strings
 * (X-Amz-Signature in the query).
 *
 * Path: pass the path exactly as received on the wire (still %-encoded, without the query).
 * For every service but S3, SigV4 encodes the path once more ("double encoding"); clients sign
 * the encoded path they send (the SDK's HttpRequest.path is the wire path), and the signer
 * (uriEscapePath: true, its default) does the second encoding — so the raw path is what it
 * must be given, as API Gateway does. Dot segments and empty segments are normalized by the
 * signer as AWS does.
 *
 * Headers: Node's `req.headers` works; `req.headersDistinct` is more exact when a signed header
 * is repeated (SigV4 joins repeated values with "," where Node joins them with ", ").
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Sha256 } from '@smithy/core/checksum';
import { ALGORITHM_IDENTIFIER, SignatureV4, UNSIGNED_PAYLOAD, getCanonicalHeaders } from '@smithy/signature-v4';
import type { Principal } from './credentials';

export interface SigV4Request {
  method: string;
  /** The path as received, %-escapes and all, without the query string. */
  path: string;
  /** The raw query string, without the leading "?" (a leading "?" is tolerated). */
  query: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer | Uint8Array;
}

export interface SigV4Options {
  /** The server's clock (default Date.now()). */
  nowMs?: number;
  /** The service name the credential scope must name (default "execute-api"). */
  service?: string;
  /** Largest difference allowed between the signing time and nowMs (default 15 minutes). */
  maxSkewMs?: number;
}

export type SigV4FailureCode =
  | 'MissingAuthentication'
  | 'MalformedAuthorization'
  | 'UnknownAccessKey'
  | 'WrongSigningService'
  | 'RequestTimeTooSkewed'
  | 'PresignedUrlExpired'
  | 'PayloadHashMismatch'
  | 'SignatureDoesNotMatch';

export type SigV4Result = { ok: true; principal: Principal } | { ok: false; code: SigV4FailureCode; message: string };

export const DEFAULT_SERVICE = 'execute-api';
export const DEFAULT_MAX_SKEW_MS = 15 * 60 * 1000;
/** AWS's limit on X-Amz-Expires: one week. */
const MAX_PRESIGNED_EXPIRES_SECONDS = 7 * 24 * 3600;

const CREDENTIALS_HINT = "an access key from the server's credentials file (.logrelay/credentials.json)";
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const LONG_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** Splits a request target ("/a/b?x=1") into the raw path and raw query string. */
export function splitRequestTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

type SignableRequest = Parameters<SignatureV4['presign']>[0];
type Query = Record<string, string | string[]>;

class Failure {
  constructor(
    readonly code: SigV4FailureCode,
    readonly message: string,
  ) {}
}

function fail(code: SigV4FailureCode, message: string): never {
  throw new Failure(code, message);
}

function malformed(message: string): never {
  return fail('MalformedAuthorization', message);
}

/** The SDK's signer, with access to its own canonical-request building blocks. */
class Verifier extends SignatureV4 {
  /**
   * The signature over exactly the given canonical headers with the given timestamp, for the
   * requests signRequest cannot rebuild (it always signs x-amz-date and drops a Date header).
   */
  async signatureFromParts(
    request: SignableRequest,
    signedHeaders: Set<string>,
    payloadHash: string,
    longDate: string,
    signingDate: Date,
    region: string,
    service: string,
  ): Promise<{ signedHeaders: string; signature: string }> {
    const canonicalHeaders = getCanonicalHeaders(request, undefined, signedHeaders);
    const canonicalRequest = this.createCanonicalRequest(request, canonicalHeaders, payloadHash);
    const scope = `${longDate.slice(0, 8)}/${region}/${service}/aws4_request`;
    const stringToSign = await this.createStringToSign(longDate, scope, canonicalRequest, ALGORITHM_IDENTIFIER);
    const signature = await this.sign(stringToSign, { signingDate, signingRegion: region, signingService: service });
    return { signedHeaders: this.getCanonicalHeaderList(canonicalHeaders), signature };
  }
}

interface Scope {
  accessKeyId: string;
  shortDate: string;
  region: string;
  service: string;
}

function parseScope(credential: string, where: string): Scope {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts.some((p) => p === '')) {
    malformed(`The ${where} Credential "${credential}" is malformed; it must be ACCESS_KEY_ID/yyyymmdd/region/execute-api/aws4_request.`);
  }
  const [accessKeyId, shortDate, region, service, terminator] = parts as [string, string, string, string, string];
  if (!/^\d{8}$/.test(shortDate)) {
    malformed(`The date "${shortDate}" in the ${where} Credential scope must be yyyymmdd, the UTC day of the signing time.`);
  }
  if (!/^[a-z0-9-]+$/.test(region)) {
    malformed(`The region "${region}" in the ${where} Credential scope is not a region name such as us-east-1.`);
  }
  if (terminator !== 'aws4_request') {
    malformed(`The ${where} Credential scope must end with "aws4_request", not "${terminator}".`);
  }
  return { accessKeyId, shortDate, region, service };
}

function parseLongDate(value: string): Date | undefined {
  const m = LONG_DATE.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  return formatLongDate(date) === value ? date : undefined;
}

function formatLongDate(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

function parseSignedHeaders(list: string, where: string): string[] {
  const names = list.split(';');
  const sorted = [...new Set(names)].sort();
  if (names.some((n) => !HEADER_NAME.test(n)) || sorted.join(';') !== list) {
    malformed(
      `The ${where} SignedHeaders "${list}" is malformed; it must list the signed header names in lowercase, ` +
        `in alphabetical order, separated by ";" (for example "content-type;host;x-amz-date").`,
    );
  }
  if (!names.includes('host')) {
    malformed(`The Host header must be signed, but the ${where} SignedHeaders "${list}" does not include host.`);
  }
  if (names.includes('authorization')) {
    malformed(`The ${where} SignedHeaders must not include authorization; the Authorization header is never signed.`);
  }
  return names;
}

function parseSignature(value: string, where: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) {
    malformed(`The ${where} Signature must be 64 hexadecimal digits (a SHA-256 HMAC), got "${value.slice(0, 80)}".`);
  }
  return Buffer.from(value, 'hex');
}

/** Lowercased header names; repeated values joined with "," as SigV4 does. */
function normalizeHeaders(headers: SigV4Request['headers']): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const key = name.toLowerCase();
    const list = out.get(key) ?? [];
    list.push(...(Array.isArray(value) ? value : [value]));
    out.set(key, list);
  }
  return out;
}

function parseQuery(raw: string): Array<[string, string]> {
  const text = raw.startsWith('?') ? raw.slice(1) : raw;
  const pairs: Array<[string, string]> = [];
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    try {
      // A raw "+" is a space, as AWS (and curl's canonicalization) read it; "%2B" is a plus sign.
      pairs.push([decodeURIComponent(rawKey.replace(/\+/g, ' ')), decodeURIComponent(rawValue.replace(/\+/g, ' '))]);
    } catch {
      malformed(`The query string parameter "${part.slice(0, 80)}" has an invalid %-escape; encode the query string as RFC 3986 requires.`);
    }
  }
  return pairs;
}

function toQuery(pairs: Array<[string, string]>): Query {
  // No prototype: a "__proto__" parameter must be a parameter like any other.
  const query: Query = Object.create(null) as Query;
  for (const [k, v] of pairs) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return query;
}

function minutes(ms: number): string {
  const m = Math.round(Math.abs(ms) / 60000);
  return m === 1 ? '1 minute' : `${m} minutes`;
}

function sha256Hex(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/**
 * Verifies a request's AWS Signature Version 4 against the principals. Never throws for a bad
 * request: every problem is a `{ok: false}` whose message tells the caller what to fix.
 */
export async function verifySigV4(req: SigV4Request, principals: readonly Principal[], opts: SigV4Options = {}): Promise<SigV4Result> {
  try {
    return { ok: true, principal: await verify(req, principals, opts) };
  } catch (e) {
    if (e instanceof Failure) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}

async function verify(req: SigV4Request, principals: readonly Principal[], opts: SigV4Options): Promise<Principal> {
  const nowMs = opts.nowMs ?? Date.now();
  const expectedService = opts.service ?? DEFAULT_SERVICE;
  const maxSkewMs = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;

  const headers = normalizeHeaders(req.headers);
  const pairs = parseQuery(req.query);
  const presignedSignature = pairs.filter(([k]) => k.toLowerCase() === 'x-amz-signature');
  const authorization = headers.get('authorization');

  if (!authorization && presignedSignature.length === 0) {
    fail(
      'MissingAuthentication',
      `The request is not signed. Sign the request with AWS Signature Version 4 for the service ${expectedService}, ` +
        `using ${CREDENTIALS_HINT}; for example curl --aws-sigv4 "aws:amz:us-east-1:${expectedService}" --user KEY:SECRET.`,
    );
  }
  if (authorization && presignedSignature.length > 0) {
    malformed('The request carries both an Authorization header and an X-Amz-Signature query parameter; sign it one way only.');
  }

  // What the two forms have in common, once parsed.
  let scope: Scope;
  let signedHeaders: string[];
  let clientSignature: Buffer;
  let signingDate: Date;
  let dateSource: string;
  let presign: { query: Query; expiresSeconds: number } | undefined;

  if (authorization) {
    if (authorization.length > 1) malformed('The request has more than one Authorization header; send exactly one.');
    const value = authorization[0]!.trim();
    const m = /^AWS4-HMAC-SHA256\s+(.*)$/s.exec(value);
    if (!m) {
      const scheme = value.split(/\s+/)[0] ?? '';
      malformed(
        `The Authorization header uses "${scheme.slice(0, 40)}", not AWS Signature Version 4. ` +
          `Sign the request with AWS Signature Version 4 (algorithm AWS4-HMAC-SHA256) for the service ${expectedService}.`,
      );
    }
    const fields = new Map<string, string>();
    for (const part of m[1]!.split(',')) {
      const item = part.trim();
      if (item === '') continue;
      const eq = item.indexOf('=');
      const key = eq < 0 ? item : item.slice(0, eq);
      if (eq < 0 || !['Credential', 'SignedHeaders', 'Signature'].includes(key) || fields.has(key)) {
        malformed(
          `The Authorization header is malformed at "${item.slice(0, 60)}"; it must be ` +
            `"AWS4-HMAC-SHA256 Credential=KEY/yyyymmdd/region/${expectedService}/aws4_request, SignedHeaders=host;x-amz-date, Signature=HEX".`,
        );
      }
      fields.set(key, item.slice(eq + 1));
    }
    for (const key of ['Credential', 'SignedHeaders', 'Signature']) {
      if (!fields.get(key)) {
        malformed(
          `The Authorization header has no ${key}; it must be ` +
            `"AWS4-HMAC-SHA256 Credential=KEY/yyyymmdd/region/${expectedService}/aws4_request, SignedHeaders=host;x-amz-date, Signature=HEX".`,
        );
      }
    }
    scope = parseScope(fields.get('Credential')!, 'Authorization header');
    signedHeaders = parseSignedHeaders(fields.get('SignedHeaders')!, 'Authorization header');
    clientSignature = parseSignature(fields.get('Signature')!, 'Authorization header');

    const amzDate = headers.get('x-amz-date');
    const date = headers.get('date');
    if (amzDate) {
      if (amzDate.length > 1) malformed('The request has more than one X-Amz-Date header; send exactly one.');
      const parsed = parseLongDate(amzDate[0]!.trim());
      if (!parsed) malformed(`The X-Amz-Date header "${amzDate[0]!.slice(0, 40)}" must be the UTC signing time as yyyymmddThhmmssZ.`);
      signingDate = parsed;
      dateSource = 'x-amz-date';
    } else if (date) {
      const text = date.join(',').trim();
      const parsed = parseLongDate(text) ?? new Date(Date.parse(text));
      if (Number.isNaN(parsed.getTime())) {
        malformed(
          `The Date header "${text.slice(0, 40)}" is not a date; send the signing time in an X-Amz-Date header as yyyymmddThhmmssZ.`,
        );
      }
      signingDate = parsed;
      dateSource = 'date';
    } else {
      malformed(
        'The request has no X-Amz-Date (or Date) header; send the signing time in an X-Amz-Date header as yyyymmddThhmmssZ, and sign it.',
      );
    }
    if (!signedHeaders.includes(dateSource)) {
      malformed(`The ${dateSource} header carries the signing time, so it must be signed, but SignedHeaders does not include it.`);
    }
  } else {
    if (presignedSignature.length > 1) malformed('The query string has more than one X-Amz-Signature; send exactly one.');
    const single = (name: string): string => {
      const found = pairs.filter(([k]) => k === name);
      if (found.length !== 1) {
        const other = pairs.find(([k]) => k.toLowerCase() === name.toLowerCase() && k !== name);
        malformed(
          other
            ? `The presigned query parameter "${other[0]}" must be spelled "${name}".`
            : `A presigned request needs exactly one ${name} query parameter (it has ${found.length}); presign the URL again.`,
        );
      }
      return found[0]![1];
    };
    const algorithm = single('X-Amz-Algorithm');
    if (algorithm !== ALGORITHM_IDENTIFIER) {
      malformed(`X-Amz-Algorithm is "${algorithm.slice(0, 40)}"; presign the URL with AWS Signature Version 4 (${ALGORITHM_IDENTIFIER}).`);
    }
    scope = parseScope(single('X-Amz-Credential'), 'X-Amz-Credential');
    signedHeaders = parseSignedHeaders(single('X-Amz-SignedHeaders'), 'X-Amz-SignedHeaders');
    clientSignature = parseSignature(single('X-Amz-Signature'), 'X-Amz-Signature');
    const dateText = single('X-Amz-Date');
    const parsed = parseLongDate(dateText);
    if (!parsed) malformed(`The X-Amz-Date query parameter "${dateText.slice(0, 40)}" must be the UTC signing time as yyyymmddThhmmssZ.`);
    signingDate = parsed;
    dateSource = 'X-Amz-Date query parameter';
    const expiresText = single('X-Amz-Expires');
    const expiresSeconds = Number(expiresText);
    if (!/^[1-9]\d*$/.test(expiresText) || expiresSeconds > MAX_PRESIGNED_EXPIRES_SECONDS) {
      malformed(
        `X-Amz-Expires is "${expiresText.slice(0, 20)}"; it must be a whole number of seconds from 1 to ${MAX_PRESIGNED_EXPIRES_SECONDS} (one week).`,
      );
    }
    presign = { query: toQuery(pairs.filter(([k]) => k.toLowerCase() !== 'x-amz-signature')), expiresSeconds };
  }

  // Exactly the signed headers, each present.
  const signed: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const name of signedHeaders) {
    const values = headers.get(name);
    if (!values) {
      malformed(`SignedHeaders lists "${name}", but the request has no ${name} header; sign only headers that are sent.`);
    }
    signed[name] = values.map((v) => v.trim()).join(',');
  }

  const longDate = formatLongDate(signingDate);
  if (scope.shortDate !== longDate.slice(0, 8)) {
    malformed(
      `The date ${scope.shortDate} in the Credential scope does not match the signing time ${longDate} (from the ${dateSource}); ` +
        'the scope date must be the UTC day of the signing time. Sign the request again.',
    );
  }
  if (scope.service !== expectedService) {
    fail(
      'WrongSigningService',
      `The request is signed for the service "${scope.service}", but this API's service name is ${expectedService}; ` +
        `sign it for ${expectedService} (for example curl --aws-sigv4 "aws:amz:${scope.region}:${expectedService}").`,
    );
  }
  const principal = principals.find((p) => p.accessKeyId === scope.accessKeyId);
  if (!principal) {
    fail(
      'UnknownAccessKey',
      `The access key id ${scope.accessKeyId.slice(0, 128)} is not one of this server's principals; sign the request with ${CREDENTIALS_HINT}.`,
    );
  }

  const skew = signingDate.getTime() - nowMs;
  const nowText = formatLongDate(new Date(nowMs));
  if (presign) {
    if (skew > maxSkewMs) {
      fail(
        'RequestTimeTooSkewed',
        `The presigned URL's signing time ${longDate} is ${minutes(skew)} ahead of this server's time ${nowText}; ` +
          `it may be at most ${minutes(maxSkewMs)} ahead. Check the client's clock.`,
      );
    }
    if (nowMs > signingDate.getTime() + presign.expiresSeconds * 1000) {
      fail(
        'PresignedUrlExpired',
        `The presigned URL expired at ${formatLongDate(new Date(signingDate.getTime() + presign.expiresSeconds * 1000))} ` +
          `(signed at ${longDate}, valid for ${presign.expiresSeconds} seconds); it is now ${nowText}. Presign the URL again.`,
      );
    }
  } else if (Math.abs(skew) > maxSkewMs) {
    fail(
      'RequestTimeTooSkewed',
      `The request was signed at ${longDate} (from the ${dateSource} header), ${minutes(skew)} ${skew < 0 ? 'before' : 'after'} ` +
        `this server's time ${nowText}; a signature is valid for ${minutes(maxSkewMs)} either side. ` +
        "Check the client's clock and sign the request just before sending it.",
    );
  }

  // The body: execute-api always signs the payload, so its hash is computed from the body.
  const bodyHash = sha256Hex(req.body);
  const declaredHash = headers.get('x-amz-content-sha256')?.join(',').trim();
  if (declaredHash !== undefined && declaredHash.toLowerCase() !== bodyHash) {
    if (declaredHash === UNSIGNED_PAYLOAD || declaredHash.startsWith('STREAMING-')) {
      fail(
        'PayloadHashMismatch',
        `The x-amz-content-sha256 header is "${declaredHash.slice(0, 60)}", but ${expectedService} requires the payload to be signed; ` +
          'drop the header or set it to the hex SHA-256 of the body.',
      );
    }
    fail(
      'PayloadHashMismatch',
      `The x-amz-content-sha256 header "${declaredHash.slice(0, 64)}" is not the SHA-256 of the body received (${bodyHash}); ` +
        'the body was changed after signing, or the header is wrong. Sign the request again with the body as sent.',
    );
  }

  const signedSet = new Set(signedHeaders);
  const hostname = (signed.host ?? '').replace(/:\d+$/, '') || 'localhost';
  const request: SignableRequest = {
    method: req.method,
    protocol: 'http:',
    hostname,
    path: req.path === '' ? '/' : req.path,
    query: presign ? presign.query : toQuery(pairs),
    headers: signed,
    body: req.body,
  };
  const verifier = new Verifier({
    service: scope.service,
    region: scope.region,
    credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey },
    sha256: Sha256,
    uriEscapePath: true,
    // Adds no x-amz-content-sha256 header the client did not sign.
    applyChecksum: false,
  });

  let expected: { signedHeaders: string; signature: string };
  if (presign) {
    const out = await verifier.presign(request, {
      signingDate,
      expiresIn: presign.expiresSeconds,
      signingRegion: scope.region,
      signingService: scope.service,
      signableHeaders: signedSet,
      // The headers sent as headers were signed as headers: none may move into the query.
      unhoistableHeaders: signedSet,
    });
    expected = {
      signedHeaders: String(out.query?.['X-Amz-SignedHeaders'] ?? ''),
      signature: String(out.query?.['X-Amz-Signature'] ?? ''),
    };
  } else if (dateSource === 'x-amz-date' && !signedSet.has('date')) {
    // The usual case: sign the rebuilt request exactly as a client does.
    const { 'x-amz-date': _ignored, ...rest } = signed;
    const out = await verifier.sign(
      { ...request, headers: rest },
      { signingDate, signingRegion: scope.region, signingService: scope.service, signableHeaders: signedSet },
    );
    const auth = String(out.headers.authorization ?? '');
    expected = {
      signedHeaders: /SignedHeaders=([^,\s]*)/.exec(auth)?.[1] ?? '',
      signature: /Signature=([0-9a-f]+)/.exec(auth)?.[1] ?? '',
    };
  } else {
    // Signed with a Date header: SignatureV4.sign always uses X-Amz-Date, so use its parts.
    expected = await verifier.signatureFromParts(request, signedSet, bodyHash, longDate, signingDate, scope.region, scope.service);
  }

  const expectedSignature = Buffer.from(expected.signature, 'hex');
  const matches =
    expected.signedHeaders === signedHeaders.join(';') &&
    expectedSignature.length === clientSignature.length &&
    timingSafeEqual(expectedSignature, clientSignature);
  if (!matches) {
    fail(
      'SignatureDoesNotMatch',
      `The request signature does not match the one computed for access key ${principal.accessKeyId} ` +
        `(region ${scope.region}, service ${scope.service}, signed at ${longDate}). Check the secret key, the region, ` +
        `the service name ${expectedService} and that the body was not changed; the method, path, query string and ` +
        'signed headers must also reach the server exactly as they were signed.',
    );
  }
  return principal;
}
