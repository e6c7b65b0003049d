/**
 * The thin HTTP edge shared by every handler: API Gateway HTTP API (payload 2.0, IAM
 * authorizer) events in, the contract's JSON and error envelope out. Routing is by the
 * event's routeKey, which API Gateway (and the local runtime) set from the route table.
 */
import type { APIGatewayProxyEventV2WithIAMAuthorizer, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { MetricResolution, Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { z } from 'zod';
import { clip, ServiceError } from '../domain/errors';
import { errorResult } from './errors';
import { jsonSyntaxError } from '../domain/json-text';
import { bytesOverLimit, LAMBDA_RESPONSE_LIMIT_BYTES } from '../domain/envelope';
import { isServerFault, isStorageServerFault, isThrottle, UnknownOutcomeError } from '../adapters/store';
import { DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import type { Arm, ConfigProvider, ConfigSet, VersionSet } from '../domain/config';
import { ARM_METRICS, METRIC_NAMESPACE, SERVICE_NAME } from '../metrics';

export type HttpEvent = APIGatewayProxyEventV2WithIAMAuthorizer;
export type HttpResult = APIGatewayProxyStructuredResultV2;

export const logger = new Logger({ serviceName: 'logrelay' });
/** Per-function operational metrics (dimension Function), standard resolution. */
export const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME });
/**
 * Per-arm metrics (dimension Arm), high resolution: what the bake's alarms and verdicts read.
 * A separate instance, so its EMF line carries only the Arm dimension set.
 */
export const armMetrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME });
export const tracer = new Tracer({ serviceName: 'logrelay' });

export interface RequestContext {
  principal: string;
  /** Epoch ms by which the handler must have finished its writes. */
  deadlineMs: number;
  /** Raw body size in bytes. Reading body, bodyText or bodyBytes parses the body (400 if it is not JSON). */
  readonly bodyBytes: number;
  path: Record<string, string>;
  /** Query string parameters, decoded (one given twice: its values joined with commas, as API Gateway does). */
  query: Record<string, string>;
  /** The body parsed (undefined when the request has none). */
  readonly body: unknown;
  /** The body's JSON text as received (decoded from base64 when it came so; '' when none). */
  readonly bodyText: string;
  /** The effective config of this request's arm. */
  config: ConfigSet;
  /** Milliseconds the handler spent waiting idle (a long poll's sleeps): not service latency. */
  idleMs: number;
}

/** A route's answer: `body` to serialize, or `json`, a body already serialized as JSON text. */
export type RouteHandler = (ctx: RequestContext) => Promise<{ status: number; body?: unknown; json?: string }>;

/**
 * The caller as the contract defines it: the IAM user or role. An assumed-role ARN's session
 * name is dropped, so every worker host running under one role is one principal.
 */
export function principalOf(event: HttpEvent): string {
  const iam = event.requestContext.authorizer?.iam;
  const arn = iam?.userArn;
  if (arn) {
    const m = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
    if (m) return `arn:${m[1]}:iam::${m[2]}:role/${m[3]}`;
    return arn;
  }
  if (iam?.userId) return iam.userId;
  // API Gateway rejects unsigned requests before the function runs; this is a misconfiguration.
  throw new ServiceError('Forbidden', 'The request carries no IAM identity. Sign it with AWS Signature Version 4.');
}

export function json(status: number, body?: unknown, headers: Record<string, string> = {}): HttpResult {
  if (body === undefined) return { statusCode: status, headers };
  return jsonText(status, JSON.stringify(body), headers);
}

/** A JSON answer whose body is already serialized. */
export function jsonText(status: number, body: string, headers: Record<string, string> = {}): HttpResult {
  return { statusCode: status, headers: { 'content-type': 'application/json', ...headers }, body };
}

