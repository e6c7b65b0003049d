/**
 * Calls one function's handler directly, as API Gateway would for a route: the route matched
 * from the table, a payload 2.0 event signed by `caller`, a JSON body; the answer parsed. For
 * tests that build hosts of their own (cold caches, counting stand-ins) instead of the runtime's.
 */
import { matchRoute, toEvent, type GatewayContext } from '../../local/gateway';
import type { HttpEvent, HttpResult } from '../../lambdas/http/api';
import { ROUTES } from '../../lambdas/routes';

export interface Caller {
  userArn: string;
  accessKey: string;
  accountId: string;
}

export async function callRoute(
  handler: (e: HttpEvent, c: GatewayContext) => Promise<HttpResult>,
  caller: Caller,
  method: string,
  path: string,
  body: unknown,
): Promise<{ status: number; body: any }> {
  const m = matchRoute(ROUTES, method, path);
  if (!m) throw new Error(`no route ${method} ${path}`);
  const event = toEvent({
    method,
    rawPath: path,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    route: m.route,
    pathParameters: m.pathParameters,
    caller,
  });
  const res = await handler(event, { getRemainingTimeInMillis: () => 10_000, awsRequestId: 'direct', functionName: m.route.fn });
  return { status: res.statusCode ?? 200, body: res.body ? JSON.parse(res.body) : undefined };
}
