/**
 * The CDK stack against its sources of truth: lambdas/routes.ts, lambdas/tables.ts,
 * lambdas/domain/config.ts, lambdas/metrics.ts, openapi.json and cdk-nag's AwsSolutions pack.
 * The stack is synthesized once (bundling the eight handlers with esbuild takes a few seconds).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, CfnResource as CdkCfnResource, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Construct } from 'constructs';
import { dynamoActionsFor, isAdminRoute, routesFor, tableKey } from '../lib/access';
import {
  DEFAULT_RESERVED_CONCURRENCY,
  LogrelayStack,
  reservedConcurrencyFromContext,
  type LogrelayStackProps,
} from '../lib/logrelay-stack';
import { CLEANUP_THROTTLE_ATTEMPTS, EVENT_RETRY, EVENT_TIMEOUT_SECONDS, THROTTLE_RETRY } from '../lib/config-bake';
import { contentOf, DEFAULT_CONFIG, INITIAL_ROLLOUT, PROFILES, profileJsonSchema, type ProfileName } from '../lambdas/domain/config';
import { ALARM_PERIOD_SECONDS, ARM_METRICS, BAKE_METRICS, METRIC_NAMESPACE, SERVICE_NAME } from '../lambdas/metrics';
import {
  FUNCTION_ACCESS,
  FUNCTION_INDEX_QUERIES,
  FUNCTION_TIMEOUT_SECONDS,
  ROUTES,
  routeKey,
  type Access,
  type FunctionName,
  type TaskFunctionName,
} from '../lambdas/routes';
import { TABLES } from '../lambdas/tables';

// Synthesized CloudFormation is untyped JSON.
type Json = any;
interface CfnResource {
  Type: string;
  Properties: Json;
  DeletionPolicy?: string;
  Metadata?: Record<string, unknown>;
}
type AnyFunctionName = FunctionName | TaskFunctionName;

/** The subset of the Amazon States Language the bake's definition uses. */
interface AslState {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  Next?: string;
  Catch?: { ErrorEquals: string[]; Next: string }[];
  Retry?: { ErrorEquals: string[]; IntervalSeconds?: number; MaxAttempts?: number; BackoffRate?: number; MaxDelaySeconds?: number }[];
}
interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
}

let app: App;
let stack: LogrelayStack;
let template: Template;
let resources: Record<string, CfnResource>;
let outputs: Record<string, { Value: Json }>;

const ofType = (type: string): [string, CfnResource][] => Object.entries(resources).filter(([, r]) => r.Type === type);
/** The logical id of the one resource of a type. */
const onlyOf = (type: string): string => {
  const found = ofType(type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0]![0];
};
const refOf = (v: Json): string => {
  if (v && typeof v === 'object' && typeof v.Ref === 'string') return v.Ref;
  throw new Error(`expected a Ref, got ${JSON.stringify(v)}`);
};
const getAttOf = (v: Json, attribute: string): string => {
  if (v && Array.isArray(v['Fn::GetAtt']) && v['Fn::GetAtt'][1] === attribute) return v['Fn::GetAtt'][0];
  throw new Error(`expected Fn::GetAtt .${attribute}, got ${JSON.stringify(v)}`);
};
const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const capitalized = (s: string): string => `${s[0]!.toUpperCase()}${s.slice(1)}`;

/**
 * A CloudFormation value as one string, in cdk-nag's notation: `Ref` -> `<Id>`, `Fn::GetAtt` ->
 * `<Id.Attr>`, `Fn::Join` joined. The placeholders hold no quotes, so a flattened JSON document
 * (a state machine definition, a dashboard body) still parses.
 */
function flat(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.Ref === 'string') return `<${o.Ref}>`;
    const att = o['Fn::GetAtt'];
    if (Array.isArray(att)) return `<${att.join('.')}>`;
    const join = o['Fn::Join'];
    if (Array.isArray(join)) {
      const [delimiter, parts] = join as [string, unknown[]];
      return parts.map(flat).join(delimiter);
    }
  }
  throw new Error(`cannot flatten ${JSON.stringify(v)}`);
}

/** Every statement of the AWS::IAM::Policy resources attached to a role (which has no other policy). */
function statementsOf(roleId: string): Json[] {
  const role = resources[roleId]!;
  expect(role.Type).toBe('AWS::IAM::Role');
  expect(role.Properties.ManagedPolicyArns ?? [], roleId).toEqual([]);
  expect(role.Properties.Policies ?? [], roleId).toEqual([]);
  expect(ofType('AWS::IAM::ManagedPolicy').filter(([, p]) => asArray(p.Properties.Roles).some((r: Json) => r?.Ref === roleId))).toEqual([]);
  return ofType('AWS::IAM::Policy')
    .filter(([, policy]) => asArray(policy.Properties.Roles).some((r: Json) => r?.Ref === roleId))
    .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement as Json[]);
}

/**
 * Every `action resource` pair the AWS::IAM::Policy resources attached to a role allow, all
 * unconditioned; except the statements `apart` picks, which are left out for the caller to check
 * whole (a conditioned one).
 */
function grantsOf(roleId: string, apart: (st: Json) => boolean = () => false): string[] {
  const pairs: string[] = [];
  for (const st of statementsOf(roleId)) {
    if (apart(st)) continue;
    expect(st.Effect, roleId).toBe('Allow');
    expect(st.Condition, roleId).toBeUndefined();
    expect(st.NotAction ?? st.NotResource, roleId).toBeUndefined();
    for (const action of asArray<string>(st.Action)) for (const res of asArray<Json>(st.Resource)) pairs.push(`${action} ${flat(res)}`);
  }
  return pairs.sort();
}
const pairs = (actions: readonly string[], resourceStrings: readonly string[]): string[] =>
  actions.flatMap((a) => resourceStrings.map((r) => `${a} ${r}`));

/** Logical id of each table, found through the stack output that names it. */
const tableLogicalIds = (): Map<string, string> => new Map(TABLES.map((t) => [refOf(outputs[`${t.id}TableName`]?.Value), tableKey(t)]));

/** fn -> logical id of its Lambda function, found through the routes that target it. */
function functionLogicalIds(): Map<FunctionName, string> {
  const routeByKey = new Map(ofType('AWS::ApiGatewayV2::Route').map(([, r]) => [r.Properties.RouteKey as string, r]));
  const out = new Map<FunctionName, string>();
  for (const route of ROUTES) {
    const cfnRoute = routeByKey.get(routeKey(route));
    if (!cfnRoute) throw new Error(`no route ${routeKey(route)}`);
    const target = cfnRoute.Properties.Target['Fn::Join'][1];
    const integration = resources[refOf(target[1])]!;
    const fnId = getAttOf(integration.Properties.IntegrationUri, 'Arn');
    const seen = out.get(route.fn);
    if (seen && seen !== fnId) throw new Error(`routes of ${route.fn} go to two functions (${seen}, ${fnId})`);
    out.set(route.fn, fnId);
  }
  return out;
}

/** The bake state machine's definition, its tokens flattened (see `flat`). */
const bakeDefinition = (): AslDefinition =>
  JSON.parse(flat(resources[onlyOf('AWS::StepFunctions::StateMachine')]!.Properties.DefinitionString)) as AslDefinition;

/** Logical id of the bake's task function: the one function the state machine's Lambda tasks invoke. */
function bakeFunctionLogicalId(): string {
  const invoked = new Set(
    Object.values(bakeDefinition().States)
      .map((s) => s.Resource)
      // biome-ignore lint/complexity/useOptionalChain: a type guard must return a boolean, which r?.startsWith('<') is not
      .filter((r): r is string => r !== undefined && r.startsWith('<')),
  );
  expect([...invoked]).toHaveLength(1);
  const [only] = [...invoked];
  const id = /^<(.+)\.Arn>$/.exec(only!)?.[1];
  expect(resources[id!]?.Type).toBe('AWS::Lambda::Function');
  return id!;
}

/** The deploy-time upgrade's trigger: the one Custom::Trigger. */
const triggerLogicalId = (): string => onlyOf('Custom::Trigger');

/** Logical id of the upgrade function: the function whose version the trigger invokes. */
function upgradeFunctionLogicalId(): string {
  const version = resources[refOf(resources[triggerLogicalId()]!.Properties.HandlerArn)]!;
  expect(version.Type).toBe('AWS::Lambda::Version');
  const id = refOf(version.Properties.FunctionName);
  expect(resources[id]?.Type).toBe('AWS::Lambda::Function');
  return id;
}

/** Every function of the stack: the route functions, the bake's task function and the upgrade. */
const allFunctionLogicalIds = (): Map<AnyFunctionName, string> =>
  new Map<AnyFunctionName, string>([...functionLogicalIds(), ['bake', bakeFunctionLogicalId()], ['upgrade', upgradeFunctionLogicalId()]]);

const HOST_FUNCTIONS = ['logs', 'append', 'sessions', 'receive', 'leases'] as const satisfies readonly FunctionName[];

