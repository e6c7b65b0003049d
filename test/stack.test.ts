/**
 * The CDK stack against its sources of truth: lambdas/routes.ts, lambdas/tables.ts,
 * openapi.json and cdk-nag's AwsSolutions pack. The stack is synthesized once (bundling the
 * five handlers with esbuild takes a few seconds).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { isAdminRoute, routesFor, tableKey } from '../lib/access';
import { LogrelayStack } from '../lib/logrelay-stack';
import { FUNCTION_ACCESS, FUNCTION_TIMEOUT_SECONDS, ROUTES, routeKey, type Access, type FunctionName } from '../lambdas/routes';
import { TABLES } from '../lambdas/tables';

// Synthesized CloudFormation is untyped JSON.
type Json = any;
interface CfnResource {
  Type: string;
  Properties: Json;
  DeletionPolicy?: string;
}

let app: App;
let stack: LogrelayStack;
let template: Template;
let resources: Record<string, CfnResource>;
let outputs: Record<string, { Value: Json }>;

const ofType = (type: string): [string, CfnResource][] => Object.entries(resources).filter(([, r]) => r.Type === type);
const refOf = (v: Json): string => {
  if (v && typeof v === 'object' && typeof v.Ref === 'string') return v.Ref;
  throw new Error(`expected a Ref, got ${JSON.stringify(v)}`);
};
const getAttOf = (v: Json, attribute: string): string => {
  if (v && Array.isArray(v['Fn::GetAtt']) && v['Fn::GetAtt'][1] === attribute) return v['Fn::GetAtt'][0];
  throw new Error(`expected Fn::GetAtt .${attribute}, got ${JSON.stringify(v)}`);
};
const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** Logical id of each table, found through the stack output that names it. */
const tableLogicalIds = (): Map<string, string> =>
  new Map(TABLES.map((t) => [refOf(outputs[`${t.id}TableName`]?.Value), tableKey(t)]));

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
    expect(p.AttributeDefinitions).toEqual(keys.map((k) => ({ AttributeName: k.name, AttributeType: k.type })));
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

  it('outputs the URL, both policy ARNs and every table name', () => {
    expect(getAttOf(outputs.ApiUrl?.Value, 'ApiEndpoint')).toBe(ofType('AWS::ApiGatewayV2::Api')[0]![0]);
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

  it('one per function name in ROUTES, on the newest Node.js runtime, arm64, traced', () => {
    const fns = functionLogicalIds();
    expect(ofType('AWS::Lambda::Function')).toHaveLength(fns.size);
    expect(newestNodeRuntime()).toBe('nodejs24.x');
    for (const [fn, id] of fns) {
      const p = resources[id]!.Properties;
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

  it('get exactly the environment of the tables they access', () => {
    const tables = tableLogicalIds();
    for (const [fn, id] of functionLogicalIds()) {
      const vars = resources[id]!.Properties.Environment.Variables as Record<string, Json>;
      const expected: Record<string, Json> = {
        POWERTOOLS_SERVICE_NAME: 'logrelay',
        POWERTOOLS_METRICS_NAMESPACE: 'Logrelay',
        NODE_OPTIONS: '--enable-source-maps',
      };
      for (const t of TABLES) {
        if (FUNCTION_ACCESS[fn][tableKey(t)]) {
          const logicalId = [...tables].find(([, key]) => key === tableKey(t))![0];
          expect(logicalId).toBeDefined();
          expected[t.envVar] = { Ref: logicalId };
        }
      }
      expect(vars, fn).toEqual(expected);
    }
  });

  it('may touch only the tables FUNCTION_ACCESS lists, and write only where it says so', () => {
    const tables = tableLogicalIds();
    const isWrite = (a: string) => /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem|PartiQL(Insert|Update|Delete)|Import|Restore|CreateTable|DeleteTable|UpdateTable)/.test(a);
    for (const [fn, id] of functionLogicalIds()) {
      const roleId = getAttOf(resources[id]!.Properties.Role, 'Arn');
      expect(resources[roleId]!.Properties.ManagedPolicyArns ?? [], fn).toEqual([]);
      expect(resources[roleId]!.Properties.Policies ?? [], fn).toEqual([]);
      const policies = [...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')].filter(([, p]) =>
        asArray(p.Properties.Roles).some((r: Json) => r?.Ref === roleId),
      );
      expect(policies.length, fn).toBeGreaterThan(0);

      const actionsByTable = new Map<string, Set<string>>();
      for (const [, policy] of policies) {
        for (const st of policy.Properties.PolicyDocument.Statement as Json[]) {
          const actions = asArray<string>(st.Action);
          expect(st.Effect).toBe('Allow');
          if (!actions.some((a) => a.startsWith('dynamodb:'))) continue;
          expect(actions.every((a) => a.startsWith('dynamodb:') && !a.includes('*')), `${fn}: ${actions}`).toBe(true);
          for (const res of asArray<Json>(st.Resource)) {
            if (res?.Ref === 'AWS::NoValue') continue;
            const key = tables.get(getAttOf(res, 'Arn')); // a bare table ARN: no "*", no index, no other table
            expect(key, `${fn}: ${JSON.stringify(res)}`).toBeDefined();
            const set = actionsByTable.get(key!) ?? new Set<string>();
            actions.forEach((a) => set.add(a));
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
        else expect(writes.sort(), `${fn} on ${key}`).toEqual(['dynamodb:BatchWriteItem', 'dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
        const reads = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'];
        if (level === 'write') expect([...actions].filter((a) => reads.includes(a)), `${fn} on ${key}`).toEqual([]);
        else for (const a of reads) expect(actions.has(a), `${fn} on ${key}: ${a}`).toBe(true);
        expect(actions.has('dynamodb:Scan'), `${fn} on ${key}`).toBe(false);
      }
    }
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
    expect(ROUTES.filter(isAdminRoute)).toEqual([]); // today: Logs and Receiver sessions only
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
      expect(codes.some((c) => /^2\d\d$/.test(c)), `${m} ${p}`).toBe(true);
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
    const summary = report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
    expect(summary.filter((s) => s.startsWith('error')), summary.join('\n')).toEqual([]);
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
    // "*" as a whole resource only for X-Ray, on the functions' roles.
    const star = acks.filter(([, id]) => id.endsWith('[Resource::*]')).map(([where]) => where);
    expect(star.sort()).toEqual([...new Set(ROUTES.map((r) => r.fn))].map((fn) => `Logrelay/${fn[0]!.toUpperCase()}${fn.slice(1)}Function/Role`).sort());
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
