/** @logrelay/client: the typed client, the worker API and their types. The CLI is cli.ts. */
export { LogrelayClient, defaultCredentials } from './client';
export type {
  LogrelayClientOptions,
  CallOptions,
  AppendOptions,
  AppendManyOptions,
  AppendManyResult,
  AppendProgress,
  SessionHandleOptions,
} from './client';
export { Session, LeaseKeeper, IdlePacer, DEFAULT_IDLE_POLL_SECONDS } from './session';
export type {
  ConsumeOptions,
  ConsumeSummary,
  ConsumePhase,
  RecordHandler,
  BatchHandler,
  HandlerContext,
  RecordsOptions,
  LeasedRecord,
} from './session';
export {
  LogrelayError,
  ValidationError,
  PayloadTooLargeError,
  ForbiddenError,
  NotFoundError,
  ConflictError,
  ThrottledError,
  ServerError,
  NetworkError,
  errorFromResponse,
} from './errors';
export type { ErrorDetails } from './errors';
export { Transport } from './http';
export type { FetchLike, Credentials, CredentialsProvider, RetryEvent, TransportOptions, CallSpec } from './http';
export { retryPolicy, retryDelayMs, isRetryable, failureKind, parseRetryAfter } from './retry';
export type { RetryOptions, RetryPolicy, Safety, FailureKind } from './retry';
export { toRanges, selectionBodies, MAX_SELECTION_ENTRIES } from './selection';
export { localCredentials, CredentialsFileError } from './local';
export * from './types';
