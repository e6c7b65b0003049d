/**
 * What the service refuses a request with, in the contract's words: an UpperCamelCase code and a
 * sentence a person can act on (plus, for a temporary refusal, when to retry). The domain and the
 * services throw these and know nothing of HTTP; the HTTP edge (lambdas/http/errors.ts) gives
 * each code its status, in one table, and writes the error envelope.
 */
import { PROFILES } from './config';

export type ErrorCode =
  // The request itself is wrong (400, 413, 422).
  | 'ValidationError'
  | 'PayloadTooLarge'
  | 'IdempotencyKeyReused'
  // What it names does not exist (404).
  | 'LogNotFound'
  | 'SessionNotFound'
  | 'ProfileNotFound'
  | 'VersionNotFound'
  | 'BakeNotFound'
  | 'RouteNotFound'
  // It conflicts with the state of what it names (409).
  | 'LogExists'
  | 'LogFormatOutdated'
  | 'AppendInProgress'
  | 'BakeInProgress'
  | 'BakeNotRunning'
  // The caller is not who the route needs (403).
  | 'Forbidden'
  // Temporary: retry after retryAfterSeconds (503).
  | 'ServiceBusy'
  | 'StorageThrottled'
  | 'StorageUnavailable'
  | 'ServiceThrottled'
  | 'ServiceUnavailable'
  // The service failed (500).
  | 'InternalError'
  | 'ResponseTooLarge';

export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Seconds, for temporary refusals (ServiceBusy and the other 503s, AppendInProgress). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** A refusal because the service is too busy right now (retried inside a request, never past it). */
export const isBusy = (e: unknown): boolean => e instanceof ServiceError && e.code === 'ServiceBusy';

/**
 * Caller-supplied text (an id, a field name) as a message quotes it: at most `n` characters, so
 * an answer stays small, and control characters and lone surrogates written as `\u` escapes (four hex digits), so the
 * sentence stays readable and one line in any log.
 */
export const clip = (text: string, n: number): string => {
  const cut = text.length <= n ? text : `${text.slice(0, n)}…`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point (they are escaped)
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]|\p{Cs}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
};

export const validation = (message: string): ServiceError => new ServiceError('ValidationError', message);
export const payloadTooLarge = (message: string): ServiceError => new ServiceError('PayloadTooLarge', message);
export const logNotFound = (logId: string): ServiceError =>
  new ServiceError('LogNotFound', `No log named '${clip(logId, 200)}' exists for this caller. Create it with POST /logs first.`);
export const sessionNotFound = (sessionId: string): ServiceError =>
  new ServiceError(
    'SessionNotFound',
    `No session '${clip(sessionId, 200)}' exists for this caller (it may have expired after its idle timeout, or been deleted). Open a new one with POST /logs/{logId}/sessions.`,
  );
export const logExists = (logId: string): ServiceError =>
  new ServiceError('LogExists', `A log named '${logId}' already exists. Use it, or pick another logId.`);
export const appendInProgress = (seconds: number): ServiceError =>
  new ServiceError(
    'AppendInProgress',
    `An append with this idempotencyKey is still being written. Retry the same request in ${seconds} seconds to get its result.`,
    seconds,
  );
export const idempotencyKeyReused = (key: string): ServiceError =>
  new ServiceError(
    'IdempotencyKeyReused',
    `The idempotencyKey '${clip(key, 200)}' was already used for an append with other records. Retry that append with exactly its records, or use a new key for these.`,
  );
export const logFormatOutdated = (logId: string): ServiceError =>
  new ServiceError(
    'LogFormatOutdated',
    `The log '${logId}' was stored by an earlier version of Logrelay that this version cannot append to. Create a new log (locally: start with a new --data-dir).`,
  );
export const busy = (what: string, seconds: number): ServiceError =>
  new ServiceError('ServiceBusy', `${what} Retry in ${seconds} second${seconds === 1 ? '' : 's'}.`, seconds);

/** Thrown by storage adapters when a conditional write lost a race; services retry on it. */
export class ConflictError extends Error {
  constructor(message = 'conditional write lost a race') {
    super(message);
    this.name = 'ConflictError';
  }
}

export const profileNotFound = (profile: string): ServiceError =>
  new ServiceError('ProfileNotFound', `There is no config profile '${clip(profile, 200)}'. The profiles are ${PROFILES.join(' and ')}.`);
export const versionNotFound = (profile: string, version: string): ServiceError =>
  new ServiceError('VersionNotFound', `Profile ${profile} has no version '${clip(version, 200)}'. List the versions with GET /configs.`);
export const bakeNotFound = (bakeId: string): ServiceError =>
  new ServiceError('BakeNotFound', `There is no bake '${clip(bakeId, 200)}'. Start one with POST /bakes.`);
export const bakeInProgress = (message: string): ServiceError => new ServiceError('BakeInProgress', message);
export const bakeNotRunning = (bakeId: string, status: string): ServiceError =>
  new ServiceError('BakeNotRunning', `Bake ${bakeId} is ${status}, not running; there is nothing to abort.`);
