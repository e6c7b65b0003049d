import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as triggers from 'aws-cdk-lib/triggers';
import type { Construct } from 'constructs';
import {
  FUNCTION_ACCESS,
  FUNCTION_INDEX_QUERIES,
  FUNCTION_TIMEOUT_SECONDS,
  ROUTES,
  type Access,
  type FunctionName,
  type RouteDef,
  type TaskFunctionName,
} from '../lambdas/routes';
import { TABLES, type KeyType, type TableDef } from '../lambdas/tables';
import { dynamoActionsFor, executeApiResourcePath, isAdminRoute, routesFor, tableKey, type PolicyAudience, type TableKey } from './access';
import { acknowledgeWildcardResources } from './nag';
import { ServiceFunction } from './service-function';
import { vendedLogGroupName } from './vended-logs';
import { ConfigBake, type BakeAlarmThresholds } from './config-bake';

// Compile-time guard: every table FUNCTION_ACCESS can name is a table of TABLES.
type AccessKey = keyof (typeof FUNCTION_ACCESS)[FunctionName | TaskFunctionName];
const _accessKeysAreTables: [AccessKey] extends [TableKey] ? true : never = true;
void _accessKeysAreTables;

export interface LogrelayStackProps extends StackProps {
  /** Removal policy of the DynamoDB tables and log groups. @default RemovalPolicy.RETAIN */
  removalPolicy?: RemovalPolicy;
  /** Retention of the functions' log groups and the API access log. @default ONE_MONTH */
  logRetention?: logs.RetentionDays;
  /** Default-stage throttling for every route. @default 1000 requests/s steady, burst 2000 */
  throttle?: { rateLimit: number; burstLimit: number };
  /** Thresholds of the config bake's alarms. @default DEFAULT_BAKE_ALARMS */
  bakeAlarms?: Partial<BakeAlarmThresholds>;
  /**
   * Lambda reserved concurrency per function, merged over the defaults. A number both guarantees
   * the function that many concurrent executions and caps it there; 0 leaves the function
   * unreserved (uncapped, sharing the account's unreserved pool). Lambda refuses a reservation
   * that would leave the account fewer than 100 unreserved executions, so in an account whose
   * concurrency quota is below 302 (new accounts may have 10) deploy with
   * `{ receive: 0, bake: 0 }` (or `-c reservedConcurrency=none`, bin/app.ts).
   * @default DEFAULT_RESERVED_CONCURRENCY (receive 200, bake 2, the others unreserved)
   */
  reservedConcurrency?: ReservedConcurrency;
}

export type ReservedConcurrency = Partial<Record<FunctionName | TaskFunctionName, number>>;

/**
 * Each waiting long poll holds one execution environment of the receive function for up to
 * 20 s, and a client can open as many as it likes: unbounded, a few hundred idle workers take
 * the whole account (1,000 by default), and appends, acks and the bake's tasks are throttled
 * with them. Capped at 200, receives can take at most a fifth of a default account, whatever
 * the clients do; the 201st concurrent receive is throttled (API Gateway answers it 500).
 * The bake's task function gets 2 so that its judge and cleanup are never throttled by other
 * functions of the account (one bake runs at a time; its tasks run one after another, and 2
 * leaves room for a retried invocation overlapping one still running). The other functions
 * answer in milliseconds and stay unreserved. 202 reserved leaves 798 of a default account
 * unreserved, and four stacks fit in one (Lambda keeps at least 100 unreserved).
 */
export const DEFAULT_RESERVED_CONCURRENCY: Readonly<ReservedConcurrency> = { receive: 200, bake: 2 };

/** The reservations to apply: defaults, then props; throws a sentence naming a bad value. */
export function reservedConcurrencyOf(props: ReservedConcurrency | undefined): ReservedConcurrency {
  const merged: ReservedConcurrency = { ...DEFAULT_RESERVED_CONCURRENCY, ...props };
  for (const [fn, n] of Object.entries(merged)) {
    if (n === undefined) continue;
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(
        `reservedConcurrency.${fn} is ${n}: give a whole number of concurrent executions, or 0 to leave the function unreserved.`,
      );
    }
  }
  return merged;
}

/**
 * The `reservedConcurrency` CDK context (`cdk deploy -c reservedConcurrency=...`): `none` (no
 * reservation at all, for accounts with a small concurrency quota) or a JSON object such as
 * `{"receive":500}`. Undefined when the context is not set.
 */