/** AppConfig: the application and each profile's logical id (profiles found by name). */
function appConfigLogicalIds(): { application: string; profiles: Record<ProfileName, string> } {
  const profiles = {} as Record<ProfileName, string>;
  for (const [id, r] of ofType('AWS::AppConfig::ConfigurationProfile')) profiles[r.Properties.Name as ProfileName] = id;
  return { application: onlyOf('AWS::AppConfig::Application'), profiles };
}
/** A profile's ARN (and, with `/hostedconfigurationversion/*`, its versions'), flattened. */
const profileArn = (profile: ProfileName): string => {
  const ids = appConfigLogicalIds();
  return `arn:<AWS::Partition>:appconfig:<AWS::Region>:<AWS::AccountId>:application/<${ids.application}>/configurationprofile/<${ids.profiles[profile]}>`;
};
const versionsArn = (profile: ProfileName): string => `${profileArn(profile)}/hostedconfigurationversion/*`;

/** The six alarms of the bake, by the name after `${stackName}-bake-`. */
const BAKE_ALARM_NAMES = [
  'experiment-5xx-rate',
  'experiment-p99-latency',
  'experiment-5xx-vs-control',
  'experiment-4xx-vs-control',
  'slo-5xx-rate',
  'slo-p99-latency',
] as const;
function bakeAlarmLogicalIds(): Map<string, string> {
  const byName = new Map(ofType('AWS::CloudWatch::Alarm').map(([id, r]) => [r.Properties.AlarmName as string, id]));
  return new Map(
    BAKE_ALARM_NAMES.map((n) => {
      const id = byName.get(`Logrelay-bake-${n}`);
      if (!id) throw new Error(`no alarm Logrelay-bake-${n}`);
      return [n, id];
    }),
  );
}

/** CDK's grants for Step Functions logging (CloudWatch Logs vended log delivery) and X-Ray tracing: none supports resource-level permissions. */
const LOG_DELIVERY_ACTIONS = [
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
];
const FUNCTION_XRAY_ACTIONS = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'];
const STATE_MACHINE_XRAY_ACTIONS = [...FUNCTION_XRAY_ACTIONS, 'xray:GetSamplingRules', 'xray:GetSamplingTargets'];

beforeAll(() => {
  app = new App();
  stack = new LogrelayStack(app, 'Logrelay');
  template = Template.fromStack(stack);
  const json = template.toJSON();
  resources = json.Resources;
  outputs = json.Outputs;
});

