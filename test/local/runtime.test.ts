/**
 * The local runtime is the deployed system: routes, functions and tables come from the
 * synthesized stack; requests go through SigV4 and the gateway to the deployed handler code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { App, Duration } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { CfnTable } from 'aws-cdk-lib/aws-dynamodb';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import * as appconfig from 'aws-cdk-lib/aws-appconfig';
import { LogrelayStack } from '../../lib/logrelay-stack';
import { readSystem, synthTemplate, type Template } from '../../local/template';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { SignedHttp } from '../../local/client';
import { startEmbeddedDynamo } from '../../local/dynamo';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';

const tmp = () => mkdtempSync(join(tmpdir(), 'logrelay-test-'));

function synthWith(change: (stack: LogrelayStack) => void): Template {
  const app = new App({ outdir: tmp(), context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new LogrelayStack(app, 'Logrelay');
  change(stack);
  return app.synth().getStackByName('Logrelay').template as Template;
}

let template: Template;
beforeAll(() => {
  template = synthTemplate();
});

describe('the local runtime reads the system from the template', () => {
  it('has exactly the template routes, each on the function the template integrates', () => {
    const sys = readSystem(template);
    const res = Object.values(template.Resources);
    const templateRoutes = res.filter((r) => r.Type === 'AWS::ApiGatewayV2::Route').map((r) => r.Properties.RouteKey as string);
    expect(sys.routes.map((r) => r.routeKey).sort()).toEqual(templateRoutes.sort());
    expect(sys.routes.every((r) => r.authorizationType === 'AWS_IAM')).toBe(true);
    expect(sys.routes.find((r) => r.routeKey === 'POST /sessions/{sessionId}/ack')!.function.entry).toBe('lambdas/handlers/leases.ts');
    expect(sys.routes.find((r) => r.routeKey === 'POST /sessions/{sessionId}/receive')!.function.timeoutSeconds).toBe(28);
    // Reserved concurrency, which the local gateway enforces: receive's from the template, none on append.
    const receive = sys.routes.find((r) => r.routeKey === 'POST /sessions/{sessionId}/receive')!.function;
    const fnResource = template.Resources[receive.logicalId]!;
    expect(receive.reservedConcurrency).toBe(fnResource.Properties.ReservedConcurrentExecutions);
    expect(receive.reservedConcurrency).toBeGreaterThan(0);
    expect(sys.routes.find((r) => r.routeKey === 'POST /logs/{logId}/records')!.function.reservedConcurrency).toBeUndefined();
  });

  it('has exactly the template tables, keys and TTL attributes', () => {
    const sys = readSystem(template);
    const tables = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table');
    expect(sys.tables.map((t) => t.logicalId).sort()).toEqual(tables.map(([id]) => id).sort());
    for (const [id, r] of tables) {
      const t = sys.tables.find((x) => x.logicalId === id)!;
      expect(t.keySchema).toEqual(r.Properties.KeySchema);
      expect(t.attributeDefinitions).toEqual(r.Properties.AttributeDefinitions);
      expect(t.ttlAttribute).toBe(r.Properties.TimeToLiveSpecification.AttributeName);
    }
  });

  it("has the deploy-time upgrade function, behind no route, and not CDK's trigger provider, which is not one of the service's functions", () => {
    const sys = readSystem(template);
    const upgrade = Object.values(sys.functions).filter((f) => f.entry === 'lambdas/handlers/upgrade.ts');
    expect(upgrade).toHaveLength(1);
    expect(sys.routes.filter((r) => r.function.entry === upgrade[0]!.entry)).toEqual([]);
    // Its environment resolves locally: the Control table and the AppConfig ids.
    expect(Object.keys(upgrade[0]!.environment)).toEqual(expect.arrayContaining(['CONTROL_TABLE', 'APPCONFIG_APPLICATION_ID']));
    const lambdas = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
    const skipped = lambdas.filter(([id]) => !sys.functions[id]).map(([id]) => id);
    const trigger = Object.values(template.Resources).find((r) => r.Type === 'Custom::Trigger')!;
    expect(skipped).toEqual([trigger.Properties.ServiceToken['Fn::GetAtt'][0]]);
  });

  it('follows a change in the stack with no other edit: a new route and a different TTL attribute', async () => {
    // GET /configs/{profile} is a path of the admin routes (shared/API.md) that the stack does not
    // serve: sent to the logs function, it shows the gateway's admin check apart from the handler.
    expect(readSystem(template).routes.map((r) => r.routeKey)).not.toContain('GET /configs/{profile}');
    const changed = synthWith((stack) => {
      stack.api.addRoutes({
        path: '/configs/{profile}',
        methods: [apigwv2.HttpMethod.GET],
        integration: new HttpLambdaIntegration('configs', stack.functions.logs.function),
      });
      stack.api.addRoutes({
        path: '/ping',
        methods: [apigwv2.HttpMethod.GET],
        integration: new HttpLambdaIntegration('ping', stack.functions.logs.function),
      });
      (stack.tables.sessions.node.defaultChild as CfnTable).timeToLiveSpecification = { attributeName: 'gone', enabled: true };
    });
    const sys = readSystem(changed);
    expect(sys.routes.map((r) => r.routeKey)).toContain('GET /ping');
    expect(readSystem(template).routes.map((r) => r.routeKey)).not.toContain('GET /ping');
    expect(sys.tables.find((t) => t.logicalId.startsWith('Sessions'))!.ttlAttribute).toBe('gone');
    // Served: the gateway routes GET /ping to the logs function, whose code has no such route.
    // (GET /configs/{profile} is an admin route: only admin principals may call it.)
    const rt = await startLocalRuntime({ port: 0, template: changed, credentialsPath: join(tmp(), 'c.json'), log: () => {} });
    try {
      const r = await new SignedHttp(rt.url, rt.principals[0]!).call('GET', '/ping');
      expect(r.status).toBe(404);
      expect(r.body.error.message).toMatch(/^No route GET \/ping here/); // the handler's answer, not the gateway's
      const admin = await new SignedHttp(rt.url, rt.principals[0]!).call('GET', '/configs/delivery');
      expect(admin.status).toBe(404);
      expect(admin.body.error.message).toMatch(/^No route GET \/configs\/\{profile\} here/); // the admin got through to the function
      const { writeFileSync, readFileSync } = await import('node:fs');
      const file = JSON.parse(readFileSync(rt.credentialsPath, 'utf8'));
      file.principals.push({ name: 'worker', accessKeyId: 'LRWORKER0000000000AA', secretAccessKey: 'w'.repeat(40), admin: false });
      writeFileSync(rt.credentialsPath, JSON.stringify(file));
      await rt.close();
      const rt2 = await startLocalRuntime({ port: 0, template: changed, credentialsPath: rt.credentialsPath, log: () => {} });
      try {
        const worker = new SignedHttp(rt2.url, { accessKeyId: 'LRWORKER0000000000AA', secretAccessKey: 'w'.repeat(40) });
        const denied = await worker.call('GET', '/configs/delivery');
        expect(denied.status).toBe(403);
        expect(denied.body.error.message).toMatch(/GET \/configs\/\{profile\} is an admin route/);
        expect((await worker.call('GET', '/ping')).status).toBe(404); // data routes stay open to it
      } finally {
        await rt2.close();
      }
    } finally {
      await rt.close();
    }
  });
});

describe('alarms come from the template', () => {
  it('loads every AWS::CloudWatch::Alarm of the stack, and evaluates it on the metrics the handlers emit', async () => {
    const changed = synthWith((stack) => {
      new cloudwatch.Alarm(stack, 'LogsErrors', {
        alarmName: 'logs-4xx',
        metric: new cloudwatch.Metric({
          namespace: 'Logrelay',
          metricName: 'Errors4xx',
          dimensionsMap: { service: 'logrelay', Function: 'logs' },
          statistic: 'Sum',
          period: Duration.seconds(10),
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    });
    // LOGRELAY_TIME_SCALE 20: the 10 s period lasts 0.5 s.
    const rt = await startLocalRuntime({
      port: 0,
      template: changed,
      credentialsPath: join(tmp(), 'c.json'),
      log: () => {},
      timeScale: 20,
    });
    try {
      const names = rt.cloudwatch.describeAlarms().MetricAlarms.map((a) => a.AlarmName);
      const inTemplate: string[] = Object.values(changed.Resources)
        .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
        .map((r) => r.Properties.AlarmName);
      // The stack's six bake alarms and the one added here.
      expect(inTemplate).toHaveLength(7);
      expect(inTemplate.filter((n) => n.startsWith('Logrelay-bake-'))).toHaveLength(6);
      expect(inTemplate).toContain('logs-4xx');
      expect(names).toEqual([...inTemplate].sort()); // DescribeAlarms lists by name, as CloudWatch does
      expect(rt.cloudwatch.describeAlarms({ AlarmNames: ['logs-4xx'] }).MetricAlarms[0]!.StateValue).toBe('OK');
      await new SignedHttp(rt.url, rt.principals[0]!).call('GET', '/logs/missing'); // a 404: one 4xx
      const state = () => rt.cloudwatch.describeAlarms({ AlarmNames: ['logs-4xx'] }).MetricAlarms[0]!.StateValue;
      const until = Date.now() + 3_000;
      while (state() !== 'ALARM' && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(state()).toBe('ALARM'); // once the period holding the 404 is complete
    } finally {
      await rt.close();
    }
  });
});

describe('state machines and AppConfig come from the template', () => {
  it("runs the stack's own state machine definition on the stand-ins, and serves its AppConfig profiles", async () => {
    const changed = synthWith((stack) => {
      const wait = new sfn.Wait(stack, 'Settle', { time: sfn.WaitTime.duration(Duration.seconds(60)) });
      const alarms = new tasks.CallAwsService(stack, 'Alarms', {
        service: 'cloudwatch',
        action: 'describeAlarms',
        parameters: { AlarmNames: ['logs-4xx'] },
        iamResources: ['*'],
        resultSelector: { 'count.$': 'States.ArrayLength($.MetricAlarms)' },
        resultPath: '$.alarms',
      });
      const call = new tasks.LambdaInvoke(stack, 'Describe', {
        lambdaFunction: stack.functions.logs.function,
        payload: sfn.TaskInput.fromObject({
          version: '2.0',
          routeKey: 'GET /logs/{logId}',
          pathParameters: { 'logId.$': '$.logId' },
          requestContext: { authorizer: { iam: { userArn: 'arn:aws:iam::000000000000:user/admin' } } },
        }),
        resultSelector: { 'status.$': '$.Payload.statusCode' },
        resultPath: '$.http',
      });
      new sfn.StateMachine(stack, 'Probe', {
        stateMachineName: 'probe',
        definitionBody: sfn.DefinitionBody.fromChainable(wait.next(alarms).next(call)),
      });
      new cloudwatch.Alarm(stack, 'A', {
        alarmName: 'logs-4xx',
        metric: new cloudwatch.Metric({ namespace: 'Logrelay', metricName: 'Errors4xx', statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
      });
      const app = new appconfig.CfnApplication(stack, 'App', { name: 'probe-app' });
      const profile = new appconfig.CfnConfigurationProfile(stack, 'Limits', {
        applicationId: app.ref,
        name: 'limits',
        locationUri: 'hosted',
        validators: [
          {
            type: 'JSON_SCHEMA',
            content: JSON.stringify({ type: 'object', properties: { n: { type: 'integer', maximum: 5 } }, additionalProperties: false }),
          },
        ],
      });
      new appconfig.CfnHostedConfigurationVersion(stack, 'LimitsV1', {
        applicationId: app.ref,
        configurationProfileId: profile.ref,
        content: JSON.stringify({ n: 1 }),
        contentType: 'application/json',
      });
    });
    const rt = await startLocalRuntime({
      port: 0,
      template: changed,
      credentialsPath: join(tmp(), 'c.json'),
      log: () => {},
      timeScale: 600,
    });
    try {
      // The stack's bake state machine (no StateMachineName: named by its logical id) and the probe.
      const inTemplate = Object.entries(changed.Resources).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
      const bakeMachine = inTemplate.find(([id]) => id.startsWith('ConfigBakeBakeStateMachine'))?.[0];
      expect(bakeMachine).toBeDefined();
      expect(inTemplate).toHaveLength(2);
      expect(rt.stateMachines.map((m) => m.name).sort()).toEqual([bakeMachine, 'probe'].sort());
      const states: string[] = [];
      const started = Date.now();
      const out = (await rt.startExecution(
        'probe',
        { logId: 'nope' },
        { onEvent: (e) => void (e.type === 'StateEntered' && states.push(e.state!.name)) },
      )) as any;
      expect(Date.now() - started).toBeLessThan(2_000); // the 60 s Wait took 0.1 s at time scale 600
      expect(out.alarms).toEqual({ count: 1 }); // aws-sdk:cloudwatch answered by the local CloudWatch
      expect(out.http).toEqual({ status: 404 }); // the Lambda task ran the logs function's own handler
      expect(states).toEqual(['Settle', 'Alarms', 'Describe']);
      const profile = rt.appConfig.findProfile('probe-app', 'limits')!;
      const versions = rt.appConfig.listHostedConfigurationVersions(profile);
      expect(versions.Items.map((v) => v.VersionNumber)).toEqual([1]);
      // ...and the stack's own application (named after the stack), each profile with its initial version.
      for (const name of ['delivery', 'limits']) {
        const own = rt.appConfig.findProfile('Logrelay', name);
        expect(own, name).toBeDefined();
        expect(own!.ConfigurationProfileId).not.toBe(profile.ConfigurationProfileId);
        expect(
          rt.appConfig.listHostedConfigurationVersions(own!).Items.map((v) => v.VersionNumber),
          name,
        ).toEqual([1]);
      }
    } finally {
      await rt.close();
    }
  });
});

describe('serving over HTTP', () => {
  let rt: LocalRuntime;
  const lines: string[] = [];
  beforeAll(async () => {
    rt = await startLocalRuntime({ port: 0, template, credentialsPath: join(tmp(), 'credentials.json'), log: (l) => lines.push(l) });
  });
  afterAll(async () => rt?.close());

  it('creates an admin principal on first start', () => {
    expect(rt.credentialsCreated).toBe(true);
    expect(rt.principals).toEqual([expect.objectContaining({ name: 'admin', admin: true })]);
  });

  it('serves the contract end to end for a signed caller, and logs one line per request', async () => {
    const api = new SignedHttp(rt.url, rt.principals[0]!);
    expect((await api.call('POST', '/logs', { logId: 'http' })).status).toBe(201);
    expect((await api.call('POST', '/logs/http/records', { records: [{ data: { a: 1 }, key: 'k' }] })).body).toEqual({
      firstSeq: 1,
      lastSeq: 1,
    });
    const sid = (await api.call('POST', '/logs/http/sessions', {})).body.sessionId;
    const got = await api.call('POST', `/sessions/${sid}/receive`, {});
    expect(got.body.records).toEqual([expect.objectContaining({ seq: 1, data: { a: 1 }, key: 'k', deliveryCount: 1 })]);
    expect((await api.call('POST', `/sessions/${sid}/ack`, { seqs: [1] })).body).toEqual({ acked: 1 });
    expect((await api.call('DELETE', `/sessions/${sid}`)).status).toBe(204);
    expect(lines.some((l) => /^POST \/logs\/\{logId\}\/records 201 \d+ms$/.test(l))).toBe(true);
    expect(lines.some((l) => /^DELETE \/sessions\/\{sessionId\} 204 \d+ms$/.test(l))).toBe(true);
  });

  it("puts the handlers' metrics (EMF) into the local CloudWatch, per function", async () => {
    const api = new SignedHttp(rt.url, rt.principals[0]!);
    await api.call('GET', '/logs/http');
    await api.call('GET', '/logs/does-not-exist');
    const q = (metricName: string, stat: string) =>
      rt.cloudwatch.store.statistic({
        namespace: 'Logrelay',
        metricName,
        dimensions: { service: 'logrelay', Function: 'logs' },
        stat,
        periodSeconds: 3600,
        startMs: Date.now() - 3_600_000,
        endMs: Date.now() + 3_600_000,
      });
    const requests = q('Requests', 'Sum').reduce((a, d) => a + d.value, 0);
    const errors4xx = q('Errors4xx', 'Sum').reduce((a, d) => a + d.value, 0);
    expect(requests).toBeGreaterThanOrEqual(3); // POST /logs, GET http, GET does-not-exist
    expect(errors4xx).toBe(1);
  });

  it('answers 403 to unsigned and wrongly signed requests, with the error envelope', async () => {
    const unsigned = await fetch(`${rt.url}/logs/http`);
    expect(unsigned.status).toBe(403);
    expect(((await unsigned.json()) as { error: { code: string } }).error.code).toBe('Forbidden');
    const wrong = await new SignedHttp(rt.url, { accessKeyId: rt.principals[0]!.accessKeyId, secretAccessKey: 'not-the-secret' }).call(
      'GET',
      '/logs/http',
    );
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.message).toMatch(/signature/i);
  });

  it('loads the X-Ray SDK with the handlers but, tracing being off, creates no context namespace: no async hook on every promise', () => {
    // Imported in its automatic mode, the SDK creates a cls-hooked namespace whose async hook
    // ran on every promise of the process (about 13% of the runtime's CPU on the delivery bench).
    const load = createRequire(__filename);
    // The handlers did load the SDK (Powertools Tracer): else this would prove nothing.
    expect(Object.keys(load.cache).some((k) => k.includes('/aws-xray-sdk-core/'))).toBe(true);
    expect((load('cls-hooked') as { getNamespace(name: string): unknown }).getNamespace('AWSXRay')).toBeUndefined();
  });

  it('answers 404 RouteNotFound for a path the API does not have', async () => {
    const r = await new SignedHttp(rt.url, rt.principals[0]!).call('GET', '/nothing/here');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('RouteNotFound');
  });

  it("answers as API Gateway over HTTP: a body over 10 MB, and an event over Lambda's 6 MiB, are 413s that reach no function", async () => {
    const api = new SignedHttp(rt.url, rt.principals[0]!);
    await api.call('POST', '/logs', { logId: 'envelope' });
    const huge = await fetch(`${rt.url}/logs/envelope/records`, { method: 'POST', body: 'x'.repeat(10 * 1024 * 1024 + 1) });
    expect(huge.status).toBe(413);
    expect(await huge.text()).toBe('HTTP content length exceeded 10485760 bytes.');
    // 3.2 MiB of escaped quotes in one string: 6.4 MiB in the event. Had it reached the
    // function, its answer would be the service's own 413 with the error envelope.
    const r = await api.call('POST', '/logs/envelope/records', { records: [{ data: '"'.repeat(1_700_000) }] });
    expect(r.status).toBe(413);
    expect(r.body).toEqual({ message: 'Request Too Long' });
    expect((await api.call('GET', '/logs/envelope')).body.lastSeq).toBe(0);
  });
});

describe('the embedded DynamoDB', () => {
  // CreateTable answers while a table is CREATING; a request before ACTIVE is refused with
  // ResourceNotFoundException. The runtime must not take requests before every table is ACTIVE.
  it('has every table ACTIVE by the time it is started, fresh and reopened from a data dir', async () => {
    const dataDir = tmp();
    const tables = readSystem(template).tables;
    for (let run = 0; run < 2; run++) {
      const dynamo = await startEmbeddedDynamo({ tables, path: dataDir });
      try {
        for (const t of tables) {
          const d = await dynamo.client.send(new DescribeTableCommand({ TableName: t.name }));
          expect({ table: t.name, status: d.Table?.TableStatus }).toEqual({ table: t.name, status: 'ACTIVE' });
        }
      } finally {
        await dynamo.close();
      }
    }
  });
});

describe('--data-dir', () => {
  it('keeps logs, records and sessions across a restart', async () => {
    const dataDir = tmp();
    const credentialsPath = join(tmp(), 'c.json');
    const first = await startLocalRuntime({ port: 0, template, dataDir, credentialsPath, log: () => {} });
    const api1 = new SignedHttp(first.url, first.principals[0]!);
    expect((await api1.call('POST', '/logs', { logId: 'kept' })).status).toBe(201);
    expect((await api1.call('POST', '/logs/kept/records', { records: [{ data: 'one' }, { data: 'two' }] })).status).toBe(201);
    const opened = await api1.call('POST', '/logs/kept/sessions', {});
    expect(opened.status).toBe(201);
    const sid = opened.body.sessionId as string;
    expect((await api1.call('POST', `/sessions/${sid}/receive`, { maxRecords: 1 })).body.records).toHaveLength(1);
    expect((await api1.call('POST', `/sessions/${sid}/ack`, { seqs: [1] })).status).toBe(200);
    expect((await api1.call('GET', '/logs/kept')).body).toMatchObject({ firstSeq: 1, lastSeq: 2 });
    await first.close();
    const second = await startLocalRuntime({ port: 0, template, dataDir, credentialsPath, log: () => {} });
    try {
      expect(second.credentialsCreated).toBe(false);
      const api2 = new SignedHttp(second.url, second.principals[0]!);
      expect((await api2.call('GET', '/logs/kept')).body).toMatchObject({ firstSeq: 1, lastSeq: 2 });
      const got = await api2.call('POST', `/sessions/${sid}/receive`, {});
      expect(got.body.records.map((r: { data: string }) => r.data)).toEqual(['two']);
    } finally {
      await second.close();
    }
  });
});

describe('npm start', () => {
  it('serves within 20 s on a fresh directory, prints a working curl line, and stops cleanly on SIGINT', async () => {
    const cwd = tmp();
    const child = spawn(process.execPath, [join(__dirname, '../../node_modules/tsx/dist/cli.mjs'), join(__dirname, '../../bin/local.ts')], {
      cwd,
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const started = Date.now();
    while (!/listening on http:\/\/127\.0\.0\.1:\d+/.test(out) && Date.now() - started < 20_000 && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(out).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(Date.now() - started).toBeLessThan(20_000);
    // The printed curl line works as printed.
    const curl = out.split('\n').filter((l) => l.includes('curl --aws-sigv4'))[0]!;
    const next = out.split('\n')[out.split('\n').indexOf(curl) + 1]!;
    const cmd = `${curl.trim().replace(/\\$/, '')} ${next.trim()}`;
    const { execSync } = await import('node:child_process');
    const reply = execSync(`${cmd} -s -w ' %{http_code}'`, { encoding: 'utf8' });
    expect(reply).toMatch(/"logId":"hello".* 201$/);
    expect(out).toMatch(/credentials\.json \(created now\)/);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(0);
    expect(out).toMatch(/stopped\./);
    expect(out).toMatch(/POST \/logs 201 \d+ms/);
  }, 40_000);
});