export function reservedConcurrencyFromContext(value: unknown): ReservedConcurrency | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (value === 'none') return Object.fromEntries(Object.keys(DEFAULT_RESERVED_CONCURRENCY).map((fn) => [fn, 0]));
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      parsed = undefined;
    }
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(
      `The reservedConcurrency context is ${JSON.stringify(value)}: give none, or a JSON object of function name to concurrency such as {"receive":500}.`,
    );
  }
  const known = new Set<string>([...new Set(ROUTES.map((r) => r.fn)), 'bake']);
  for (const fn of Object.keys(parsed)) {
    if (!known.has(fn))
      throw new Error(`The reservedConcurrency context names '${fn}', which is not a function of the stack (${[...known].join(', ')}).`);
  }
  return parsed as ReservedConcurrency;
}

const ATTRIBUTE_TYPE: Record<KeyType, dynamodb.AttributeType> = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY,
};

const attribute = (key: { name: string; type: KeyType }): dynamodb.Attribute => ({
  name: key.name,
  type: ATTRIBUTE_TYPE[key.type],
});

/** The HTTP API access log: one JSON object per request. */
const ACCESS_LOG_FORMAT = JSON.stringify({
  requestId: '$context.requestId',
  requestTime: '$context.requestTime',
  routeKey: '$context.routeKey',
  path: '$context.path',
  status: '$context.status',
  protocol: '$context.protocol',
  responseLength: '$context.responseLength',
  responseLatency: '$context.responseLatency',
  integrationStatus: '$context.integrationStatus',
  integrationLatency: '$context.integrationLatency',
  integrationError: '$context.integrationErrorMessage',
  error: '$context.error.message',
  sourceIp: '$context.identity.sourceIp',
  userAgent: '$context.identity.userAgent',
  accountId: '$context.identity.accountId',
  caller: '$context.identity.caller',
  userArn: '$context.identity.userArn',
});