describe('DynamoDB tables', () => {
  it('exist once per TABLES entry', () => {
    expect(ofType('AWS::DynamoDB::Table')).toHaveLength(TABLES.length);
    expect(ofType('AWS::DynamoDB::GlobalTable')).toHaveLength(0);
  });

  it.each(TABLES.map((t) => [t.id, t] as const))('%s: keys, TTL, PITR, on-demand, encryption, retained', (_id, def) => {
    const logicalId = refOf(outputs[`${def.id}TableName`]?.Value);
    const table = resources[logicalId]!;
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    const p = table.Properties;
    const keys = [def.partitionKey, ...(def.sortKey ? [def.sortKey] : [])];
    expect(p.KeySchema).toEqual([
      { AttributeName: def.partitionKey.name, KeyType: 'HASH' },
      ...(def.sortKey ? [{ AttributeName: def.sortKey.name, KeyType: 'RANGE' }] : []),
    ]);
    const indexKeys = (def.indexes ?? []).flatMap((ix) => [ix.partitionKey, ix.sortKey]);
    expect(p.AttributeDefinitions).toEqual([...keys, ...indexKeys].map((k) => ({ AttributeName: k.name, AttributeType: k.type })));
    // Indexes as TABLES declares them, keys only (the table's key and the index's), no throughput of their own.
    expect(p.GlobalSecondaryIndexes).toEqual(
      def.indexes?.map((ix) => ({
        IndexName: ix.name,
        KeySchema: [
          { AttributeName: ix.partitionKey.name, KeyType: 'HASH' },
          { AttributeName: ix.sortKey.name, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      })),
    );
    expect(p.TimeToLiveSpecification).toEqual({ AttributeName: def.ttlAttribute, Enabled: true });
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(p.BillingMode).toBe('PAY_PER_REQUEST');
    expect(p.ProvisionedThroughput).toBeUndefined();
    expect(p.SSESpecification).toEqual({ SSEEnabled: true }); // AWS managed KMS key
    expect(table.DeletionPolicy).toBe('Retain');
  });

  it('honours the removalPolicy prop', () => {
    const other = new LogrelayStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Other', {
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const t = Template.fromStack(other).toJSON().Resources as Record<string, CfnResource>;
    const tables = Object.values(t).filter((r) => r.Type === 'AWS::DynamoDB::Table');
    expect(tables).toHaveLength(TABLES.length);
    for (const r of tables) expect(r.DeletionPolicy).toBe('Delete');
    // ...and does not leak into the default, which the main stack keeps at RETAIN.
    expect(Object.values(resources).filter((r) => r.Type === 'AWS::DynamoDB::Table' && r.DeletionPolicy !== 'Retain')).toEqual([]);
  });
});

describe('HTTP API', () => {
  it('has exactly the ROUTES, every one with IAM authorization', () => {
    const routes = ofType('AWS::ApiGatewayV2::Route');
    expect(routes.length).toBeGreaterThan(0);
    for (const [id, r] of routes) {
      expect(r.Properties.AuthorizationType, id).toBe('AWS_IAM');
    }
    const keys = routes.map(([, r]) => r.Properties.RouteKey as string);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(keys)).toEqual(new Set(ROUTES.map(routeKey)));
  });

  it('sends each route to its own function with payload format 2.0', () => {
    const fns = functionLogicalIds();
    const distinct = new Set(ROUTES.map((r) => r.fn));
    expect(fns.size).toBe(distinct.size);
    expect(new Set(fns.values()).size).toBe(distinct.size); // different fns, different functions
    for (const [, integration] of ofType('AWS::ApiGatewayV2::Integration')) {
      expect(integration.Properties).toMatchObject({ IntegrationType: 'AWS_PROXY', PayloadFormatVersion: '2.0' });
    }
  });

  it('logs access on the default stage and throttles it', () => {
    const stages = ofType('AWS::ApiGatewayV2::Stage');
    expect(stages).toHaveLength(1);
    const p = stages[0]![1].Properties;
    expect(p.StageName).toBe('$default');
    const logGroup = resources[getAttOf(p.AccessLogSettings.DestinationArn, 'Arn')]!;
    expect(logGroup.Type).toBe('AWS::Logs::LogGroup');
    expect(logGroup.Properties.RetentionInDays).toBeGreaterThan(0);
    const format = JSON.parse(p.AccessLogSettings.Format);
    expect(format.requestId).toBe('$context.requestId');
    expect(format.userArn).toBe('$context.identity.userArn');
    expect(p.DefaultRouteSettings.ThrottlingRateLimit).toBeGreaterThan(0);
    expect(p.DefaultRouteSettings.ThrottlingBurstLimit).toBeGreaterThan(0);
  });

  it("delivers the access log and the bake's execution log to log groups under /aws/vendedlogs/, named per stack instance", () => {
    // The name CloudFormation resolves: the stack's name and the UUID of its stack id.
    const expected = (service: string, purpose: string, stackName: string) => ({
      'Fn::Join': [
        '',
        [`/aws/vendedlogs/${service}/${stackName}-${purpose}-`, { 'Fn::Select': [2, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] }],
      ],
    });
    const stage = resources[onlyOf('AWS::ApiGatewayV2::Stage')]!;
    const accessLogs = resources[getAttOf(stage.Properties.AccessLogSettings.DestinationArn, 'Arn')]!;
    expect(accessLogs.Properties.LogGroupName).toEqual(expected('apigateway', 'access', 'Logrelay'));
    const sm = resources[onlyOf('AWS::StepFunctions::StateMachine')]!;
    const destinations = sm.Properties.LoggingConfiguration.Destinations as Json[];
    expect(destinations).toHaveLength(1);
    const smLogs = resources[getAttOf(destinations[0].CloudWatchLogsLogGroup.LogGroupArn, 'Arn')]!;
    expect(smLogs.Properties.LogGroupName).toEqual(expected('states', 'bake', 'Logrelay'));
    // Every log group some service delivers to is one of these two; the functions' own log
    // groups are written by the functions' roles, not through log delivery, and keep generated names.
    for (const [, g] of ofType('AWS::Logs::LogGroup')) {
      if (g !== accessLogs && g !== smLogs) expect(g.Properties.LogGroupName).toBeUndefined();
    }
    // A second stack in the same account gets names of its own.
    const other = Template.fromStack(new LogrelayStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Staging')).toJSON()
      .Resources as Record<string, CfnResource>;
    const names = Object.values(other)
      .filter((r) => r.Type === 'AWS::Logs::LogGroup' && r.Properties.LogGroupName)
      .map((r) => r.Properties.LogGroupName);
    expect(names).toEqual(expect.arrayContaining([expected('apigateway', 'access', 'Staging'), expected('states', 'bake', 'Staging')]));
    expect(names).toHaveLength(2);
  });

  it('outputs the URL, both policy ARNs, the bake events bus and every table name', () => {
    expect(getAttOf(outputs.ApiUrl?.Value, 'ApiEndpoint')).toBe(ofType('AWS::ApiGatewayV2::Api')[0]![0]);
    // The bus the state machine may publish to is the one the output names.
    expect(JSON.stringify(outputs.BakeEventBusArn?.Value)).toMatch(/:events:.*:event-bus\/default"/);
    const smPolicies = JSON.stringify(ofType('AWS::IAM::Policy').map(([, r]) => r.Properties.PolicyDocument));
    expect(smPolicies).toContain(JSON.stringify(outputs.BakeEventBusArn?.Value));
    expect(resources[refOf(outputs.WorkerPolicyArn?.Value)]?.Type).toBe('AWS::IAM::ManagedPolicy');
    expect(resources[refOf(outputs.OperatorPolicyArn?.Value)]?.Type).toBe('AWS::IAM::ManagedPolicy');
    for (const t of TABLES) expect(resources[refOf(outputs[`${t.id}TableName`]?.Value)]?.Type).toBe('AWS::DynamoDB::Table');
  });
});

describe('Lambda functions', () => {
  const newestNodeRuntime = (): string =>
    lambda.Runtime.ALL.map((r) => r.name)
      .filter((n) => /^nodejs\d+\.x$/.test(n))
      .sort((a, b) => parseInt(a.slice(6), 10) - parseInt(b.slice(6), 10))
      .pop()!;

  it("one per function name in ROUTES, one for the bake's tasks and one for the upgrade, on the newest Node.js runtime, arm64, traced", () => {
    const fns = allFunctionLogicalIds();
    const routeFunctions = new Set(functionLogicalIds().values());
    expect(routeFunctions.has(fns.get('bake')!)).toBe(false); // the bake's function serves no route
    expect(routeFunctions.has(fns.get('upgrade')!)).toBe(false); // nor does the upgrade
    // Every other function is CDK's: the one trigger provider, which the trigger's custom resource calls.
    const others = ofType('AWS::Lambda::Function').filter(([id]) => ![...fns.values()].includes(id));
    expect(others.map(([id]) => id)).toEqual([getAttOf(resources[triggerLogicalId()]!.Properties.ServiceToken, 'Arn')]);
    expect(others[0]![1].Metadata?.['logrelay:entry']).toBeUndefined();
    expect(ofType('AWS::Lambda::Function')).toHaveLength(routeFunctions.size + 3);
    expect(new Set(fns.values()).size).toBe(fns.size);
    expect(newestNodeRuntime()).toBe('nodejs24.x');
    for (const [fn, id] of fns) {
      const p = resources[id]!.Properties;
      expect(resources[id]!.Metadata?.['logrelay:entry'], fn).toBe(`lambdas/handlers/${fn}.ts`);
      expect(p.Runtime, fn).toBe(newestNodeRuntime());
      expect(p.Architectures, fn).toEqual(['arm64']);
      expect(p.MemorySize, fn).toBe(512);
      expect(p.Timeout, fn).toBe(FUNCTION_TIMEOUT_SECONDS[fn]);
      expect(p.TracingConfig, fn).toEqual({ Mode: 'Active' });
      expect(p.Handler, fn).toBe('index.handler');
      const logGroup = resources[refOf(p.LoggingConfig.LogGroup)]!;
      expect(logGroup.Type).toBe('AWS::Logs::LogGroup');
      expect(logGroup.Properties.RetentionInDays).toBe(30);
    }
  });

  it('reserve concurrency for receive (200) and the bake (2) by default, and for no other function', () => {
    const reservedOf = (fns: Map<AnyFunctionName, string>, rs: Record<string, CfnResource>) =>
      Object.fromEntries([...fns].map(([fn, id]) => [fn, rs[id]!.Properties.ReservedConcurrentExecutions]));
    expect(reservedOf(allFunctionLogicalIds(), resources)).toEqual({
      logs: undefined,
      append: undefined,
      sessions: undefined,
      receive: 200,
      leases: undefined,
      admin: undefined,
      bake: 2,
      upgrade: undefined,
    });
    expect(DEFAULT_RESERVED_CONCURRENCY).toEqual({ receive: 200, bake: 2 });
    // Deployable in a default account (1,000) with Lambda's 100 unreserved left, four times over.
    const total = Object.values(DEFAULT_RESERVED_CONCURRENCY).reduce((a, n) => a + (n ?? 0), 0);
    expect(4 * total).toBeLessThanOrEqual(1000 - 100);
  });

  it('follow the reservedConcurrency prop: numbers reserve, 0 leaves a function unreserved, anything else is refused', () => {
    const synthWith = (reservedConcurrency: LogrelayStackProps['reservedConcurrency']) => {
      const rs = Template.fromStack(
        new LogrelayStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Other', { reservedConcurrency }),
      ).toJSON().Resources as Record<string, CfnResource>;
      const fns = Object.values(rs).filter((r) => r.Type === 'AWS::Lambda::Function' && r.Metadata?.['logrelay:entry']);
      return Object.fromEntries(
        fns.map((r) => [
          String(r.Metadata!['logrelay:entry']).replace(/^.*\/|\.ts$/g, ''),
          r.Properties.ReservedConcurrentExecutions as number | undefined,
        ]),
      );
    };
    expect(synthWith({ receive: 500, append: 50 })).toMatchObject({ receive: 500, append: 50, bake: 2, leases: undefined });
    const none = synthWith(reservedConcurrencyFromContext('none'));
    expect(Object.values(none)).toHaveLength(8);
    expect(Object.values(none).every((n) => n === undefined)).toBe(true);
    expect(reservedConcurrencyFromContext('{"receive":40}')).toEqual({ receive: 40 });
    expect(reservedConcurrencyFromContext(undefined)).toBeUndefined();
    expect(() => reservedConcurrencyFromContext('{"recieve":40}')).toThrow(/names 'recieve', which is not a function of the stack/);
    expect(() => reservedConcurrencyFromContext('lots')).toThrow(/give none, or a JSON object/);
    expect(() => synthWith({ receive: -1 })).toThrow(/reservedConcurrency\.receive is -1: give a whole number/);
    expect(() => synthWith({ bake: 1.5 })).toThrow(/reservedConcurrency\.bake is 1\.5/);
  });

  it('get exactly the environment of the tables they access, (admin, bake and upgrade) the AppConfig ids, and (admin) the state machine', () => {
    const tables = tableLogicalIds();
    const appConfig = appConfigLogicalIds();
    const stateMachine = onlyOf('AWS::StepFunctions::StateMachine');
    const fns = allFunctionLogicalIds();
    expect(fns.size).toBe(8);
    for (const [fn, id] of fns) {
      const vars = resources[id]!.Properties.Environment.Variables as Record<string, Json>;
      const expected: Record<string, Json> = {
        POWERTOOLS_SERVICE_NAME: 'logrelay',
        POWERTOOLS_METRICS_NAMESPACE: 'Logrelay',
        NODE_OPTIONS: '--enable-source-maps',
      };
      // lambdas/adapters/appconfig.ts: admin reads and creates versions; the bake names them to
      // the state machine; the upgrade reads those an old rollout item lacks. Hosts serve
      // contents from the rollout item and never name AppConfig.
      if (fn === 'admin' || fn === 'bake' || fn === 'upgrade') {
        expected.APPCONFIG_APPLICATION_ID = { Ref: appConfig.application };
        expected.APPCONFIG_DELIVERY_PROFILE_ID = { Ref: appConfig.profiles.delivery };
        expected.APPCONFIG_LIMITS_PROFILE_ID = { Ref: appConfig.profiles.limits };
      }
      for (const t of TABLES) {
        if (FUNCTION_ACCESS[fn][tableKey(t)]) {
          const logicalId = [...tables].find(([, key]) => key === tableKey(t))![0];
          expect(logicalId).toBeDefined();
          expected[t.envVar] = { Ref: logicalId };
        }
      }
      if (fn === 'admin') expected.BAKE_STATE_MACHINE_ARN = { Ref: stateMachine }; // POST /bakes starts it
      expect(vars, fn).toEqual(expected);
    }
  });

  it('may touch only the tables FUNCTION_ACCESS lists, and write only where it says so', () => {
    const tables = tableLogicalIds();
    const isWrite = (a: string) =>
      /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem|PartiQL(Insert|Update|Delete)|Import|Restore|CreateTable|DeleteTable|UpdateTable)/.test(
        a,
      );
    for (const [fn, id] of allFunctionLogicalIds()) {
      const roleId = getAttOf(resources[id]!.Properties.Role, 'Arn');
      expect(resources[roleId]!.Properties.ManagedPolicyArns ?? [], fn).toEqual([]);
      expect(resources[roleId]!.Properties.Policies ?? [], fn).toEqual([]);
      const policies = [...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')].filter(([, p]) =>
        asArray(p.Properties.Roles).some((r: Json) => r?.Ref === roleId),
      );
      expect(policies.length, fn).toBeGreaterThan(0);

      const actionsByTable = new Map<string, Set<string>>();
      const indexActions = new Map<string, Set<string>>(); // `<table key>/<index name>` -> actions
      for (const [, policy] of policies) {
        for (const st of policy.Properties.PolicyDocument.Statement as Json[]) {
          const actions = asArray<string>(st.Action);
          expect(st.Effect).toBe('Allow');
          if (!actions.some((a) => a.startsWith('dynamodb:'))) continue;
          expect(
            actions.every((a) => a.startsWith('dynamodb:') && !a.includes('*')),
            `${fn}: ${actions}`,
          ).toBe(true);
          for (const res of asArray<Json>(st.Resource)) {
            if (res?.Ref === 'AWS::NoValue') continue;
            // One named index of one of the stack's tables: `<table ARN>/index/<name>`, no "*".
            const join = res?.['Fn::Join'];
            if (join && join[0] === '' && join[1].length === 2 && typeof join[1][1] === 'string' && join[1][1].startsWith('/index/')) {
              const table = tables.get(getAttOf(join[1][0], 'Arn'));
              const name = join[1][1].slice('/index/'.length);
              expect(table, `${fn}: ${JSON.stringify(res)}`).toBeDefined();
              expect(name, `${fn}: ${JSON.stringify(res)}`).toMatch(/^[A-Za-z0-9_.-]+$/);
              const set = indexActions.get(`${table}/${name}`) ?? new Set<string>();
              for (const a of actions) set.add(a);
              indexActions.set(`${table}/${name}`, set);
              continue;
            }
            const key = tables.get(getAttOf(res, 'Arn')); // a bare table ARN: no "*", no index, no other table
            expect(key, `${fn}: ${JSON.stringify(res)}`).toBeDefined();
            const set = actionsByTable.get(key!) ?? new Set<string>();
            for (const a of actions) set.add(a);
            actionsByTable.set(key!, set);
          }
        }
      }

      const access = FUNCTION_ACCESS[fn] as Record<string, Access | undefined>;
      expect(new Set(actionsByTable.keys()), fn).toEqual(new Set(Object.keys(access).filter((k) => access[k])));
      for (const [key, actions] of actionsByTable) {
        const level = access[key]!;
        const writes = [...actions].filter(isWrite);
        if (level === 'read') expect(writes, `${fn} on ${key}`).toEqual([]);
        else
          expect(writes.sort(), `${fn} on ${key}`).toEqual([
            'dynamodb:BatchWriteItem',
            'dynamodb:DeleteItem',
            'dynamodb:PutItem',
            'dynamodb:UpdateItem',
          ]);
        const reads = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'];
        if (level === 'write')
          expect(
            [...actions].filter((a) => reads.includes(a)),
            `${fn} on ${key}`,
          ).toEqual([]);
        else for (const a of reads) expect(actions.has(a), `${fn} on ${key}: ${a}`).toBe(true);
        expect(actions.has('dynamodb:Scan'), `${fn} on ${key}`).toBe(false);
      }
      // Indexes: exactly those FUNCTION_INDEX_QUERIES names, each declared in TABLES, for Query only.
      const declared = Object.entries(FUNCTION_INDEX_QUERIES[fn] ?? {}).flatMap(([key, names]) => (names ?? []).map((n) => `${key}/${n}`));
      expect([...indexActions.keys()].sort(), fn).toEqual(declared.sort());
      for (const [ix, actions] of indexActions) {
        expect([...actions], `${fn} on ${ix}`).toEqual(['dynamodb:Query']);
        const [key, name] = ix.split('/') as [string, string];
        expect(
          TABLES.find((t) => tableKey(t) === key)?.indexes?.map((i) => i.name),
          ix,
        ).toContain(name);
      }
    }
    // GET /bakes (admin) reads bakesByTime; no other function reads any index.
    expect(FUNCTION_INDEX_QUERIES).toEqual({ admin: { control: ['bakesByTime'] } });
  });
});

describe('caller policies', () => {
  /** `$default/METHOD/path` of every execute-api:Invoke resource of a managed policy. */
  function invokePaths(outputName: string): string[] {
    const policy = resources[refOf(outputs[outputName]?.Value)]!;
    const apiId = ofType('AWS::ApiGatewayV2::Api')[0]![0];
    const statements = policy.Properties.PolicyDocument.Statement as Json[];
    expect(statements.every((s) => s.Effect === 'Allow' && s.Action === 'execute-api:Invoke')).toBe(true);
    return statements.flatMap((s) =>
      asArray<Json>(s.Resource).map((r) => {
        const parts = r['Fn::Join'][1] as Json[];
        expect(parts.at(-2)).toEqual({ Ref: apiId }); // this API, nothing else
        expect(parts.at(-3)).toBe(':');
        return parts.at(-1) as string;
      }),
    );
  }
  const expectedPaths = (routes: readonly { method: string; path: string }[]) =>
    routes.map((r) => `/$default/${r.method}${r.path.replace(/\{[^}]+\}/g, '*')}`);

  it('workers may invoke the data routes, one resource per route', () => {
    const paths = invokePaths('WorkerPolicyArn');
    const expected = expectedPaths(ROUTES.filter((r) => !isAdminRoute(r)));
    expect(paths).toHaveLength(expected.length);
    expect(new Set(paths)).toEqual(new Set(expected));
  });

  it('operators may invoke every route', () => {
    const paths = invokePaths('OperatorPolicyArn');
    expect(paths).toHaveLength(ROUTES.length);
    expect(new Set(paths)).toEqual(new Set(expectedPaths(ROUTES)));
  });

  it('admin routes (configs, bakes) go to operators only', () => {
    const routes = [
      { method: 'GET', path: '/logs/{logId}' },
      { method: 'GET', path: '/configs' },
      { method: 'POST', path: '/configs/{profile}/versions' },
      { method: 'POST', path: '/bakes' },
      { method: 'POST', path: '/bakes/{bakeId}/abort' },
      { method: 'GET', path: '/configsx' },
    ];
    expect(routesFor(routes, 'worker').map((r) => r.path)).toEqual(['/logs/{logId}', '/configsx']);
    expect(routesFor(routes, 'operator')).toEqual(routes);
    // shared/API.md "Configs and bakes (admin)": exactly these, all served by the admin function,
    // which serves nothing else.
    expect(ROUTES.filter(isAdminRoute).map(routeKey).sort()).toEqual(
      [
        'GET /configs',
        'POST /configs/{profile}/versions',
        'GET /configs/{profile}/versions/{version}',
        'POST /bakes',
        'GET /bakes',
        'GET /bakes/{bakeId}',
        'POST /bakes/{bakeId}/abort',
      ].sort(),
    );
    for (const r of ROUTES) expect(r.fn === 'admin', routeKey(r)).toBe(isAdminRoute(r));
  });
});

describe('openapi.json', () => {
  const doc = JSON.parse(readFileSync(path.join(__dirname, '..', 'openapi.json'), 'utf8'));
  const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
  const operations = (): [string, string, Json, Json][] =>
    Object.entries(doc.paths as Record<string, Json>).flatMap(([p, item]) =>
      Object.keys(item)
        .filter((m) => METHODS.includes(m))
        .map((m): [string, string, Json, Json] => [m.toUpperCase(), p, item[m], item]),
    );

  it('is OpenAPI 3.1 with SigV4 security on every route', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.security).toEqual([{ sigv4: [] }]);
    expect(doc.components.securitySchemes.sigv4.description).toMatch(/Signature Version 4/);
    for (const [m, p, op] of operations()) expect(op.security, `${m} ${p}`).toBeUndefined();
  });

  it('describes exactly the routes of the synthesized API', () => {
    const routeKeys = ofType('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties.RouteKey as string);
    const documented = operations().map(([m, p]) => `${m} ${p}`);
    expect(new Set(documented).size).toBe(documented.length);
    expect(new Set(documented)).toEqual(new Set(routeKeys));
  });

  it("describes each profile's content with the fields, ranges and defaults of its JSON Schema", () => {
    const documented: Record<ProfileName, Json> = {
      delivery: doc.components.schemas.DeliveryProfileContent,
      limits: doc.components.schemas.LimitsProfileContent,
    };
    for (const profile of PROFILES) {
      const schema = profileJsonSchema(profile) as {
        properties: Record<string, { type: string; minimum: number; maximum: number }>;
        additionalProperties: boolean;
      };
      const d = documented[profile];
      expect(d.additionalProperties, profile).toBe(schema.additionalProperties);
      expect(Object.keys(d.properties).sort(), profile).toEqual(Object.keys(schema.properties).sort());
      for (const [field, s] of Object.entries(schema.properties)) {
        const f = d.properties[field];
        expect({ type: f.type, minimum: f.minimum, maximum: f.maximum }, `${profile}.${field}`).toEqual({
          type: s.type,
          minimum: s.minimum,
          maximum: s.maximum,
        });
        expect(f.default, `${profile}.${field}`).toBe((DEFAULT_CONFIG[profile] as unknown as Record<string, number>)[field]);
      }
    }
  });

  it('declares every path parameter and answers errors with the envelope', () => {
    const resolve = (r: Json) => (r.$ref ? doc.components.responses[r.$ref.split('/').pop()] : r);
    for (const [m, p, op, item] of operations()) {
      const declared = [...(item.parameters ?? []), ...(op.parameters ?? [])]
        .map((x: Json) => (x.$ref ? doc.components.parameters[x.$ref.split('/').pop()] : x))
        .filter((x: Json) => x.in === 'path')
        .map((x: Json) => x.name)
        .sort();
      const inPath = [...p.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]).sort();
      expect(declared, `${m} ${p}`).toEqual(inPath);
      const codes = Object.keys(op.responses);
      expect(
        codes.some((c) => /^2\d\d$/.test(c)),
        `${m} ${p}`,
      ).toBe(true);
      if (inPath.length) expect(codes, `${m} ${p}`).toContain('404');
      for (const code of codes.filter((c) => /^4\d\d$/.test(c) && c !== '403' && c !== '429')) {
        expect(resolve(op.responses[code]).content['application/json'].schema, `${m} ${p} ${code}`).toEqual({
          $ref: '#/components/schemas/Error',
        });
      }
    }
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged error or warning', () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(app);
    const summary = report.violations.map(
      (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    expect(
      summary.filter((s) => s.startsWith('error')),
      summary.join('\n'),
    ).toEqual([]);
    expect(summary, summary.join('\n')).toEqual([]);
  });

  it('acknowledges only specific IAM5 findings, each with a reason', () => {
    const acks: [string, string, string][] = [];
    for (const c of app.node.findAll()) {
      for (const m of c.node.metadata.filter((x) => x.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)) {
        for (const [id, reason] of Object.entries(m.data as Record<string, string>)) acks.push([c.node.path, id, reason]);
      }
    }
    expect(acks.length).toBeGreaterThan(0);
    for (const [where, id, reason] of acks) {
      expect(id, where).toMatch(/^(Annotation::)?AwsSolutions-IAM5\[Resource::.+\]$/);
      expect(reason.length, `${where} ${id}`).toBeGreaterThan(60);
    }
    // Exactly these findings, where they arise:
    const fns = allFunctionLogicalIds();
    const role = (fn: AnyFunctionName) => `Logrelay/${capitalized(fn)}Function/Role`;
    const apiId = onlyOf('AWS::ApiGatewayV2::Api');
    const invokeArn = (r: { method: string; path: string }) =>
      `arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${apiId}>/$default/${r.method}${r.path.replace(/\{[^}]+\}/g, '*')}`;
    const withParameter = (routes: readonly { method: string; path: string }[]) => routes.filter((r) => r.path.includes('{'));
    const expected = [
      // X-Ray (and, for the bake, cloudwatch:GetMetricData): no resource-level permissions.
      ...[...fns.keys()].map((fn) => `${role(fn)} *`),
      // Hosted configuration versions are numbered at run time: one "*" per profile, on admin and the upgrade only.
      ...PROFILES.map((p) => `${role('admin')} ${versionsArn(p)}`),
      ...PROFILES.map((p) => `${role('upgrade')} ${versionsArn(p)}`),
      // Step Functions log delivery and X-Ray; LambdaInvoke's versions and aliases of the one bake function.
      `${stack.bake.stateMachine.node.path} *`,
      `${stack.bake.stateMachine.node.path} <${fns.get('bake')}.Arn>:*`,
      // Path parameters of the routes in the caller policies.
      ...withParameter(ROUTES.filter((r) => !isAdminRoute(r))).map((r) => `Logrelay/WorkerPolicy ${invokeArn(r)}`),
      ...withParameter(ROUTES).map((r) => `Logrelay/OperatorPolicy ${invokeArn(r)}`),
    ];
    const found = acks.map(([where, id]) => `${where} ${/AwsSolutions-IAM5\[Resource::(.+)\]$/.exec(id)![1]}`);
    expect(found.sort()).toEqual(expected.sort());
  });

  it('"*" is a whole resource only for actions that support no resource-level permissions', () => {
    const fns = allFunctionLogicalIds();
    const roleOf = (fn: AnyFunctionName) => getAttOf(resources[fns.get(fn)!]!.Properties.Role, 'Arn');
    const stateMachineRole = getAttOf(resources[onlyOf('AWS::StepFunctions::StateMachine')]!.Properties.RoleArn, 'Arn');
    const allowedOnStar = new Map<string, string[]>([
      ...[...fns.keys()].map((fn): [string, string[]] => [
        roleOf(fn),
        fn === 'bake' ? [...FUNCTION_XRAY_ACTIONS, 'cloudwatch:GetMetricData'] : FUNCTION_XRAY_ACTIONS,
      ]),
      [stateMachineRole, [...LOG_DELIVERY_ACTIONS, ...STATE_MACHINE_XRAY_ACTIONS]],
    ]);
    let stars = 0;
    for (const [id, policy] of [...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')]) {
      for (const st of policy.Properties.PolicyDocument.Statement as Json[]) {
        if (!asArray<Json>(st.Resource).includes('*')) continue;
        stars++;
        const roles = asArray<Json>(policy.Properties.Roles).map(refOf);
        expect(roles, id).toHaveLength(1);
        const allowed = allowedOnStar.get(roles[0]!);
        expect(allowed, `${id} grants ${st.Action} on "*"`).toBeDefined();
        for (const action of asArray<string>(st.Action)) expect(allowed, `${id}: ${action} on "*"`).toContain(action);
      }
    }
    expect(stars).toBeGreaterThanOrEqual(fns.size + 1);
  });

  it('fails on an unacknowledged wildcard (the check is live)', () => {
    const probeApp = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const probe = new LogrelayStack(probeApp, 'Probe');
    probe.functions.logs.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['dynamodb:Get*'], resources: [probe.tables.logs.tableArn] }),
    );
    const report = new AwsSolutionsChecks(undefined, {}).validateScope(probeApp);
    expect(report.violations.map((v) => v.ruleName)).toContain('AwsSolutions-IAM5[Action::dynamodb:Get*]');
  });
});

