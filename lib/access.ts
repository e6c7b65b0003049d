/**
 * Pure helpers that turn lambdas/routes.ts and lambdas/tables.ts into IAM terms. Kept free of
 * constructs so the tests can exercise them directly.
 */
import type { Access, RouteDef } from '../lambdas/routes';
import type { TableDef } from '../lambdas/tables';

/** The key a table has in FUNCTION_ACCESS: its logical id in lower case ('Logs' -> 'logs'). */
export type TableKey = Lowercase<TableDef['id']>;
export const tableKey = (def: Pick<TableDef, 'id'>): TableKey => def.id.toLowerCase() as TableKey;

/**
 * The item-level DynamoDB actions the handlers use (lambdas/adapters: Get, BatchGet, Query;
 * Put, Update, Delete, BatchWrite). Deliberately narrower than grantReadData / grantWriteData:
 * no Scan, ConditionCheckItem (transactions), DescribeTable or stream actions. A handler that
 * starts using one of those needs it added here.
 */
export const DYNAMODB_READ_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'] as const;
export const DYNAMODB_WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
] as const;

export function dynamoActionsFor(access: Access): string[] {
  switch (access) {
    case 'read':
      return [...DYNAMODB_READ_ACTIONS];
    case 'write':
      return [...DYNAMODB_WRITE_ACTIONS];
    case 'readwrite':
      return [...DYNAMODB_READ_ACTIONS, ...DYNAMODB_WRITE_ACTIONS];
  }
}

/**
 * Admin routes (shared/API.md "Configs and bakes (admin)") are recognised by their first path
 * segment; everything else is a data route for workers and producers.
 */
export const ADMIN_PATH_PREFIXES = ['/configs', '/bakes'] as const;

export const isAdminRoute = (route: Pick<RouteDef, 'path'>): boolean =>
  ADMIN_PATH_PREFIXES.some((p) => route.path === p || route.path.startsWith(`${p}/`));

export type PolicyAudience = 'worker' | 'operator';

/** Workers and producers get the data routes; operators get the data routes and the admin routes. */
export function routesFor<R extends Pick<RouteDef, 'path'>>(routes: readonly R[], audience: PolicyAudience): R[] {
  return audience === 'operator' ? [...routes] : routes.filter((r) => !isAdminRoute(r));
}

/**
 * The part of an execute-api ARN after `<apiId>/<stage>/`: `METHOD/path`, with every path
 * parameter segment (`{logId}`, `{proxy+}`) replaced by `*`, because IAM evaluates the ARN of
 * the concrete request path, not of the route template.
 */
export function executeApiResourcePath(route: Pick<RouteDef, 'method' | 'path'>): string {
  const path = route.path
    .split('/')
    .map((segment) => (/^\{[^}]+\}$/.test(segment) ? '*' : segment))
    .join('/');
  return `${route.method}${path}`;
}
