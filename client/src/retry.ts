/**
 * When a failed request is retried, and how long the client waits first.
 *
 * A failure is one of three kinds:
 * - refused: the service (or the network, before the request left) turned the request away
 *   before it had any effect: 429, 503, and connection failures (refused, DNS). Retrying
 *   cannot repeat an effect, so every operation retries these.
 * - in progress: 409 `AppendInProgress`, sent only to a keyed append whose first attempt is
 *   still being written; the retry returns that attempt's result.
 * - ambiguous: the request may or may not have taken effect: the connection broke or timed out
 *   after the request was sent, or 500/502/504. Only operations that are safe to repeat retry
 *   these (see `Safety`).
 * Everything else (400, 403, 404, 409 other than AppendInProgress, 413, ...) is never retried:
 * the same request would get the same answer.
 */
import { type LogrelayError, NetworkError } from './errors';

/**
 * - `idempotent`: repeating the request has no further effect (GET, receive, ack, nack,
 *   extend, delete, a bake abort, an append that carries an idempotency key).
 * - `once`: repeating it could do it twice (create a log, open a session, append without a key,
 *   store a config version, start a bake): retried only when it was refused.
 */
export type Safety = 'idempotent' | 'once';

export interface RetryOptions {
  /** Attempts in all, the first included (default 6; 1 turns retries off). */
  maxAttempts?: number;
  /** First backoff step, ms (default 200); each later step doubles it. */
  baseDelayMs?: number;
  /**
   * Longest single wait, ms (default 20,000). A `retry-after` longer than this is not waited
   * out: the error is thrown at once, with `retryAfterSeconds` set, for the caller to decide.
   */
  maxDelayMs?: number;
  /** Waits `ms`; rejects when `signal` aborts. Injected by tests (default: a timer). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** A number in [0, 1) for the jitter (default Math.random). */
  random?: () => number;
}

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
}

export function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  const e = new Error('The operation was aborted.');
  e.name = 'AbortError';
  return e;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function retryPolicy(o: RetryOptions = {}): RetryPolicy {
  const maxAttempts = o.maxAttempts ?? 6;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
    throw new RangeError(`retry.maxAttempts must be an integer >= 1; it is ${maxAttempts}.`);
  return {
    maxAttempts,
    baseDelayMs: o.baseDelayMs ?? 200,
    maxDelayMs: o.maxDelayMs ?? 20_000,
    sleep: o.sleep ?? sleep,
    random: o.random ?? Math.random,
  };
}

export type FailureKind = 'refused' | 'in-progress' | 'ambiguous' | 'final';

export function failureKind(e: LogrelayError): FailureKind {
  if (e instanceof NetworkError) return e.connectFailed ? 'refused' : 'ambiguous';
  if (e.status === 429 || e.status === 503) return 'refused';
  if (e.status === 409 && e.code === 'AppendInProgress') return 'in-progress';
  if (e.status === 500 || e.status === 502 || e.status === 504) return 'ambiguous';
  return 'final';
}

/** Whether an operation of this safety may be retried after this failure. */
export function isRetryable(e: LogrelayError, safety: Safety): boolean {
  const kind = failureKind(e);
  if (kind === 'refused' || kind === 'in-progress') return true;
  return kind === 'ambiguous' && safety === 'idempotent';
}

/**
 * The wait before retry number `retry` (1 for the first retry), or undefined when the service
 * asked for a longer wait than `maxDelayMs` allows (then the caller gets the error instead).
 *
 * Without `retry-after`: "full jitter", a uniformly random wait in [0, min(max, base * 2^(n-1))).
 * With `retry-after`: at least what the service asked, plus a random share of one backoff step
 * (at most 1 s) so that many clients told the same number do not all come back at once.
 */
export function retryDelayMs(retry: number, retryAfterSeconds: number | undefined, p: RetryPolicy): number | undefined {
  const step = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.min(retry - 1, 30));
  if (retryAfterSeconds === undefined || retryAfterSeconds <= 0) return Math.floor(p.random() * step);
  const asked = retryAfterSeconds * 1000;
  if (asked > p.maxDelayMs) return undefined;
  return Math.min(p.maxDelayMs, asked + Math.floor(p.random() * Math.min(step, 1000)));
}

/** `retry-after` as seconds: an integer, or an HTTP date (RFC 9110). */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}