function toServiceError(e: unknown): ServiceError {
  if (e instanceof ServiceError) return e;
  if (isThrottle(e)) {
    // DynamoDB's throttle is the data path's; any other AWS service's (AppConfig on the admin
    // routes, CloudWatch on POST /bakes) is named as such, not as storage.
    return e instanceof DynamoDBServiceException
      ? new ServiceError('StorageThrottled', 'Storage is throttling this table right now. Retry in 1 second.', 1)
      : new ServiceError('ServiceThrottled', 'An AWS service Logrelay depends on is throttling its calls right now. Retry in 1 second.', 1);
  }
  if (e instanceof UnknownOutcomeError) {
    logger.warn('storage write of unknown outcome', e);
    return new ServiceError(
      'StorageUnavailable',
      'Storage did not confirm a write in time. Retry in 1 second (with the same idempotencyKey, if the request had one).',
      1,
    );
  }
  if (isServerFault(e)) {
    // Still failing after the SDK's retries: as temporary as a throttle, and the caller's retry
    // is as safe as after UnknownOutcomeError (the call may have been applied).
    logger.warn('AWS answered a server error after the SDK retries', e as Error);
    return isStorageServerFault(e)
      ? new ServiceError(
          'StorageUnavailable',
          'Storage failed to answer. Retry in 1 second (with the same idempotencyKey, if the request had one).',
          1,
        )
      : new ServiceError('ServiceUnavailable', 'An AWS service Logrelay depends on failed to answer. Retry in 1 second.', 1);
  }
  if (e instanceof z.ZodError) return validationError(e);
  logger.error('unhandled error', e as Error);
  return new ServiceError(
    'InternalError',
    'The service failed to handle this request. Retry it; if it keeps failing, report the request id.',
  );
}

export function validationError(e: z.ZodError): ServiceError {
  const parts = e.issues.slice(0, 3).map((i) => {
    const where = i.path.length
      ? i.path
          .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
          .join('')
          .replace(/^\./, '')
      : 'body';
    // Field names and zod's messages can quote the caller's input (an unknown key): clipped.
    return `${clip(where, 100)}: ${clip(i.message, 200)}`;
  });
  const more = e.issues.length > 3 ? ` (and ${e.issues.length - 3} more)` : '';
  return new ServiceError('ValidationError', `The request is invalid: ${parts.join('; ')}${more}.`);
}

