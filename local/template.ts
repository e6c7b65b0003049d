/**
 * The local runtime's view of the deployed system, read from the stack's synthesized
 * CloudFormation template: routes (with their authorization), the function behind each
 * route (handler module, timeout, environment) and the tables (keys, indexes, TTL). Nothing here is
 * restated by hand: change the stack and the local runtime follows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { LogrelayStack, type LogrelayStackProps } from '../lib/logrelay-stack';
import { LocalAppConfig } from './appconfig';
import { resolveIntrinsics } from './stepfunctions';

// biome-ignore lint/suspicious/noExplicitAny: a synthesized CloudFormation template: the shape of Properties depends on the resource type, and typing it would mean CloudFormation's schema for every type the local runtime reads
export type Template = { Resources: Record<string, { Type: string; Properties?: any; Metadata?: Record<string, unknown> }> };

export interface LocalFunction {
  logicalId: string;
  /** Handler module, relative to the project root (the function's `logrelay:entry` metadata). */
  entry: string;
  timeoutSeconds: number;
  /** The function's reserved concurrency (ReservedConcurrentExecutions), when it has one: also its cap. */
  reservedConcurrency?: number;
  /** Environment with table references resolved to local table names. */
  environment: Record<string, string>;
}

export interface LocalRoute {
  method: string;
  path: string;
  routeKey: string;
  authorizationType: string;
  fn: string;
  function: LocalFunction;
}

export interface LocalTable {
  logicalId: string;
  name: string;
  keySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  attributeDefinitions: { AttributeName: string; AttributeType: 'S' | 'N' | 'B' }[];
  /** The table's global secondary indexes, as the template declares them (none: absent). */
  globalSecondaryIndexes?: LocalIndex[];
  ttlAttribute?: string;
}

export interface LocalIndex {
  IndexName: string;
  KeySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  Projection: { ProjectionType: 'KEYS_ONLY' | 'INCLUDE' | 'ALL'; NonKeyAttributes?: string[] };
}

export interface LocalSystem {
  routes: LocalRoute[];
  functions: Record<string, LocalFunction>;
  tables: LocalTable[];
}

/** Synthesizes the stack in this process, without bundling the functions (the runtime runs their source). */
export function synthTemplate(props: LogrelayStackProps = {}): Template {
  const outdir = mkdtempSync(join(tmpdir(), 'logrelay-synth-'));
  try {
    const app = new App({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
    new LogrelayStack(app, 'Logrelay', props);
    return app.synth().getStackByName('Logrelay').template as Template;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

const refOf = (v: unknown): string | undefined =>
  v && typeof v === 'object' && 'Ref' in v ? String((v as { Ref: unknown }).Ref) : undefined;

const getAttOf = (v: unknown): string | undefined =>
  v && typeof v === 'object' && 'Fn::GetAtt' in v ? String((v as { 'Fn::GetAtt': unknown[] })['Fn::GetAtt'][0]) : undefined;

/** `integrations/<Ref>` as the template writes a route's target. */
function integrationOf(target: unknown): string | undefined {
  const join = (target as { 'Fn::Join'?: [string, unknown[]] })?.['Fn::Join'];
  if (!join) return undefined;
  const parts = join[1];
  if (parts[0] !== 'integrations/') return undefined;
  return refOf(parts[1]);
}

/**
 * Reads routes, functions and tables out of a synthesized template. `resolve` turns an
 * environment value that is not a plain string or a table reference (an AppConfig id, a state
 * machine ARN) into its local value; without it such a value is an error.
 */
export function readSystem(
  template: Template,
  tableName: (logicalId: string) => string = (id) => id,
  resolve?: (value: unknown, where: string) => string,
): LocalSystem {
  const res = template.Resources;
  const tables: LocalTable[] = [];
  for (const [logicalId, r] of Object.entries(res)) {
    if (r.Type !== 'AWS::DynamoDB::Table') continue;
    const p = r.Properties;
    const t: LocalTable = {
      logicalId,
      name: tableName(logicalId),
      keySchema: p.KeySchema,
      attributeDefinitions: p.AttributeDefinitions,
    };
    if (Array.isArray(p.GlobalSecondaryIndexes) && p.GlobalSecondaryIndexes.length) {
      t.globalSecondaryIndexes = p.GlobalSecondaryIndexes.map((g: LocalIndex) => ({
        IndexName: g.IndexName,
        KeySchema: g.KeySchema,
        Projection: g.Projection,
      }));
    }
    if (p.TimeToLiveSpecification?.Enabled) t.ttlAttribute = p.TimeToLiveSpecification.AttributeName;
    tables.push(t);
  }
  const tableNames = new Map(tables.map((t) => [t.logicalId, t.name]));
  let appConfig: LocalAppConfig | undefined;
  const resolveValue =
    resolve ??
    ((v: unknown, where: string): string => {
      appConfig ??= LocalAppConfig.fromTemplate(template);
      const ac = appConfig;
      return String(
        resolveIntrinsics(template, v, where, {
          tableName: (id) => tableNames.get(id) ?? id,
          ref: (id) => ac.resolveRef(id),
          getAtt: (id, attr) => ac.resolveGetAtt(id, attr),
        }),
      );
    });

  const functions: Record<string, LocalFunction> = {};
  for (const [logicalId, r] of Object.entries(res)) {
    if (r.Type !== 'AWS::Lambda::Function') continue;
    const entry = r.Metadata?.['logrelay:entry'];
    if (typeof entry !== 'string') continue; // not one of ours (e.g. a custom resource provider)
    const environment: Record<string, string> = {};
    for (const [k, v] of Object.entries<unknown>(r.Properties?.Environment?.Variables ?? {})) {
      const ref = refOf(v);
      if (typeof v === 'string') environment[k] = v;
      else if (ref && tableNames.has(ref)) environment[k] = tableNames.get(ref)!;
      else environment[k] = resolveValue(v, `Function ${logicalId} environment ${k}`);
    }
    const reserved = r.Properties?.ReservedConcurrentExecutions;
    functions[logicalId] = {
      logicalId,
      entry,
      timeoutSeconds: r.Properties?.Timeout ?? 3,
      environment,
      ...(typeof reserved === 'number' ? { reservedConcurrency: reserved } : {}),
    };
  }

  const routes: LocalRoute[] = [];
  for (const [logicalId, r] of Object.entries(res)) {
    if (r.Type !== 'AWS::ApiGatewayV2::Route') continue;
    const routeKey: string = r.Properties.RouteKey;
    const [method, path] = routeKey.split(' ') as [string, string];
    const integrationId = integrationOf(r.Properties.Target);
    const integration = integrationId ? res[integrationId] : undefined;
    const fnId = getAttOf(integration?.Properties?.IntegrationUri);
    const fn = fnId ? functions[fnId] : undefined;
    if (!fn) throw new Error(`Route ${logicalId} (${routeKey}) does not target one of the service's functions`);
    if (integration?.Properties?.PayloadFormatVersion !== '2.0')
      throw new Error(`Route ${routeKey}: the local runtime speaks payload format 2.0 only`);
    const fnName = fn.entry.replace(/^.*\//, '').replace(/\.ts$/, '');
    routes.push({ method, path, routeKey, authorizationType: r.Properties.AuthorizationType ?? 'NONE', fn: fnName, function: fn });
  }
  return { routes, functions, tables };
}
