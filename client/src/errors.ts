/**
 * Typed errors. Every failure the client reports is a LogrelayError carrying the contract's
 * error `code`, the HTTP `status` (0 when no HTTP answer arrived) and the service's message; a
 * subclass per family lets callers branch with `instanceof` (or on `code`).
 */

export interface ErrorDetails {
  code: string;
  status: number;
  message: string;
  /** Seconds the service asked the caller to wait (the `retry-after` header), when it sent one. */
  retryAfterSeconds?: number;
  /** The request, e.g. "POST /logs/orders/records". */
  request?: string;
  /** Attempts made before giving up (1 when the request was not retried). */
  attempts?: number;
  cause?: unknown;
}

export class LogrelayError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryAfterSeconds?: number;
  readonly request?: string;
  /** Attempts made, the failing one included (set by the client when it gives up). */
  attempts: number;

  constructor(d: ErrorDetails) {
    super(d.message, d.cause === undefined ? undefined : { cause: d.cause });
    this.name = new.target.name;
    this.code = d.code;
    this.status = d.status;
    if (d.retryAfterSeconds !== undefined) this.retryAfterSeconds = d.retryAfterSeconds;
    if (d.request !== undefined) this.request = d.request;
    this.attempts = d.attempts ?? 1;
  }
}

/** 400: the request is invalid (`ValidationError`): fix it, never retry it as is. */
export class ValidationError extends LogrelayError {}
/** 413: the request or a record is over a limit (`PayloadTooLarge`). */
export class PayloadTooLargeError extends LogrelayError {}
/** 401/403: unsigned, badly signed, expired, or not allowed (an admin route without admin rights). */
export class ForbiddenError extends LogrelayError {}
/** 404: no such log, session, profile, version, bake or route for this caller. */
export class NotFoundError extends LogrelayError {}
/**
 * 409: `LogExists`, `BakeInProgress`, `AppendInProgress`, an abort of a bake that is not running;
 * 422: `IdempotencyKeyReused` (an append's key was used before for other records).
 */
export class ConflictError extends LogrelayError {}
/** 429 or 503: throttled or busy; retried automatically, so seen only once retries ran out. */
export class ThrottledError extends LogrelayError {}
/** Other 5xx: the service (or API Gateway in front of it) failed. */
export class ServerError extends LogrelayError {}
/**
 * No HTTP answer: connection refused or reset, DNS failure, or the request timed out. `code` is
 * `NetworkError` or `RequestTimeout`; `connectFailed` says the request surely never reached the
 * service (so retrying cannot repeat an effect).
 */
export class NetworkError extends LogrelayError {
  readonly connectFailed: boolean;
  constructor(d: ErrorDetails & { connectFailed: boolean }) {
    super(d);
    this.connectFailed = d.connectFailed;
  }
}

const DEFAULT_CODES: Record<number, string> = {
  400: 'ValidationError',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  413: 'PayloadTooLarge',
  422: 'UnprocessableContent',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'GatewayTimeout',
};

/**
 * Builds the typed error for an HTTP error answer. The body is the contract's
 * `{"error": {"code", "message"}}`, or API Gateway's own `{"message"}` (deployed: unsigned
 * requests, stage throttling), or anything else a proxy may send.
 */
export function errorFromResponse(status: number, body: string, retryAfterSeconds: number | undefined, request: string): LogrelayError {
  let code: string | undefined;
  let message: string | undefined;
  try {
    const doc = JSON.parse(body) as { error?: { code?: unknown; message?: unknown }; message?: unknown };
    if (doc && typeof doc === 'object') {
      if (doc.error && typeof doc.error === 'object') {
        if (typeof doc.error.code === 'string') code = doc.error.code;
        if (typeof doc.error.message === 'string') message = doc.error.message;
      } else if (typeof doc.message === 'string') {
        message = doc.message;
      }
    }
  } catch {
    // not JSON: keep the text (trimmed) as the message
  }
  if (status === 413 && code === undefined) {
    // API Gateway's own 413 (`Request Too Long`, or a plain-text one over 10 MB): the request
    // never reached Logrelay. Lambda takes at most 6 MiB of event, with the body escaped in it.
    message = `${request} was refused by API Gateway before it reached Logrelay (${(message ?? body.trim()).slice(0, 100) || 'no reason given'}): the body, escaped into the Lambda event (every " and \\ doubled), must stay under 6 MiB, and under 10 MB as sent. Send fewer or smaller records per request.`;
  }
  code ??= DEFAULT_CODES[status] ?? `Http${status}`;
  message ??= body.trim() ? `${request} answered ${status}: ${body.trim().slice(0, 300)}` : `${request} answered ${status} with no body.`;
  const d: ErrorDetails = { code, status, message, request, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) };
  if (status === 400) return new ValidationError(d);
  if (status === 401 || status === 403) return new ForbiddenError(d);
  if (status === 404) return new NotFoundError(d);
  if (status === 409 || status === 422) return new ConflictError(d);
  if (status === 413) return new PayloadTooLargeError(d);
  if (status === 429 || status === 503) return new ThrottledError(d);
  if (status >= 500) return new ServerError(d);
  return new LogrelayError(d);
}
