/**
 * What API Gateway's HTTP API does in front of the functions: match a request against the
 * route table, build the payload-2.0 event, with the IAM authorizer's identity, and invoke the
 * function as Lambda does: within its payload envelope and its timeout, answering what API
 * Gateway answers when either is passed.
 */
import type { HttpEvent, HttpResult } from '../lambdas/http/api';
import { bytesOverLimit, LAMBDA_REQUEST_LIMIT_BYTES, LAMBDA_RESPONSE_LIMIT_BYTES } from '../lambdas/domain/envelope';

/** API Gateway HTTP APIs accept at most 10 MB of payload. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
/** The longest an HTTP API waits for an integration (its maximum, and the default). */
export const INTEGRATION_TIMEOUT_MS = 30_000;

/** An answer API Gateway gives itself, the function's answer lost or never asked for. */
export interface GatewayAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_TYPE = { 'content-type': 'application/json' };
/**
 * API Gateway's own answers, as it sends them: a body over 10 MB (refused before any function
 * runs), an event Lambda refuses as over its request limit (RequestEntityTooLargeException), an
 * invocation that failed (the function timed out, threw, or returned more than Lambda's
 * response limit: Lambda reports a function error, the HTTP API a 500), and an integration that
 * outlived the HTTP API's own 30 s.
 */
export const GATEWAY_ANSWERS = {
  bodyTooLarge: {
    status: 413,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: `HTTP content length exceeded ${MAX_BODY_BYTES} bytes.`,
  },
  eventTooLarge: { status: 413, headers: JSON_TYPE, body: '{"message":"Request Too Long"}' },
  integrationFailure: { status: 500, headers: JSON_TYPE, body: '{"message":"Internal Server Error"}' },
  integrationTimeout: { status: 503, headers: JSON_TYPE, body: '{"message":"Service Unavailable"}' },
} as const satisfies Record<string, GatewayAnswer>;

/** The part of Lambda's context the gateway builds for an invocation. */
export interface GatewayContext {
  awsRequestId: string;
  functionName: string;
  getRemainingTimeInMillis(): number;
}

type Handler = (event: HttpEvent, context: GatewayContext) => Promise<HttpResult>;

/** What an invocation came to: the function's result, or API Gateway's own answer and why. */
export type Invocation = { result: HttpResult } | { gateway: GatewayAnswer; why: string };

/**
 * Invokes `handler` with `event` as Lambda behind an HTTP API would: the event refused when its
 * JSON passes Lambda's request limit; throttled past the function's reserved concurrency; the function given `timeoutSeconds` (the context's
 * remaining time counts them down), after which the caller gets API Gateway's answer while the
 * handler, which Lambda would have stopped, runs on unheard here (its writes may still land, as
 * after a lost response); a result passing Lambda's response limit, or a thrown error, answered
 * as the integration failure it is in AWS.
 */
