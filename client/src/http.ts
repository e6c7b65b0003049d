/**
 * Signed HTTP with retries: every attempt is signed afresh with the AWS SDK's SigV4 signer
 * (service `execute-api`), sent with a fetch-like function, and retried as retry.ts decides.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@aws-crypto/sha256-js';
import { LogrelayError, NetworkError, NotFoundError, errorFromResponse } from './errors';
import {
  abortError,
  isRetryable,
  parseRetryAfter,
  retryDelayMs,
  retryPolicy,
  type RetryOptions,
  type RetryPolicy,
  type Safety,
} from './retry';

/** What the client needs of `fetch`: tests inject their own. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<{ status: number; headers: { get(name: string): string | null }; text(): Promise<string> }>;

/** AWS credentials (the shape of the AWS SDK's AwsCredentialIdentity). */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}
/** Resolves credentials, e.g. the AWS SDK's provider chain; called before every signing. */
export type CredentialsProvider = () => Promise<Credentials>;

export interface RetryEvent {
  request: string;
  /** The attempt that failed (1 = the first). */
  attempt: number;
  error: LogrelayError;
  delayMs: number;
}

export interface TransportOptions {
  endpoint: string;
  region: string;
  credentials: Credentials | CredentialsProvider;
  fetch?: FetchLike;
  retry?: RetryOptions;
  /** Per-attempt timeout, ms (default 30,000; a long poll adds its wait). */
  requestTimeoutMs?: number;
  /** Called before each retry (logging, metrics). */
  onRetry?: (e: RetryEvent) => void;
  /** Clock for `retry-after` dates (tests). */
  now?: () => number;
}

export interface CallSpec {
  method: 'GET' | 'POST' | 'DELETE';
  /** Already encoded, e.g. `/logs/orders/records`. */
  path: string;
  /** Query string parameters, not encoded (signed and sent encoded). */
  query?: Record<string, string>;
  body?: unknown;
  safety: Safety;
  /** Extra time this request may take beyond the per-attempt timeout (a long poll's wait), ms. */
  extraTimeoutMs?: number;
  signal?: AbortSignal;
  /**
   * A 404 on a retry after an ambiguous failure means the first attempt did it (DELETE of a
   * session): treat it as success.
   */
  notFoundAfterAmbiguousIsSuccess?: boolean;
}

export interface Reply<T> {
  status: number;
  body: T;
}

/** Node's fetch reports these causes when the request never reached the server. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function networkCause(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export class Transport {
  readonly endpoint: URL;
  readonly region: string;
  private readonly signer: SignatureV4;
  private readonly fetchFn: FetchLike;
  readonly policy: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly onRetry: ((e: RetryEvent) => void) | undefined;
  private readonly now: () => number;

  constructor(o: TransportOptions) {
    let url: URL;
    try {
      url = new URL(o.endpoint);
    } catch {
      throw new RangeError(
        `The endpoint '${o.endpoint}' is not a URL. Give the API's base URL, e.g. http://127.0.0.1:8787 or the stack's ApiUrl output.`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new RangeError(`The endpoint '${o.endpoint}' must be an http:// or https:// URL.`);
    this.endpoint = url;
    this.region = o.region;
    this.signer = new SignatureV4({ service: 'execute-api', region: o.region, credentials: o.credentials, sha256: Sha256 });
    this.fetchFn = o.fetch ?? ((u, init) => fetch(u, init));
    this.policy = retryPolicy(o.retry);
    this.timeoutMs = o.requestTimeoutMs ?? 30_000;
    this.onRetry = o.onRetry;
    this.now = o.now ?? Date.now;
  }

  async call<T>(spec: CallSpec): Promise<Reply<T>> {
    const request = `${spec.method} ${spec.path}`;
    let ambiguousBefore = false;
    for (let attempt = 1; ; attempt++) {
      if (spec.signal?.aborted) throw abortError(spec.signal);
      let error: LogrelayError;
      try {
        return await this.once<T>(spec, request);
      } catch (e) {
        if (!(e instanceof LogrelayError)) throw e; // aborted by the caller, or a bug
        error = e;
      }
      if (ambiguousBefore && spec.notFoundAfterAmbiguousIsSuccess && error instanceof NotFoundError) {
        return { status: 204, body: undefined as T };
      }
      error.attempts = attempt;
      if (attempt >= this.policy.maxAttempts || !isRetryable(error, spec.safety)) throw error;
      const delayMs = retryDelayMs(attempt, error.retryAfterSeconds, this.policy);
      if (delayMs === undefined) throw error;
      if (error instanceof NetworkError ? !error.connectFailed : error.status >= 500 && error.status !== 503) ambiguousBefore = true;
      this.onRetry?.({ request, attempt, error, delayMs });
      await this.policy.sleep(delayMs, spec.signal);
    }
  }

  /** One signed attempt; throws a LogrelayError for any failure, or the caller's abort. */
  private async once<T>(spec: CallSpec, request: string): Promise<Reply<T>> {
    const base = this.endpoint.pathname.replace(/\/+$/, '');
    const path = base + spec.path;
    const payload = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const headers: Record<string, string> = { host: this.endpoint.host };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const signed = await this.signer.sign({
      method: spec.method,
      protocol: this.endpoint.protocol,
      hostname: this.endpoint.hostname,
      ...(this.endpoint.port ? { port: Number(this.endpoint.port) } : {}),
      path,
      headers,
      query: spec.query ?? {},
      ...(payload !== undefined ? { body: payload } : {}),
    });
    const timeout = AbortSignal.timeout(this.timeoutMs + (spec.extraTimeoutMs ?? 0));
    const signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout;
    const search = Object.entries(spec.query ?? {})
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&');
    const url = `${this.endpoint.protocol}//${this.endpoint.host}${path}${search ? `?${search}` : ''}`;
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const res = await this.fetchFn(url, {
        method: spec.method,
        headers: signed.headers as Record<string, string>,
        ...(payload !== undefined ? { body: payload } : {}),
        signal,
      });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      text = await res.text();
    } catch (e) {
      if (spec.signal?.aborted) throw abortError(spec.signal);
      if (timeout.aborted) {
        throw new NetworkError({
          code: 'RequestTimeout',
          status: 0,
          message: `${request} got no answer within ${Math.round((this.timeoutMs + (spec.extraTimeoutMs ?? 0)) / 1000)} s.`,
          request,
          connectFailed: false,
          cause: e,
        });
      }
      const cause = networkCause(e);
      const detail = cause ?? ((e as { cause?: { message?: string } })?.cause?.message || (e as Error)?.message || String(e));
      throw new NetworkError({
        code: 'NetworkError',
        status: 0,
        message:
          `${request} to ${this.endpoint.origin} failed before an answer arrived (${detail}).` +
          (cause === 'ECONNREFUSED' ? ' Is the service running there (npm start for the local runtime)?' : ''),
        request,
        connectFailed: cause !== undefined && CONNECT_FAILURES.has(cause),
        cause: e,
      });
    }
    if (status >= 200 && status < 300) {
      if (!text) return { status, body: undefined as T };
      try {
        return { status, body: JSON.parse(text) as T };
      } catch {
        throw new LogrelayError({
          code: 'InvalidResponse',
          status,
          message: `${request} answered ${status} with a body that is not JSON: ${text.slice(0, 200)}`,
          request,
        });
      }
    }
    throw errorFromResponse(status, text, parseRetryAfter(retryAfter, this.now()), request);
  }
}
