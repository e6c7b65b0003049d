/**
 * Errors the service answers with. Each carries the contract's HTTP status, an UpperCamelCase
 * code and a sentence a person can act on; handlers map them to the error envelope.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, for 429/503/409-in-progress answers. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * Caller-supplied text (an id, a field name) as a message quotes it: at most `n` characters, so
 * an answer stays small, and control characters and lone surrogates written as `\u` escapes (four hex digits), so the
 * sentence stays readable and one line in any log.
 */
export const clip = (text: string, n: number): string => {
  const cut = text.length <= n ? text : `${text.slice(0, n)}…`;
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]|\p{Cs}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
};

export const validation = (message: string): ApiError => new ApiError(400, 'ValidationError', message);
export const payloadTooLarge = (message: string): ApiError => new ApiError(413, 'PayloadTooLarge', message);
export const logNotFound = (logId: string): ApiError =>
  new ApiError(404, 'LogNotFound', `No log named '${clip(logId, 200)}' exists for this caller. Create it with POST /logs first.`);
export const sessionNotFound = (sessionId: string): ApiError =>
  new ApiError(
    404,
    'SessionNotFound',
    `No session '${clip(sessionId, 200)}' exists for this caller (it may have expired after its idle timeout, or been deleted). Open a new one with POST /logs/{logId}/sessions.`,
  );
export const logExists = (logId: string): ApiError =>
  new ApiError(409, 'LogExists', `A log named '${logId}' already exists. Use it, or pick another logId.`);
export const appendInProgress = (seconds: number): ApiError =>
  new ApiError(
    409,
    'AppendInProgress',
    `An append with this idempotencyKey is still being written. Retry the same request in ${seconds} seconds to get its result.`,
    seconds,
  );
export const idempotencyKeyReused = (key: string): ApiError =>
  new ApiError(
    422,
    'IdempotencyKeyReused',
    `The idempotencyKey '${clip(key, 200)}' was already used for an append with other records. Retry that append with exactly its records, or use a new key for these.`,
  );
export const logFormatOutdated = (logId: string): ApiError =>
  new ApiError(
    409,
    'LogFormatOutdated',
    `The log '${logId}' was stored by an earlier version of Logrelay that this version cannot append to. Create a new log (locally: start with a new --data-dir).`,
  );
export const busy = (what: string, seconds: number): ApiError =>
  new ApiError(503, 'ServiceBusy', `${what} Retry in ${seconds} second${seconds === 1 ? '' : 's'}.`, seconds);

/** Thrown by storage adapters when a conditional write lost a race; services retry on it. */
export class ConflictError extends Error {
  constructor(message = 'conditional write lost a race') {
    super(message);
    this.name = 'ConflictError';
  }
}
