/**
 * What API Gateway's HTTP API does in front of the functions: match a request against the
 * route table and build the payload-2.0 event, with the IAM authorizer's identity.
 */
import type { HttpEvent } from '../lambdas/http/api';

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
    headers: req.headers ?? {},
    pathParameters: Object.keys(req.pathParameters).length ? req.pathParameters : undefined,
    requestContext: {
      accountId: req.caller.accountId,
      apiId: 'local',
      domainName: '127.0.0.1',
      domainPrefix: '127',
      http: { method: req.method, path: req.rawPath, protocol: 'HTTP/1.1', sourceIp: req.sourceIp ?? '127.0.0.1', userAgent: req.headers?.['user-agent'] ?? '' },
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