function parseBody(event: HttpEvent): { body: unknown; text: string; bytes: number } {
  if (event.body === undefined || event.body === null || event.body === '') return { body: undefined, text: '', bytes: 0 };
  // API Gateway sends a body it does not take for text as base64. Its bytes must be UTF-8: a
  // lenient decode would store U+FFFD in place of what the producer meant.
  let raw = event.body;
  if (event.isBase64Encoded) {
    try {
      raw = UTF8.decode(Buffer.from(event.body, 'base64'));
    } catch {
      throw new ServiceError('ValidationError', `The request body is not valid UTF-8. ${encodingHint(event)}`);
    }
  }
  const bytes = Buffer.byteLength(raw, 'utf8');
  // RFC 8259 lets a parser ignore a byte order mark, and some clients send one.
  const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
  try {
    return { body: JSON.parse(text) as unknown, text, bytes };
  } catch {
    // Where it goes wrong, not the body quoted back (it may be long, binary or private).
    const at = jsonSyntaxError(text);
    const where =
      text.trim() === ''
        ? 'it is empty or only whitespace'
        : at
          ? `${at.problem} at line ${at.line}, column ${at.column}`
          : 'it does not parse';
    throw new ServiceError('ValidationError', `The request body is not valid JSON: ${where}. ${encodingHint(event)}`);
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** What to do about a body that is not UTF-8 JSON, from what its headers say it is. */
function encodingHint(event: HttpEvent): string {
  const header = (name: string): string | undefined => {
    const h = event.headers ?? {};
    const k = Object.keys(h).find((x) => x.toLowerCase() === name);
    return k === undefined ? undefined : h[k];
  };
  const encoding = header('content-encoding');
  const type = header('content-type');
  const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(type ?? '')?.[1];
  if (encoding && !/^\s*identity\s*$/i.test(encoding))
    return `It was sent with content-encoding ${clip(encoding, 40)}, which Logrelay does not decode: send it uncompressed.`;
  if (charset && !/^utf-?8$/i.test(charset)) return `It was sent as charset ${clip(charset, 40)}: send UTF-8.`;
  if (type && !/^\s*application\/([a-z0-9.+-]*\+)?json\b/i.test(type))
    return `It was sent as ${clip(type, 80)}: send a JSON object with content-type application/json.`;
  return 'Send a JSON object, UTF-8 encoded, with content-type application/json.';
}

/** Validates `value` against `schema`, answering 400 with the first problems named. */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  // No body is an empty object; a body of `null` is not an object, and is refused as one.
  const r = schema.safeParse(value === undefined ? {} : value);
  if (!r.success) throw validationError(r.error);
  return r.data;
}

/**
 * The stable key that assigns a request to an arm: the session id on session routes, else the
 * log id; requests with neither (POST /logs, admin routes) are control.
 */
export const armKeyOf = (path: Record<string, string>): string | undefined => path.sessionId ?? path.logId;

export interface HttpDeps {
  clock: { now(): number };
  config: ConfigProvider;
}

/** Builds a Lambda handler serving `routes` (keyed by routeKey, e.g. "POST /logs"). */
export function httpHandler(fn: string, deps: HttpDeps, routes: Record<string, RouteHandler>) {
  const { clock } = deps;
  return async (event: HttpEvent, context?: Pick<Context, 'getRemainingTimeInMillis' | 'awsRequestId'>): Promise<HttpResult> => {
    const started = clock.now();
    let result: HttpResult;
    let arm: Arm = 'control';
    let versions: VersionSet | undefined;
    let idleMs = 0;
    const path = (event.pathParameters ?? {}) as Record<string, string>;
    const key = armKeyOf(path);
    const keyed = key !== undefined;
    try {
      const route = routes[event.routeKey];
      if (!route) throw new ServiceError('RouteNotFound', `No route ${event.routeKey} here. See the API reference for the routes.`);
      const effective = await deps.config.forKey(key);
      arm = effective.arm;
      versions = effective.versions;
      const remaining = context?.getRemainingTimeInMillis?.() ?? 10_000;
      // The body is parsed when a route first reads it: a route that takes none (GET, DELETE,
      // abort) ignores whatever was sent, as HTTP means it to.
      let parsed: ReturnType<typeof parseBody> | undefined;
      const body = () => (parsed ??= parseBody(event));
      const ctx: RequestContext = {
        principal: principalOf(event),
        // Leave a second for the response, so no write is ever started too late to finish.
        deadlineMs: started + Math.max(0, remaining - 1_000),
        get bodyBytes() {
          return body().bytes;
        },
        path,
        query: (event.queryStringParameters ?? {}) as Record<string, string>,
        get body() {
          return body().body;
        },
        get bodyText() {
          return body().text;
        },
        config: effective.config,
        idleMs: 0,
      };
      try {
        const out = await route(ctx);
        result = out.json === undefined ? json(out.status, out.body) : jsonText(out.status, out.json);
      } finally {
        idleMs = ctx.idleMs;
      }
    } catch (e) {
      const armed = e as { arm?: Arm; versions?: VersionSet };
      if (armed.arm) {
        arm = armed.arm;
        versions = armed.versions;
      }
      result = errorResult(toServiceError(e));
    }
    const oversize = bytesOverLimit(result, LAMBDA_RESPONSE_LIMIT_BYTES);
    if (oversize !== undefined) {
      // Lambda would drop this answer after the handler returned, and API Gateway answer a 500
      // no handler metric counts (receive cuts its batches so that this does not happen). It is
      // answered here instead, so that the arm it was served under is charged with it.
      logger.error('response over the Lambda payload limit', { route: event.routeKey, bytes: oversize });
      result = errorResult(
        new ServiceError(
          'ResponseTooLarge',
          `The answer to this request is over Lambda's ${LAMBDA_RESPONSE_LIMIT_BYTES}-byte payload limit. Ask for less per request (a smaller maxRecords).`,
        ),
      );
    }
    const status = result.statusCode ?? 200;
    const ms = clock.now() - started;
    const serviceMs = Math.max(0, ms - idleMs);
    const is4xx = status >= 400 && status < 500 ? 1 : 0;
    const is5xx = status >= 500 ? 1 : 0;
    // Requests with no stable key (POST /logs, admin routes) belong to no arm: counting them as
    // control would dilute the comparison with operators' traffic.
    if (keyed) {
      armMetrics.addDimension('Arm', arm);
      armMetrics.addMetric(ARM_METRICS.requests, MetricUnit.Count, 1, MetricResolution.High);
      armMetrics.addMetric(ARM_METRICS.errors4xx, MetricUnit.Count, is4xx, MetricResolution.High);
      armMetrics.addMetric(ARM_METRICS.errors5xx, MetricUnit.Count, is5xx, MetricResolution.High);
      armMetrics.addMetric(ARM_METRICS.latency, MetricUnit.Milliseconds, serviceMs, MetricResolution.High);
      armMetrics.publishStoredMetrics();
    }
    metrics.addDimension('Function', fn);
    metrics.addMetric('Requests', MetricUnit.Count, 1);
    metrics.addMetric('Errors4xx', MetricUnit.Count, is4xx);
    metrics.addMetric('Errors5xx', MetricUnit.Count, is5xx);
    metrics.addMetric('Latency', MetricUnit.Milliseconds, serviceMs);
    metrics.publishStoredMetrics();
    logger.info('request', { route: event.routeKey, status, ms, idleMs, arm, versions, requestId: context?.awsRequestId });
    return result;
  };
}
