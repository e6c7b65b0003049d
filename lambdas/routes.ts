/**
 * The one route table of the service: which Lambda function serves which route of
 * shared/API.md. The CDK stack builds the HTTP API from it; each handler dispatches on the
 * event's routeKey with the same strings. Nothing else restates routes.
 */
export type FunctionName = 'logs' | 'append' | 'sessions' | 'receive' | 'leases' | 'admin';
/**
 * Functions behind no route: the bake state machine's task function, and the upgrade a
 * deployment runs (a CloudFormation trigger, before the data routes' functions get new code).
 */
export type TaskFunctionName = 'bake' | 'upgrade';

export interface RouteDef {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  fn: FunctionName;
}

export const ROUTES: readonly RouteDef[] = [
  { method: 'POST', path: '/logs', fn: 'logs' },
  { method: 'GET', path: '/logs/{logId}', fn: 'logs' },
  { method: 'POST', path: '/logs/{logId}/records', fn: 'append' },
  { method: 'POST', path: '/logs/{logId}/sessions', fn: 'sessions' },
  { method: 'GET', path: '/sessions/{sessionId}', fn: 'sessions' },
  { method: 'GET', path: '/sessions/{sessionId}/dead-letters', fn: 'sessions' },
  { method: 'DELETE', path: '/sessions/{sessionId}', fn: 'sessions' },
  { method: 'POST', path: '/sessions/{sessionId}/receive', fn: 'receive' },
  { method: 'POST', path: '/sessions/{sessionId}/ack', fn: 'leases' },
  { method: 'POST', path: '/sessions/{sessionId}/nack', fn: 'leases' },
  { method: 'POST', path: '/sessions/{sessionId}/extend', fn: 'leases' },
  { method: 'GET', path: '/configs', fn: 'admin' },
  { method: 'POST', path: '/configs/{profile}/versions', fn: 'admin' },
  { method: 'GET', path: '/configs/{profile}/versions/{version}', fn: 'admin' },
  { method: 'POST', path: '/bakes', fn: 'admin' },
  { method: 'GET', path: '/bakes', fn: 'admin' },
  { method: 'GET', path: '/bakes/{bakeId}', fn: 'admin' },
  { method: 'POST', path: '/bakes/{bakeId}/abort', fn: 'admin' },
] as const;

export const routeKey = (r: Pick<RouteDef, 'method' | 'path'>): string => `${r.method} ${r.path}`;

/**
 * What each function may do to each table: the stack grants exactly this, and the CDK tests
 * check the synthesized policies against it. Every host reads the Control table (its rollout
 * state); only the admin routes, the bake and the deploy-time upgrade write it.
 */
export type Access = 'read' | 'write' | 'readwrite';
export const FUNCTION_ACCESS: Record<
  FunctionName | TaskFunctionName,
  { logs?: Access; records?: Access; sessions?: Access; control?: Access }
> = {
  logs: { logs: 'readwrite', records: 'read', control: 'read' },
  append: { logs: 'readwrite', records: 'readwrite', control: 'read' },
  sessions: { logs: 'read', records: 'read', sessions: 'readwrite', control: 'read' },
  receive: { logs: 'read', records: 'read', sessions: 'readwrite', control: 'read' },
  leases: { sessions: 'readwrite', control: 'read' },
  admin: { control: 'readwrite' },
  bake: { control: 'readwrite' },
  upgrade: { control: 'readwrite' },
};

/**
 * The global secondary indexes (lambdas/tables.ts) each function queries, by table: the stack
 * grants `dynamodb:Query` on exactly these index ARNs and no other index action, and the CDK
 * tests check it. GET /bakes (admin) lists bake records newest first from `bakesByTime`.
 */
export const FUNCTION_INDEX_QUERIES: Partial<
  Record<FunctionName | TaskFunctionName, Partial<Record<keyof (typeof FUNCTION_ACCESS)[FunctionName], readonly string[]>>>
> = {
  admin: { control: ['bakesByTime'] },
};

/**
 * Seconds each function may run: receive long-polls up to 20 s under API Gateway's 30 s cap. The
 * upgrade makes a few calls (one read, one AppConfig read per missing version, one write), each
 * with the SDK's three attempts; its trigger waits up to 2 minutes for it.
 */
export const FUNCTION_TIMEOUT_SECONDS: Record<FunctionName | TaskFunctionName, number> = {
  logs: 10,
  append: 15,
  sessions: 10,
  receive: 28,
  leases: 10,
  admin: 15,
  bake: 30,
  upgrade: 60,
};