export class LogrelayStack extends Stack {
  readonly tables: Readonly<Record<TableKey, dynamodb.Table>>;
  readonly functions: Readonly<Record<FunctionName | TaskFunctionName, ServiceFunction>>;
  readonly bake: ConfigBake;
  /** Runs the upgrade function during a deployment, before the data routes' functions are updated. */
  readonly upgrade: triggers.Trigger;
  readonly api: apigwv2.HttpApi;
  readonly workerPolicy: iam.ManagedPolicy;
  readonly operatorPolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: LogrelayStackProps = {}) {
    super(scope, id, props);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const throttle = props.throttle ?? { rateLimit: 1000, burstLimit: 2000 };
    const reserved = reservedConcurrencyOf(props.reservedConcurrency);

    // ---- Tables: one per TABLES entry --------------------------------------------------------
    const tables = {} as Record<TableKey, dynamodb.Table>;
    const tableDefs = {} as Record<TableKey, TableDef>;
    for (const def of TABLES) {
      const table = new dynamodb.Table(this, def.id, {
        partitionKey: attribute(def.partitionKey),
        ...(def.sortKey ? { sortKey: attribute(def.sortKey) } : {}),
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: def.ttlAttribute,
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        removalPolicy,
      });
      // Adding an index to a deployed table is an in-place update (DynamoDB backfills it online).
      for (const ix of def.indexes ?? []) {
        table.addGlobalSecondaryIndex({
          indexName: ix.name,
          partitionKey: attribute(ix.partitionKey),
          sortKey: attribute(ix.sortKey),
          projectionType: dynamodb.ProjectionType[ix.projection],
        });
      }
      tables[tableKey(def)] = table;
      tableDefs[tableKey(def)] = def;
      new CfnOutput(this, `${def.id}TableName`, {
        value: table.tableName,
        description: `Physical name of the ${def.id} table (${def.envVar})`,
      });
    }
    this.tables = tables;

    // ---- Functions: one per function name in ROUTES, the bake's task function, the upgrade -------
    const functionNames: (FunctionName | TaskFunctionName)[] = [...new Set(ROUTES.map((r) => r.fn)), 'bake', 'upgrade'];
    const functions = {} as Record<FunctionName | TaskFunctionName, ServiceFunction>;
    for (const fn of functionNames) {
      const access = (Object.entries(FUNCTION_ACCESS[fn]) as [TableKey, Access | undefined][]).filter(
        (e): e is [TableKey, Access] => e[1] !== undefined,
      );
      const environment: Record<string, string> = {};
      for (const [key] of access) {
        const table = tables[key];
        if (!table) throw new Error(`FUNCTION_ACCESS.${fn} names table '${key}', which TABLES does not define`);
        environment[tableDefs[key].envVar] = table.tableName;
      }
      const f = new ServiceFunction(this, `${fn[0]!.toUpperCase()}${fn.slice(1)}Function`, {
        fn,
        timeout: Duration.seconds(FUNCTION_TIMEOUT_SECONDS[fn]),
        environment,
        logRetention,
        removalPolicy,
        reservedConcurrency: reserved[fn],
      });
      // On the table's ARN alone: Table.grant would add `<table>/index/*` once a table has an
      // index, letting every reader of the Control table query its indexes. Each index is
      // granted to the functions FUNCTION_INDEX_QUERIES names, for Query only.
      for (const [key, level] of access) {
        f.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: dynamoActionsFor(level), resources: [tables[key].tableArn] }));
      }
      for (const [key, names] of Object.entries(FUNCTION_INDEX_QUERIES[fn] ?? {}) as [TableKey, readonly string[]][]) {
        const known = tableDefs[key]?.indexes?.map((ix) => ix.name) ?? [];
        for (const name of names)
          if (!known.includes(name))
            throw new Error(`FUNCTION_INDEX_QUERIES.${fn} names index '${name}' of table '${key}', which TABLES does not define`);
        f.role.addToPrincipalPolicy(
          new iam.PolicyStatement({ actions: ['dynamodb:Query'], resources: names.map((name) => `${tables[key].tableArn}/index/${name}`) }),
        );
      }
      functions[fn] = f;
    }
    this.functions = functions;

    // ---- Config bake: AppConfig profiles, alarms, state machine, dashboard ------------------------
    this.bake = new ConfigBake(this, 'ConfigBake', {
      bakeFunction: functions.bake.function,
      removalPolicy,
      logRetention,
      ...(props.bakeAlarms ? { thresholds: props.bakeAlarms } : {}),
    });
    // AppConfig is the store of versions, used on the control path only: the admin routes manage
    // versions, the bake names them to its state machine, and the upgrade reads the ones an old
    // rollout item lacks. The data routes' hosts serve each version's content from the rollout
    // item (lambdas/services/rollout.ts), so they get neither an AppConfig permission nor the
    // AppConfig ids.
    for (const fn of ['admin', 'bake', 'upgrade'] as const) {
      for (const [k, v] of Object.entries(this.bake.environmentVariables)) functions[fn].function.addEnvironment(k, v);
    }
    this.bake.grantManageVersions(functions.admin.role);
    this.bake.grantReadVersions(functions.upgrade.role);
    functions.admin.function.addEnvironment('BAKE_STATE_MACHINE_ARN', this.bake.stateMachine.stateMachineArn);
    this.bake.stateMachine.grantStartExecution(functions.admin.role);
    // GetMetricData supports no resource-level permissions.
    functions.bake.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['cloudwatch:GetMetricData'], resources: ['*'] }));

    // ---- Upgrade on deploy -----------------------------------------------------------------------
    // The data routes' hosts serve from the rollout item alone, so a rollout item an older
    // deployment wrote (versions without their contents) must be filled in before any host runs
    // the new code: the trigger runs the upgrade function (lambdas/handlers/upgrade.ts) once the
    // admin and bake functions have their new code (whose every write keeps the contents, so no
    // later write can undo the fill) and before CloudFormation touches anything of a data-route
    // function (its role, log group, code). An upgrade that fails fails the deployment, which
    // rolls back to the older code; what it wrote (copies of immutable versions) that code
    // ignores. It runs again only when the upgrade function changes (executeOnHandlerChange), and
    // a run that finds nothing missing writes nothing.
    const dataFunctions = [...new Set(ROUTES.filter((r) => !isAdminRoute(r)).map((r) => r.fn))];
    this.upgrade = new triggers.Trigger(this, 'Upgrade', {
      handler: functions.upgrade.function,
      executeOnHandlerChange: true,
      executeAfter: [functions.upgrade, functions.admin, functions.bake, tables.control],
      executeBefore: dataFunctions.map((fn) => functions[fn]),
    });

    // ---- HTTP API: IAM authorization on every route ---------------------------------------------
    const iamAuthorizer = new HttpIamAuthorizer();
    this.api = new apigwv2.HttpApi(this, 'Api', {
      apiName: 'logrelay',
      description: 'Logrelay HTTP API (shared/API.md); every route requires SigV4 (IAM)',
      defaultAuthorizer: iamAuthorizer,
      createDefaultStage: true,
    });

    const integrations = new Map<FunctionName | TaskFunctionName, HttpLambdaIntegration>();
    for (const route of ROUTES) {
      let integration = integrations.get(route.fn);
      if (!integration) {
        integration = new HttpLambdaIntegration(`${route.fn}-integration`, functions[route.fn].function, {
          payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
        });
        integrations.set(route.fn, integration);
      }
      this.api.addRoutes({
        path: route.path,
        methods: [apigwv2.HttpMethod[route.method]],
        integration,
        authorizer: iamAuthorizer,
      });
    }

    // Access logging and throttling on the default stage (the L2 HttpApi exposes neither for
    // its auto-created stage, so through the L1 escape hatch).
    // Under /aws/vendedlogs/ so that API Gateway's log delivery does not grow the account's
    // CloudWatch Logs resource policy (lib/vended-logs.ts).
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      logGroupName: vendedLogGroupName(this, 'apigateway', 'access'),
      retention: logRetention,
      removalPolicy,
    });
    const defaultStage = this.api.defaultStage;
    if (!defaultStage) throw new Error('HttpApi did not create its default stage');
    const cfnStage = defaultStage.node.defaultChild as apigwv2.CfnStage;
    cfnStage.accessLogSettings = { destinationArn: accessLogs.logGroupArn, format: ACCESS_LOG_FORMAT };
    cfnStage.defaultRouteSettings = {
      throttlingRateLimit: throttle.rateLimit,
      throttlingBurstLimit: throttle.burstLimit,
    };

    // ---- Caller policies -------------------------------------------------------------------------
    this.workerPolicy = this.invokePolicy('WorkerPolicy', 'worker', defaultStage.stageName);
    this.operatorPolicy = this.invokePolicy('OperatorPolicy', 'operator', defaultStage.stageName);

    new CfnOutput(this, 'BakeStateMachineArn', {
      value: this.bake.stateMachine.stateMachineArn,
      description: 'The config bake state machine',
    });
    // The bake publishes its transitions here (source logrelay.bake): the bus users put rules on.
    new CfnOutput(this, 'BakeEventBusArn', {
      value: Stack.of(this).formatArn({ service: 'events', resource: 'event-bus', resourceName: 'default' }),
      description: 'The EventBridge bus the bake publishes its events to (source logrelay.bake): put rules on it',
    });
    new CfnOutput(this, 'BakeDashboard', {
      value: this.bake.dashboard.dashboardName,
      description: 'CloudWatch dashboard that follows a bake',
    });
    new CfnOutput(this, 'ApiUrl', { value: this.api.apiEndpoint, description: 'Base URL of the Logrelay HTTP API' });
    new CfnOutput(this, 'WorkerPolicyArn', {
      value: this.workerPolicy.managedPolicyArn,
      description: 'Attach to worker and producer identities: invoke the data routes',
    });
    new CfnOutput(this, 'OperatorPolicyArn', {
      value: this.operatorPolicy.managedPolicyArn,
      description: 'Attach to operator identities: invoke the data and admin routes',
    });
  }

  /** A managed policy allowing execute-api:Invoke on exactly the routes of `audience`. */
  private invokePolicy(id: string, audience: PolicyAudience, stageName: string): iam.ManagedPolicy {
    const routes: RouteDef[] = routesFor(ROUTES, audience);
    const resources = routes.map((r) =>
      this.formatArn({
        service: 'execute-api',
        resource: this.api.apiId,
        resourceName: `${stageName}/${executeApiResourcePath(r)}`,
      }),
    );
    const policy = new iam.ManagedPolicy(this, id, {
      description:
        audience === 'worker'
          ? 'Logrelay workers and producers: invoke the data routes of the HTTP API'
          : 'Logrelay operators: invoke the data and admin routes of the HTTP API',
      statements: [new iam.PolicyStatement({ actions: ['execute-api:Invoke'], resources })],
    });
    acknowledgeWildcardResources(
      policy,
      resources,
      'Each "*" stands for one path parameter (such as {logId} or {sessionId}) of one route of this API\'s default stage: IAM matches the concrete request path. The service itself confines logs and sessions to the principal that created them (404 for any other).',
    );
    return policy;
  }
}