export async function invokeFunction(
  handler: Handler,
  event: HttpEvent,
  fn: { logicalId: string; timeoutSeconds: number; reservedConcurrency?: number },
  /** The clock the context's remaining time is read from (tests move theirs). */
  now: () => number = Date.now,
  /**
   * Invocations under way by function, shared by every invocation of one runtime: with a
   * reserved concurrency, one past it is throttled as Lambda throttles it (before the function
   * runs; the HTTP API answers 500).
   */
  running?: Map<string, number>,
): Promise<Invocation> {
  const eventBytes = bytesOverLimit(event, LAMBDA_REQUEST_LIMIT_BYTES);
  if (eventBytes !== undefined) {
    return { gateway: GATEWAY_ANSWERS.eventTooLarge, why: `the event is ${eventBytes} bytes, over Lambda's ${LAMBDA_REQUEST_LIMIT_BYTES}` };
  }
  const busy = running?.get(fn.logicalId) ?? 0;
  if (running && fn.reservedConcurrency !== undefined && busy >= fn.reservedConcurrency) {
    return {
      gateway: GATEWAY_ANSWERS.integrationFailure,
      why: `Lambda throttled the invocation (TooManyRequestsException): ${busy} of ${fn.reservedConcurrency} reserved concurrent executions in use`,
    };
  }
  running?.set(fn.logicalId, busy + 1);
  const functionMs = fn.timeoutSeconds * 1000;
  const deadline = now() + functionMs;
  const context: GatewayContext = {
    awsRequestId: event.requestContext.requestId,
    functionName: fn.logicalId,
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outlived = new Promise<Invocation>((done) => {
    timer = setTimeout(
      () =>
        done(
          functionMs <= INTEGRATION_TIMEOUT_MS
            ? { gateway: GATEWAY_ANSWERS.integrationFailure, why: `the function timed out after ${fn.timeoutSeconds} s` }
            : { gateway: GATEWAY_ANSWERS.integrationTimeout, why: `the integration took over ${INTEGRATION_TIMEOUT_MS / 1000} s` },
        ),
      Math.min(functionMs, INTEGRATION_TIMEOUT_MS),
    );
  });
  const ran = handler(event, context).then(
    (result): Invocation => {
      const bytes = bytesOverLimit(result, LAMBDA_RESPONSE_LIMIT_BYTES);
      return bytes !== undefined
        ? {
            gateway: GATEWAY_ANSWERS.integrationFailure,
            why: `the response is ${bytes} bytes, over Lambda's ${LAMBDA_RESPONSE_LIMIT_BYTES}`,
          }
        : { result };
    },
    (e: unknown): Invocation => ({
      gateway: GATEWAY_ANSWERS.integrationFailure,
      why: `the function threw: ${(e as Error)?.stack ?? String(e)}`,
    }),
  );
  try {
    return await Promise.race([ran, outlived]);
  } finally {
    clearTimeout(timer);
    // The environment is free again once the invocation ended, answered or timed out.
    if (running) running.set(fn.logicalId, (running.get(fn.logicalId) ?? 1) - 1);
  }
}

export interface RouteEntry {
  method: string;
  path: string;
  fn: string;
}

export interface Matched<R extends RouteEntry> {
  route: R;
  pathParameters: Record<string, string>;
}

/** Finds the route for a request; literal segments win over `{param}` ones, as in API Gateway. */
export function matchRoute<R extends RouteEntry>(routes: readonly R[], method: string, rawPath: string): Matched<R> | undefined {
  const parts = rawPath.split('/').filter(Boolean);
  let best: { m: Matched<R>; literals: number } | undefined;
  for (const route of routes) {
    if (route.method !== method) continue;
    const pattern = route.path.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let literals = 0;
    let ok = true;
    for (let i = 0; i < pattern.length && ok; i++) {
      const p = pattern[i]!;
      const v = parts[i]!;
      if (p.startsWith('{') && p.endsWith('}')) {
        try {
          params[p.slice(1, -1)] = decodeURIComponent(v);
        } catch {
          ok = false;
        }
      } else if (p === v) literals++;
      else ok = false;
    }
    if (ok && (!best || literals > best.literals)) best = { m: { route, pathParameters: params }, literals };
  }
  return best?.m;
}

export interface Caller {
  /** The IAM identity's ARN as the authorizer reports it. */
  userArn: string;
  accessKey: string;
  accountId: string;
}

/**
 * `queryStringParameters` as API Gateway's payload 2.0 sets it: decoded names and values, a
 * parameter given more than once joined with commas, absent when there is no query string.
 */
export function queryParametersOf(raw: string): { queryStringParameters?: Record<string, string> } {
  const text = raw.startsWith('?') ? raw.slice(1) : raw;
  const decode = (x: string): string => {
    try {
      return decodeURIComponent(x.replace(/\+/g, ' '));
    } catch {
      return x;
    }
  };
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decode(eq < 0 ? part : part.slice(0, eq));
    const v = decode(eq < 0 ? '' : part.slice(eq + 1));
    params[k] = k in params ? `${params[k]},${v}` : v;
  }
  return Object.keys(params).length ? { queryStringParameters: { ...params } } : {};
}

export function toEvent(req: {
  method: string;
  rawPath: string;
  rawQueryString?: string;
  headers?: Record<string, string>;
  body?: string;
  route: RouteEntry;
  pathParameters: Record<string, string>;
  caller: Caller;
  sourceIp?: string;
}): HttpEvent {
  const now = new Date();
  const routeKey = `${req.route.method} ${req.route.path}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: req.rawPath,
    rawQueryString: req.rawQueryString ?? '',
    ...queryParametersOf(req.rawQueryString ?? ''),
    headers: req.headers ?? {},
    pathParameters: Object.keys(req.pathParameters).length ? req.pathParameters : undefined,
    requestContext: {
      accountId: req.caller.accountId,
      apiId: 'local',
      domainName: '127.0.0.1',
      domainPrefix: '127',
      http: {
        method: req.method,
        path: req.rawPath,
        protocol: 'HTTP/1.1',
        sourceIp: req.sourceIp ?? '127.0.0.1',
        userAgent: req.headers?.['user-agent'] ?? '',
      },
      requestId: `local-${now.getTime().toString(36)}-${Math.random().toString(36).slice(2, 10)}`,
      routeKey,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
      authorizer: {
        iam: {
          accessKey: req.caller.accessKey,
          accountId: req.caller.accountId,
          callerId: req.caller.userArn.split('/').pop() ?? '',
          cognitoIdentity: null as never,
          principalOrgId: null as never,
          userArn: req.caller.userArn,
          userId: req.caller.userArn.split('/').pop() ?? '',
        },
      },
    },
    body: req.body,
    isBase64Encoded: false,
  } as HttpEvent;
}
