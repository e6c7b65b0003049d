/**
 * The HTTP face of the service's errors: each error code's status, in this one table, and the
 * contract's error envelope (`{"error": {"code", "message"}}`, plus `retry-after` for temporary
 * refusals). Domain and services throw ServiceError with a code and never see a status.
 */
import type { ServiceError, ErrorCode } from '../domain/errors';

/** Every code's status. A Record over the union: a new code without a status does not compile. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  ValidationError: 400,
  Forbidden: 403,
  LogNotFound: 404,
  SessionNotFound: 404,
  ProfileNotFound: 404,
  VersionNotFound: 404,
  BakeNotFound: 404,
  RouteNotFound: 404,
  LogExists: 409,
  LogFormatOutdated: 409,
  AppendInProgress: 409,
  BakeInProgress: 409,
  BakeNotRunning: 409,
  PayloadTooLarge: 413,
  IdempotencyKeyReused: 422,
  InternalError: 500,
  ResponseTooLarge: 500,
  ServiceBusy: 503,
  StorageThrottled: 503,
  StorageUnavailable: 503,
  ServiceThrottled: 503,
  ServiceUnavailable: 503,
};

export const statusOf = (e: ServiceError): number => HTTP_STATUS[e.code];

/** The error envelope for `e`, with `retry-after` when it says when to retry. */
export function errorResult(e: ServiceError): { statusCode: number; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (e.retryAfterSeconds !== undefined) headers['retry-after'] = String(e.retryAfterSeconds);
  return { statusCode: statusOf(e), headers, body: JSON.stringify({ error: { code: e.code, message: e.message } }) };
}