describe('config bake', () => {
  type Arm = 'control' | 'experiment';
  interface AlarmSpec {
    threshold: number;
    evaluationPeriods: number;
    datapointsToAlarm: number;
    /** The arms whose metrics it reads, and which metrics of lambdas/metrics.ts. */
    arms: Arm[];
    metrics: string[];
  }
  // DEFAULT_BAKE_ALARMS, stated as numbers: the design of the bake's gates.
  const ALARMS: Record<(typeof BAKE_ALARM_NAMES)[number], AlarmSpec> = {
    'experiment-5xx-rate': {
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      arms: ['experiment'],
      metrics: [ARM_METRICS.requests, ARM_METRICS.errors5xx],
    },
    'experiment-p99-latency': {
      threshold: 2000,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      arms: ['experiment'],
      metrics: [ARM_METRICS.requests, ARM_METRICS.latency],
    },
    'experiment-5xx-vs-control': {
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      arms: ['control', 'experiment'],
      metrics: [ARM_METRICS.requests, ARM_METRICS.errors5xx],
    },
    'experiment-4xx-vs-control': {
      threshold: 5,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      arms: ['control', 'experiment'],
      metrics: [ARM_METRICS.requests, ARM_METRICS.errors4xx],
    },
    'slo-5xx-rate': {
      threshold: 2,
      evaluationPeriods: 6,
      datapointsToAlarm: 3,
      arms: ['control', 'experiment'],
      metrics: [ARM_METRICS.requests, ARM_METRICS.errors5xx],
    },
    'slo-p99-latency': {
      threshold: 3000,
      evaluationPeriods: 6,
      datapointsToAlarm: 3,
      arms: ['control', 'experiment'],
      metrics: [ARM_METRICS.requests, ARM_METRICS.latency],
    },
  };
  const MIN_REQUESTS_PER_PERIOD = 5;
  const MIN_ERRORS_PER_PERIOD = 3;

  /** One metric an alarm reads, from its MetricStat (math alarms) or its top-level metric. */
  interface ReadMetric {
    id?: string;
    arm: string;
    metricName: string;
    stat: string;
  }
  /** The metrics an alarm reads and its math expression, after checking namespace, dimensions and period of each. */
  function alarmInputs(p: Json, where: string): { metrics: ReadMetric[]; expression?: string } {
    const read = (
      namespace: string,
      metricName: string,
      dimensions: { Name: string; Value: string }[],
      period: number,
      stat: string,
      id?: string,
    ): ReadMetric => {
      expect(namespace, where).toBe(METRIC_NAMESPACE);
      expect(period, where).toBe(ALARM_PERIOD_SECONDS);
      const dims = Object.fromEntries(dimensions.map((d) => [d.Name, d.Value]));
      expect(Object.keys(dims).sort(), where).toEqual(['Arm', 'service']);
      expect(dims.service, where).toBe(SERVICE_NAME);
      expect(['control', 'experiment'], where).toContain(dims.Arm);
      expect(stat, `${where} ${metricName}`).toBe(metricName === ARM_METRICS.latency ? 'p99' : 'Sum');
      return { ...(id ? { id } : {}), arm: dims.Arm!, metricName, stat };
    };
    if (p.Metrics === undefined) {
      return { metrics: [read(p.Namespace, p.MetricName, p.Dimensions, p.Period, p.Statistic ?? p.ExtendedStatistic)] };
    }
    expect(p.MetricName ?? p.Namespace ?? p.Period, where).toBeUndefined();
    const entries = p.Metrics as Json[];
    const expressions = entries.filter((m) => m.Expression !== undefined);
    expect(expressions, where).toHaveLength(1);
    expect(expressions[0].ReturnData, where).toBe(true);
    const metrics = entries
      .filter((m) => m.MetricStat !== undefined)
      .map((m) => {
        expect(m.ReturnData, where).toBe(false);
        const s = m.MetricStat;
        return read(s.Metric.Namespace, s.Metric.MetricName, s.Metric.Dimensions, s.Period, s.Stat, m.Id);
      });
    expect(metrics.length + 1, where).toBe(entries.length);
    return { metrics, expression: expressions[0].Expression as string };
  }

  it('has the six alarms, on 10-second periods of the Arm metrics, no data meaning no breach', () => {
    expect(ALARM_PERIOD_SECONDS).toBe(10); // high-resolution metrics; alarmInputs checks every metric's period against it
    const ids = bakeAlarmLogicalIds();
    expect(ofType('AWS::CloudWatch::Alarm')).toHaveLength(BAKE_ALARM_NAMES.length);
    for (const [name, spec] of Object.entries(ALARMS)) {
      const p = resources[ids.get(name)!]!.Properties;
      expect(p.AlarmName).toBe(`Logrelay-bake-${name}`);
      expect(p.AlarmDescription, name).toEqual(expect.any(String));
      expect(p.Threshold, name).toBe(spec.threshold);
      expect(p.ComparisonOperator, name).toBe('GreaterThanThreshold');
      expect(p.TreatMissingData, name).toBe('notBreaching');
      expect(p.EvaluationPeriods, name).toBe(spec.evaluationPeriods);
      expect(p.DatapointsToAlarm, name).toBe(spec.datapointsToAlarm);
      expect(p.AlarmActions ?? [], name).toEqual([]); // the state machine reads them; nothing else acts on them
      const { metrics, expression } = alarmInputs(p, name);
      const read = metrics.map((m) => `${m.arm} ${m.metricName}`).sort();
      expect(read, name).toEqual(spec.arms.flatMap((a) => spec.metrics.map((m) => `${a} ${m}`)).sort());
      if (expression !== undefined) {
        for (const m of metrics) expect(expression, `${name} uses ${m.id}`).toMatch(new RegExp(`\\b${m.id}\\b`));
      } else {
        expect(metrics, name).toHaveLength(1); // a plain metric alarm reads one metric
      }
    }
  });

  it('compares the arms in metric math: experiment rate minus control rate, each arm with enough requests', () => {
    const ids = bakeAlarmLogicalIds();
    for (const [name, errors] of [
      ['experiment-5xx-vs-control', ARM_METRICS.errors5xx],
      ['experiment-4xx-vs-control', ARM_METRICS.errors4xx],
    ] as const) {
      const { metrics, expression } = alarmInputs(resources[ids.get(name)!]!.Properties, name);
      const id = (arm: Arm, metricName: string) => metrics.find((m) => m.arm === arm && m.metricName === metricName)!.id!;
      const [er, ee, cr, ce] = [
        id('experiment', ARM_METRICS.requests),
        id('experiment', errors),
        id('control', ARM_METRICS.requests),
        id('control', errors),
      ];
      expect(new Set([er, ee, cr, ce]).size).toBe(4);
      expect(expression, name).toContain(`100 * (${ee} / ${er} - ${ce} / ${cr})`);
      expect(expression, name).toContain(`${er} >= ${MIN_REQUESTS_PER_PERIOD}`);
      expect(expression, name).toContain(`${cr} >= ${MIN_REQUESTS_PER_PERIOD}`);
      // A rate needs a few errors before it means anything: one error in five requests is not 20%.
      expect(expression, name).toContain(`${ee} >= ${MIN_ERRORS_PER_PERIOD}`);
    }
    // The experiment's own 5xx rate, with its minimum traffic.
    const { metrics, expression } = alarmInputs(resources[ids.get('experiment-5xx-rate')!]!.Properties, 'experiment-5xx-rate');
    const id = (metricName: string) => metrics.find((m) => m.metricName === metricName)!.id!;
    expect(expression).toBe(
      `IF(${id(ARM_METRICS.requests)} >= ${MIN_REQUESTS_PER_PERIOD} AND ${id(ARM_METRICS.errors5xx)} >= ${MIN_ERRORS_PER_PERIOD}, 100 * ${id(ARM_METRICS.errors5xx)} / ${id(ARM_METRICS.requests)}, 0)`,
    );
    // Latency too: one slow request in a near-empty period must not fire an alarm.
    const lat = alarmInputs(resources[ids.get('experiment-p99-latency')!]!.Properties, 'experiment-p99-latency');
    const lid = (metricName: string) => lat.metrics.find((m) => m.metricName === metricName)!.id!;
    expect(lat.expression).toBe(`IF(${lid(ARM_METRICS.requests)} >= ${MIN_REQUESTS_PER_PERIOD}, ${lid(ARM_METRICS.latency)}, 0)`);
  });

  it('thresholds follow the bakeAlarms prop', () => {
    const other = new LogrelayStack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Other', {
      bakeAlarms: { sloP99Ms: 1234, minRequestsPerPeriod: 50, minErrorsPerPeriod: 7 },
    });
    const t = Template.fromStack(other);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'Other-bake-slo-p99-latency', Threshold: 1234 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'Other-bake-experiment-p99-latency', Threshold: 2000 }); // the default stays
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'Other-bake-experiment-5xx-rate',
      Metrics: Match.arrayWith([Match.objectLike({ Expression: Match.stringLikeRegexp('^IF\\(\\w+ >= 50 AND \\w+ >= 7, ') })]),
    });
  });

  it('runs a Standard state machine, traced, logging everything', () => {
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineType: 'STANDARD',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: true,
        Destinations: [
          { CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ConfigBakeStateMachineLogs'), 'Arn'] } } },
        ],
      },
    });
    expect(outputs.BakeStateMachineArn?.Value).toEqual({ Ref: onlyOf('AWS::StepFunctions::StateMachine') });
  });

  it('defines the bake: its states, Lambda tasks on the bake function, and a Catch to Cleanup on every other task', () => {
    const def = bakeDefinition();
    const bakeFn = `<${bakeFunctionLogicalId()}.Arn>`;
    const lambdaTasks: Record<string, string> = {
      TakeLock: 'lock',
      NextPhase: 'next',
      RejectInvalid: 'invalid',
      StartExperiment: 'start',
      Judge: 'judge',
      StartWatch: 'watch',
      WatchPoll: 'watch-poll',
      Revert: 'revert',
      Finish: 'finish',
      Cleanup: 'cleanup',
    };
    expect(def.StartAt).toBe('TakeLock');
    expect(Object.keys(def.States).sort()).toEqual(
      [
        'TakeLock',
        'NextPhase',
        'HasPhase',
        'ValidateVersion',
        'RejectInvalid',
        'StartExperiment',
        'WaitForHosts',
        'WaitPoll',
        'DescribeAlarms',
        'Judge',
        'Decided',
        // the watch after promotion
        'StartWatch',
        'WatchSettle',
        'DescribeSloAlarms',
        'WatchPoll',
        'WatchDecided',
        'WatchWait',
        'Revert',
        'Finish',
        'Cleanup',
        // how it ends
        'CleanupOutcome',
        'BakeEnded',
        'BakeFailed',
        // publishing each bake task's transitions (the next test)
        ...Object.keys(lambdaTasks).flatMap((t) => [`${t}HasEvents`, `${t}Publish`]),
      ].sort(),
    );
    const tasks = Object.entries(def.States).filter(([, s]) => s.Type === 'Task');
    expect(tasks.map(([n]) => n).sort()).toEqual(
      [...Object.keys(lambdaTasks), 'ValidateVersion', 'DescribeAlarms', 'DescribeSloAlarms'].sort(),
    );
    for (const [name, action] of Object.entries(lambdaTasks)) {
      expect(def.States[name]!.Resource, name).toBe(bakeFn);
      expect(def.States[name]!.Parameters?.action, name).toBe(action);
    }
    expect(def.States.ValidateVersion!.Resource).toBe('arn:<AWS::Partition>:states:::aws-sdk:appconfig:validateConfiguration');
    expect(def.States.DescribeAlarms!.Resource).toBe('arn:<AWS::Partition>:states:::aws-sdk:cloudwatch:describeAlarms');
    // It reads exactly the six alarms (Ref of an alarm is its name); the watch, the two SLO alarms only.
    expect(def.States.DescribeAlarms!.Parameters?.AlarmNames).toEqual([...bakeAlarmLogicalIds().values()].map((id) => `<${id}>`));
    expect(def.States.DescribeSloAlarms!.Resource).toBe('arn:<AWS::Partition>:states:::aws-sdk:cloudwatch:describeAlarms');
    expect(def.States.DescribeSloAlarms!.Parameters?.AlarmNames).toEqual(
      [...bakeAlarmLogicalIds().entries()].filter(([name]) => name.includes('slo-')).map(([, id]) => `<${id}>`),
    );
    expect(def.States.DescribeSloAlarms!.Parameters?.AlarmNames).toHaveLength(2);
    // A version AppConfig's validators refuse is rejected, not a failure of the bake.
    expect(def.States.ValidateVersion!.Catch?.[0]).toEqual(
      expect.objectContaining({ ErrorEquals: ['AppConfig.BadRequestException'], Next: 'RejectInvalid' }),
    );

    for (const [name, state] of tasks) {
      if (name === 'Cleanup') continue;
      const catchAll = state.Catch?.at(-1);
      expect(catchAll, name).toEqual(expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: 'Cleanup' }));
    }
    // Cleanup catches nothing (it would loop) and retries everything instead.
    expect(def.States.Cleanup!.Catch).toBeUndefined();
    expect(def.States.Cleanup!.Retry?.some((r) => r.ErrorEquals.includes('States.ALL'))).toBe(true);
  });

  it("retries Lambda's throttle on every Lambda task with a capped backoff before its Catch, and longest on Cleanup", () => {
    const def = bakeDefinition();
    const lambdaTasks = Object.entries(def.States).filter(
      ([, s]) => s.Type === 'Task' && s.Resource === `<${bakeFunctionLogicalId()}.Arn>`,
    );
    expect(lambdaTasks).toHaveLength(10);
    for (const [name, state] of lambdaTasks) {
      const retries = state.Retry ?? [];
      const throttle = retries.findIndex((r) => r.ErrorEquals.includes('Lambda.TooManyRequestsException'));
      expect(throttle, name).toBeGreaterThanOrEqual(0);
      // No earlier retrier swallows it, and the catch-all (Cleanup's) comes after it.
      expect(
        retries.slice(0, throttle).some((r) => r.ErrorEquals.includes('States.ALL')),
        name,
      ).toBe(false);
      expect(retries[throttle]).toEqual({
        ErrorEquals: ['Lambda.TooManyRequestsException'],
        IntervalSeconds: 1,
        BackoffRate: 2,
        MaxDelaySeconds: 30,
        MaxAttempts: name === 'Cleanup' ? CLEANUP_THROTTLE_ATTEMPTS : THROTTLE_RETRY.maxAttempts,
      });
      // Lambda's service errors are retried too (CDK's retryOnServiceExceptions).
      expect(
        retries.some((r) => r.ErrorEquals.includes('Lambda.ServiceException')),
        name,
      ).toBe(true);
    }
    // The waits those retries add up to: about 2 minutes for a step, about 8 for Cleanup.
    const waits = (attempts: number) => Array.from({ length: attempts }, (_, i) => Math.min(30, 2 ** i)).reduce((a, b) => a + b, 0);
    expect(waits(THROTTLE_RETRY.maxAttempts)).toBe(121);
    expect(waits(CLEANUP_THROTTLE_ATTEMPTS)).toBe(481);
  });

  it("publishes each bake task's transitions right after it, and only there: one event each, in order, best effort, the state unchanged", () => {
    const def = bakeDefinition();
    const states = def.States as Record<string, Json>;
    // Each bake task, and where it went before it published: its next state is reached either way.
    const nextOf: Record<string, string> = {
      TakeLock: 'NextPhase',
      NextPhase: 'HasPhase',
      RejectInvalid: 'NextPhase',
      StartExperiment: 'WaitForHosts',
      Judge: 'Decided',
      StartWatch: 'WatchSettle',
      WatchPoll: 'WatchDecided',
      Finish: 'BakeEnded',
      Revert: 'BakeEnded',
      Cleanup: 'CleanupOutcome',
    };
    const bakeFn = `<${bakeFunctionLogicalId()}.Arn>`;
    expect(
      Object.entries(states)
        .filter(([, s]) => s.Resource === bakeFn)
        .map(([n]) => n)
        .sort(),
    ).toEqual(Object.keys(nextOf).sort());
    for (const [task, next] of Object.entries(nextOf)) {
      expect(states[task].Next, task).toBe(`${task}HasEvents`);
      // Nothing to say: straight on, no PutEvents call.
      expect(states[`${task}HasEvents`], task).toEqual({
        Type: 'Choice',
        Choices: [{ Variable: '$.events[0]', IsPresent: true, Next: `${task}Publish` }],
        Default: next,
      });
      const map = states[`${task}Publish`];
      expect(map, task).toMatchObject({ Type: 'Map', ItemsPath: '$.events', MaxConcurrency: 1, ResultPath: null, Next: next });
      expect(map.Catch, task).toBeUndefined(); // its task catches everything catchable
      expect(map.ItemProcessor.StartAt).toBe(`${task}Event`);
      expect(map.ItemProcessor.States, task).toEqual({
        [`${task}Event`]: {
          Type: 'Task',
          Comment: expect.any(String),
          Resource: 'arn:<AWS::Partition>:states:::events:putEvents',
          Parameters: { Entries: [{ 'Detail.$': '$', 'DetailType.$': '$.type', Source: 'logrelay.bake' }] },
          ResultPath: null,
          TimeoutSeconds: EVENT_TIMEOUT_SECONDS,
          Retry: [
            {
              ErrorEquals: ['EventBridge.ThrottlingException', 'EventBridge.FailedEntry'],
              IntervalSeconds: 1,
              BackoffRate: 2,
              MaxAttempts: EVENT_RETRY.maxAttempts,
            },
          ],
          Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: `${task}EventNotPublished` }],
          End: true,
        },
        [`${task}EventNotPublished`]: { Type: 'Pass', Comment: expect.any(String), End: true },
      });
    }
    // Only a bake task leads to a publishing Choice, and only that Choice to its Map: a Wait or an
    // aws-sdk task (which pass the last bake task's events through) never publishes.
    const targets = (s: Json): string[] =>
      [s.Next, s.Default, ...asArray<Json>(s.Choices).map((c) => c.Next), ...asArray<Json>(s.Catch).map((c) => c.Next)].filter(Boolean);
    for (const [name, s] of Object.entries(states)) {
      for (const t of targets(s)) {
        if (t.endsWith('HasEvents')) expect(name, `${name} -> ${t}`).toBe(t.replace(/HasEvents$/, ''));
        if (t.endsWith('Publish')) expect(name, `${name} -> ${t}`).toBe(t.replace(/Publish$/, 'HasEvents'));
      }
    }
    // The only PutEvents of the machine are these ten.
    expect(JSON.stringify(def).match(/states:::events:putEvents/g)).toHaveLength(10);
    // The waits a transition EventBridge keeps refusing adds to the bake before it is skipped: 1 + 2 + 4 s.
    expect(Array.from({ length: EVENT_RETRY.maxAttempts }, (_, i) => 2 ** i).reduce((a, b) => a + b, 0)).toBe(7);
  });

  it("lets the state machine's role do exactly its tasks, and log and trace; and put events on the default bus, as logrelay.bake only", () => {
    const sm = resources[onlyOf('AWS::StepFunctions::StateMachine')]!;
    const roleId = getAttOf(sm.Properties.RoleArn, 'Arn');
    const bakeFn = `<${bakeFunctionLogicalId()}.Arn>`;
    const alarmArns = [...bakeAlarmLogicalIds().values()].map((id) => `<${id}.Arn>`);
    expect(alarmArns).toHaveLength(6);
    // The bake's events: one statement, PutEvents alone, on this account and region's default bus
    // alone, and only for events whose source is logrelay.bake.
    const isEvents = (st: Json) => asArray<string>(st.Action).some((a) => a.startsWith('events:'));
    const events = statementsOf(roleId).filter(isEvents);
    expect(events.map((st) => ({ ...st, Resource: asArray<Json>(st.Resource).map(flat) }))).toEqual([
      {
        Effect: 'Allow',
        Action: 'events:PutEvents',
        Resource: ['arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:event-bus/default'],
        Condition: { StringEquals: { 'events:source': 'logrelay.bake' } },
      },
    ]);
    // Every other permission is what it was before the bake published events, unconditioned.
    expect(grantsOf(roleId, isEvents)).toEqual(
      [
        ...pairs(['lambda:InvokeFunction'], [bakeFn, `${bakeFn}:*`]),
        ...pairs(['cloudwatch:DescribeAlarms'], alarmArns),
        ...pairs(['appconfig:validateConfiguration'], PROFILES.map(profileArn)),
        ...pairs(LOG_DELIVERY_ACTIONS, ['*']),
        ...pairs(STATE_MACHINE_XRAY_ACTIONS, ['*']),
      ].sort(),
    );
  });

  it('hosts both profiles in one AppConfig application, validated by the generated JSON Schemas, starting at the defaults', () => {
    template.resourceCountIs('AWS::AppConfig::Application', 1);
    template.resourceCountIs('AWS::AppConfig::Environment', 1);
    template.resourceCountIs('AWS::AppConfig::ConfigurationProfile', PROFILES.length);
    template.resourceCountIs('AWS::AppConfig::HostedConfigurationVersion', PROFILES.length);
    expect([...PROFILES].sort()).toEqual(['delivery', 'limits']);
    const ids = appConfigLogicalIds();
    template.hasResourceProperties('AWS::AppConfig::Environment', { ApplicationId: { Ref: ids.application } });
    for (const name of PROFILES) {
      const profile = resources[ids.profiles[name]]!.Properties;
      expect(profile).toEqual(
        expect.objectContaining({
          ApplicationId: { Ref: ids.application },
          Name: name,
          LocationUri: 'hosted',
          Validators: [{ Type: 'JSON_SCHEMA', Content: JSON.stringify(profileJsonSchema(name)) }],
        }),
      );
      const versions = ofType('AWS::AppConfig::HostedConfigurationVersion').filter(
        ([, v]) => v.Properties.ConfigurationProfileId?.Ref === ids.profiles[name],
      );
      expect(versions, name).toHaveLength(1);
      expect(versions[0]![1].Properties).toEqual(
        expect.objectContaining({
          ApplicationId: { Ref: ids.application },
          ContentType: 'application/json',
          Content: JSON.stringify(DEFAULT_CONFIG[name]),
        }),
      );
      // Hosts serve the initial version from the initial rollout state's copy, never from AppConfig:
      // the two must be the same content, and the initial state must name this version (1).
      expect(INITIAL_ROLLOUT.control[name]).toBe('1');
      expect(contentOf(INITIAL_ROLLOUT, name, '1')).toBe(versions[0]![1].Properties.Content);
    }
  });

  it('has a dashboard of what is under test, both arms and every alarm', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const dashboard = resources[onlyOf('AWS::CloudWatch::Dashboard')]!.Properties;
    expect(dashboard.DashboardName).toBe('Logrelay-bake');
    const body = flat(dashboard.DashboardBody);
    expect(body).toContain(`"${METRIC_NAMESPACE}","${BAKE_METRICS.weight}"`);
    for (const arm of ['control', 'experiment']) expect(body).toContain(`"Arm","${arm}"`);
    const widgets = (JSON.parse(body) as { widgets: { type: string; properties: { alarms?: string[] } }[] }).widgets;
    const alarmWidgets = widgets.filter((w) => w.type === 'alarm');
    expect(alarmWidgets).toHaveLength(1);
    expect(alarmWidgets[0]!.properties.alarms).toEqual([...bakeAlarmLogicalIds().values()].map((id) => `<${id}.Arn>`));
  });

  it('hosts may not touch AppConfig, admin may manage versions and start the bake, the bake may read metrics, the upgrade may read versions', () => {
    const fns = allFunctionLogicalIds();
    const stateMachine = onlyOf('AWS::StepFunctions::StateMachine');
    const nonDynamo = (fn: AnyFunctionName) => {
      const fnId = fns.get(fn)!;
      return grantsOf(getAttOf(resources[fnId]!.Properties.Role, 'Arn')).filter((g) => !g.startsWith('dynamodb:'));
    };
    const basics = (fn: AnyFunctionName) => [
      ...pairs(
        ['logs:CreateLogStream', 'logs:PutLogEvents'],
        [`<${refOf(resources[fns.get(fn)!]!.Properties.LoggingConfig.LogGroup)}.Arn>`],
      ),
      ...pairs(FUNCTION_XRAY_ACTIONS, ['*']),
    ];
    // Hosts serve config from the rollout item (Control table, read): no AppConfig action at all.
    for (const fn of HOST_FUNCTIONS) {
      expect(nonDynamo(fn), fn).toEqual([...basics(fn)].sort());
      expect(
        nonDynamo(fn).filter((g) => g.startsWith('appconfig:')),
        fn,
      ).toEqual([]);
    }
    expect(nonDynamo('admin')).toEqual(
      [
        ...basics('admin'),
        // Create and List act on a profile, Get on its versions: nothing broader.
        ...pairs(['appconfig:CreateHostedConfigurationVersion', 'appconfig:ListHostedConfigurationVersions'], PROFILES.map(profileArn)),
        ...pairs(['appconfig:GetHostedConfigurationVersion'], PROFILES.map(versionsArn)),
        `states:StartExecution <${stateMachine}>`,
      ].sort(),
    );
    expect(nonDynamo('bake')).toEqual([...basics('bake'), 'cloudwatch:GetMetricData *'].sort());
    expect(nonDynamo('upgrade')).toEqual(
      [...basics('upgrade'), ...pairs(['appconfig:GetHostedConfigurationVersion'], PROFILES.map(versionsArn))].sort(),
    );
    expect(fns.size).toBe(HOST_FUNCTIONS.length + 3);
  });
});

describe('upgrade on deploy', () => {
  /** Logical ids of the CloudFormation resources under a construct. */
  const resourcesUnder = (scope: Construct): string[] =>
    scope.node
      .findAll()
      .filter((c): c is CdkCfnResource => c instanceof CdkCfnResource)
      .map((c) => stack.resolve(c.logicalId) as string);
  /** The resources a resource needs first: its DependsOn and every Ref and Fn::GetAtt in its properties, transitively. */
  function dependenciesOf(id: string): Set<string> {
    const seen = new Set<string>();
    const visit = (rid: string) => {
      const r = resources[rid];
      if (!r || seen.has(rid)) return;
      seen.add(rid);
      const found: string[] = [...asArray<string>((r as Json).DependsOn)];
      const walk = (v: Json): void => {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === 'object') {
          if (typeof v.Ref === 'string') found.push(v.Ref);
          if (Array.isArray(v['Fn::GetAtt'])) found.push(v['Fn::GetAtt'][0]);
          Object.values(v).forEach(walk);
        }
      };
      walk(r.Properties);
      found.forEach(visit);
    };
    visit(id);
    seen.delete(id);
    return seen;
  }
  const dataFunctions = (): FunctionName[] => [...new Set(ROUTES.filter((r) => !isAdminRoute(r)).map((r) => r.fn))];

  it("a trigger runs the upgrade function's current version during the deployment, waits for its answer, and again whenever the function changes", () => {
    const trigger = resources[triggerLogicalId()]!.Properties;
    const fnId = upgradeFunctionLogicalId();
    expect(resources[fnId]!.Metadata?.['logrelay:entry']).toBe('lambdas/handlers/upgrade.ts');
    // RequestResponse: an upgrade that throws fails the trigger, and the deployment rolls back.
    expect(trigger.InvocationType).toBe('RequestResponse');
    expect(trigger.ExecuteOnHandlerChange).toBe(true);
    expect(Number(trigger.Timeout)).toBeGreaterThan(FUNCTION_TIMEOUT_SECONDS.upgrade * 1000);
    // CDK's provider may invoke the upgrade function (its versions) and no other function.
    const provider = resources[getAttOf(trigger.ServiceToken, 'Arn')]!;
    const providerRole = resources[getAttOf(provider.Properties.Role, 'Arn')]!;
    const invokes = (providerRole.Properties.Policies as Json[]).flatMap((p) =>
      (p.PolicyDocument.Statement as Json[]).flatMap((st) =>
        asArray<string>(st.Action).flatMap((a) => asArray<Json>(st.Resource).map((r) => `${a} ${flat(r)}`)),
      ),
    );
    expect(invokes).toEqual([`lambda:InvokeFunction <${fnId}.Arn>:*`]);
  });

  it('runs before anything of a data-route function (role, policy, log group, code) is created or updated, after the admin and bake functions and the Control table', () => {
    const trigger = triggerLogicalId();
    expect(dataFunctions().sort()).toEqual([...HOST_FUNCTIONS].sort());
    for (const fn of dataFunctions()) {
      const ids = resourcesUnder(stack.functions[fn]);
      expect(ids.map((id) => resources[id]!.Type).sort(), fn).toEqual([
        'AWS::IAM::Policy',
        'AWS::IAM::Role',
        'AWS::Lambda::Function',
        'AWS::Logs::LogGroup',
      ]);
      for (const id of ids) expect(asArray((resources[id] as Json).DependsOn), `${fn}: ${id}`).toContain(trigger);
    }
    // After: the admin and bake functions run the new code (whose writes keep contents) before the
    // upgrade fills them in; and the upgrade's own function, role and the table it writes exist.
    const before = dependenciesOf(trigger);
    const control = [...tableLogicalIds()].find(([, key]) => key === 'control')![0];
    for (const fn of ['admin', 'bake', 'upgrade'] as const)
      for (const id of resourcesUnder(stack.functions[fn])) expect(before.has(id), `${fn}: ${id}`).toBe(true);
    expect(before.has(control)).toBe(true);
    // No cycle, and nothing of a data-route function is needed first.
    for (const fn of dataFunctions())
      for (const id of resourcesUnder(stack.functions[fn])) expect(before.has(id), `${fn}: ${id}`).toBe(false);
  });

  it("its function's role may read the versions of this stack's two profiles and read and write the Control table, and nothing else", () => {
    const fnId = upgradeFunctionLogicalId();
    const roleId = getAttOf(resources[fnId]!.Properties.Role, 'Arn');
    const control = [...tableLogicalIds()].find(([, key]) => key === 'control')![0];
    expect(grantsOf(roleId)).toEqual(
      [
        ...pairs(['logs:CreateLogStream', 'logs:PutLogEvents'], [`<${refOf(resources[fnId]!.Properties.LoggingConfig.LogGroup)}.Arn>`]),
        ...pairs(FUNCTION_XRAY_ACTIONS, ['*']),
        ...pairs(['appconfig:GetHostedConfigurationVersion'], PROFILES.map(versionsArn)),
        ...pairs(dynamoActionsFor('readwrite'), [`<${control}.Arn>`]),
      ].sort(),
    );
  });
});
