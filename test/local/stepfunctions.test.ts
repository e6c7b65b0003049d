/**
 * The local Step Functions runner executes the definition a CDK stack synthesizes. These tests
 * build small TEST-ONLY stacks with the Step Functions constructs, read the machines out of the
 * synthesized template and run them against local handlers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { CreateTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import {
  ExecutionFailedError,
  lambdaArn,
  runExecution,
  stateMachinesFromTemplate,
  TemplateResolveError,
  type CfnTemplate,
  type ExecutionEvent,
  type TemplateStateMachine,
} from '../../local/stepfunctions';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => Server;

/** Synthesizes a throwaway stack (functions are not bundled: their inline code is never run). */
function synth(build: (stack: Stack) => void): CfnTemplate {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'SfnTest');
  build(stack);
  return app.synth().getStackByName('SfnTest').template as CfnTemplate;
}

const fnIn = (stack: Stack, id: string) =>
  new lambda.Function(stack, id, {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => ({})'),
  });

const logicalId = (stack: Stack, c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as lambda.CfnFunction);

const only = (template: CfnTemplate, opts?: Parameters<typeof stateMachinesFromTemplate>[1]): TemplateStateMachine => {
  const machines = stateMachinesFromTemplate(template, opts);
  expect(machines).toHaveLength(1);
  return machines[0]!;
};

const entered = (events: ExecutionEvent[]) => events.filter((e) => e.type === 'StateEntered').map((e) => e.state!.name);

describe('stateMachinesFromTemplate', () => {
  it('resolves the Fn::Join definition: Lambda ARNs, table and alarm names, partition', () => {
    const ids: Record<string, string> = {};
    const template = synth((stack) => {
      const fn = fnIn(stack, 'Worker');
      const table = new dynamodb.Table(stack, 'Bakes', { partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING } });
      const alarm = new cloudwatch.Alarm(stack, 'Errors', {
        metric: new cloudwatch.Metric({ namespace: 'Test', metricName: 'Errors' }),
        threshold: 1,
        evaluationPeriods: 1,
      });
      ids.fn = logicalId(stack, fn);
      ids.table = stack.getLogicalId(table.node.defaultChild as dynamodb.CfnTable);
      const chain = new tasks.LambdaInvoke(stack, 'Invoke', { lambdaFunction: fn })
        .next(
          new tasks.CallAwsService(stack, 'Describe', {
            service: 'cloudwatch',
            action: 'describeAlarms',
            parameters: { AlarmNames: [alarm.alarmName] },
            iamResources: ['*'],
          }),
        )
        .next(new tasks.DynamoPutItem(stack, 'Put', { table, item: { pk: tasks.DynamoAttributeValue.fromString('x') } }));
      new sfn.StateMachine(stack, 'Machine', { definitionBody: sfn.DefinitionBody.fromChainable(chain) });
    });
    const sm = only(template, { tableName: (id) => `local-${id}` });
    expect(sm.logicalId).toMatch(/^Machine/);
    const states = sm.definition.States;
    expect(states.Invoke!.Resource).toBe('arn:aws:states:::lambda:invoke');
    expect(states.Invoke!.Parameters.FunctionName).toBe(lambdaArn(ids.fn!));
    expect(lambdaArn(ids.fn!)).toBe(`arn:aws:lambda:us-east-1:000000000000:function:${ids.fn}`);
    expect(states.Describe!.Resource).toBe('arn:aws:states:::aws-sdk:cloudwatch:describeAlarms');
    // An alarm without an explicit name is known locally by its logical id (as local/cloudwatch does).
    expect(states.Describe!.Parameters.AlarmNames[0]).toMatch(/^Errors/);
    expect(states.Put!.Parameters.TableName).toBe(`local-${ids.table}`);
  });

  it('fails clearly on an intrinsic it cannot resolve', () => {
    const template = synth((stack) => {
      const topic = new sns.Topic(stack, 'Alerts');
      const chain = new tasks.SnsPublish(stack, 'Notify', { topic, message: sfn.TaskInput.fromText('hi') });
      new sfn.StateMachine(stack, 'Machine', { definitionBody: sfn.DefinitionBody.fromChainable(chain) });
    });
    expect(() => stateMachinesFromTemplate(template)).toThrow(TemplateResolveError);
    expect(() => stateMachinesFromTemplate(template)).toThrow(/State machine Machine\w*.*\{"Ref": "Alerts\w*"\} \(a AWS::SNS::Topic\)/);
    // ...unless the caller knows what it is.
    const sm = only(template, { ref: (id, r) => (r?.Type === 'AWS::SNS::Topic' ? `arn:aws:sns:us-east-1:000000000000:${id}` : undefined) });
    expect(sm.definition.States.Notify!.Parameters.TopicArn).toMatch(/^arn:aws:sns:us-east-1:000000000000:Alerts/);
  });
});

describe('runExecution', () => {
  it('polls a fake describeAlarms in a loop until a counter reaches N, then chooses', async () => {
    const N = 4;
    const ids: Record<string, string> = {};
    const template = synth((stack) => {
      const tick = fnIn(stack, 'Tick');
      ids.tick = logicalId(stack, tick);
      const alarm = new cloudwatch.Alarm(stack, 'Canary', {
        alarmName: 'canary-errors',
        metric: new cloudwatch.Metric({ namespace: 'Test', metricName: 'Errors' }),
        threshold: 1,
        evaluationPeriods: 1,
      });
      const init = new sfn.Pass(stack, 'Init', { result: sfn.Result.fromObject({ count: 0 }), resultPath: '$.poll' });
      const describe = new tasks.CallAwsService(stack, 'DescribeAlarms', {
        service: 'cloudwatch',
        action: 'describeAlarms',
        parameters: { AlarmNames: [alarm.alarmName] },
        iamResources: [alarm.alarmArn],
        resultSelector: { 'state.$': '$.MetricAlarms[0].StateValue' },
        resultPath: '$.alarm',
      });
      const count = new tasks.LambdaInvoke(stack, 'Count', {
        lambdaFunction: tick,
        payload: sfn.TaskInput.fromJsonPathAt('$.poll'),
        resultSelector: { 'count.$': '$.Payload.count' },
        resultPath: '$.poll',
      });
      const wait = new sfn.Wait(stack, 'PollWait', { time: sfn.WaitTime.duration(Duration.seconds(30)) });
      const approved = new sfn.Pass(stack, 'Approved', { parameters: { verdict: 'APPROVED', 'polls.$': '$.poll.count' } });
      const rejected = new sfn.Pass(stack, 'Rejected', { parameters: { verdict: 'REJECTED', 'polls.$': '$.poll.count' } });
      const decide = new sfn.Choice(stack, 'Decide')
        .when(sfn.Condition.stringEquals('$.alarm.state', 'ALARM'), rejected)
        .when(sfn.Condition.numberGreaterThanEquals('$.poll.count', N), approved)
        .otherwise(wait);
      wait.next(describe);
      const chain = init.next(describe).next(count).next(decide);
      new sfn.StateMachine(stack, 'Bake', { definitionBody: sfn.DefinitionBody.fromChainable(chain) });
    });
    const sm = only(template);

    const run = async (alarmAfter: number | undefined) => {
      const calls: unknown[] = [];
      const events: ExecutionEvent[] = [];
      const output = await runExecution(
        sm.definition,
        { bakeId: 'b-1' },
        {
          timeScale: 3000, // 30 s polls -> 10 ms
          lambdas: {
            [ids.tick!]: async (event) => ({ count: (event as { count: number }).count + 1 }),
          },
          sdk: {
            'cloudwatch:describeAlarms': async (params) => {
              calls.push(params);
              const state = alarmAfter !== undefined && calls.length > alarmAfter ? 'ALARM' : 'OK';
              return { MetricAlarms: [{ AlarmName: params.AlarmNames[0], StateValue: state }], CompositeAlarms: [] };
            },
          },
          onEvent: (e) => events.push(e),
        },
      );
      return { output, calls, events };
    };

    const ok = await run(undefined);
    expect(ok.output).toEqual({ verdict: 'APPROVED', polls: N });
    expect(ok.calls).toHaveLength(N);
    // PascalCase parameters reach the SDK handler, with the alarm's name resolved from the template.
    expect(ok.calls[0]).toEqual({ AlarmNames: ['canary-errors'] });
    expect(entered(ok.events)).toEqual([
      'Init',
      ...Array.from({ length: N }, (_, i) => ['DescribeAlarms', 'Count', 'Decide', ...(i < N - 1 ? ['PollWait'] : [])]).flat(),
      'Approved',
    ]);
    expect(ok.events.find((e) => e.state?.name === 'PollWait')!.state!.type).toBe('Wait');
    expect(ok.events[0]!.type).toBe('ExecutionStarted');
    expect(ok.events.at(-1)).toMatchObject({ type: 'ExecutionSucceeded', output: { verdict: 'APPROVED', polls: N } });

    const bad = await run(1);
    expect(bad.output).toEqual({ verdict: 'REJECTED', polls: 2 });
  });

  it('scales Wait states: a 60 s Wait with timeScale 600 takes about 0.1 s (Seconds and SecondsPath)', async () => {
    const template = synth((stack) => {
      const chain = new sfn.Wait(stack, 'Bake60', { time: sfn.WaitTime.duration(Duration.seconds(60)) })
        .next(new sfn.Wait(stack, 'BakeFromInput', { time: sfn.WaitTime.secondsPath('$.bakeSeconds') }))
        .next(new sfn.Succeed(stack, 'Done'));
      new sfn.StateMachine(stack, 'Waits', { definitionBody: sfn.DefinitionBody.fromChainable(chain) });
    });
    const sm = only(template);
    const events: ExecutionEvent[] = [];
    const t0 = Date.now();
    const out = await runExecution(sm.definition, { bakeSeconds: 120 }, { timeScale: 600, onEvent: (e) => events.push(e) });
    const elapsed = Date.now() - t0;
    expect(out).toEqual({ bakeSeconds: 120 });
    expect(elapsed).toBeGreaterThanOrEqual(290); // 100 ms + 200 ms
    expect(elapsed).toBeLessThan(1500);
    const spent = (name: string) => {
      const a = events.find((e) => e.type === 'StateEntered' && e.state!.name === name)!.timestamp;
      const b = events.find((e) => e.type === 'StateExited' && e.state!.name === name)!.timestamp;
      return b - a;
    };
    expect(spent('Bake60')).toBeGreaterThanOrEqual(95);
    expect(spent('Bake60')).toBeLessThan(600);
    expect(spent('BakeFromInput')).toBeGreaterThanOrEqual(195);
    // The SecondsPath wait is still reported as a Wait state.
    expect(events.find((e) => e.state?.name === 'BakeFromInput')!.state!.type).toBe('Wait');

    // A SecondsPath that is not a non-negative integer is a States.Runtime error, as in AWS.
    await expect(runExecution(sm.definition, { bakeSeconds: 'soon' }, { timeScale: 600 })).rejects.toMatchObject({
      status: 'FAILED',
      Error: 'States.Runtime',
    });
  });

  it('retries and catches a throwing Lambda task as AWS does, ending in a cleanup state', async () => {
    const ids: Record<string, string> = {};
    const template = synth((stack) => {
      const flaky = fnIn(stack, 'Flaky');
      const cleanupFn = fnIn(stack, 'Cleanup');
      ids.flaky = logicalId(stack, flaky);
      ids.cleanup = logicalId(stack, cleanupFn);
      const work = new tasks.LambdaInvoke(stack, 'StartExperiment', { lambdaFunction: flaky, outputPath: '$.Payload' });
      work.addRetry({ errors: ['Throttled'], interval: Duration.seconds(10), maxAttempts: 2, backoffRate: 2 });
      const cleanup = new tasks.LambdaInvoke(stack, 'StopExperiment', {
        lambdaFunction: cleanupFn,
        payloadResponseOnly: true, // a bare Lambda ARN resource: the function's result is the task's result
        resultPath: '$.cleanup',
      });
      work.addCatch(cleanup, { errors: ['States.ALL'], resultPath: '$.error' });
      const chain = work.next(new sfn.Succeed(stack, 'Finished'));
      cleanup.next(new sfn.Pass(stack, 'CleanedUp'));
      new sfn.StateMachine(stack, 'Experiment', { definitionBody: sfn.DefinitionBody.fromChainable(chain) });
    });
    const sm = only(template);
    expect(sm.definition.States.StopExperiment!.Resource).toBe(lambdaArn(ids.cleanup!));

    let attempts = 0;
    const cleaned: unknown[] = [];
    const events: ExecutionEvent[] = [];
    const t0 = Date.now();
    const output = (await runExecution(
      sm.definition,
      { bakeId: 'b-2' },
      {
        timeScale: 1000, // Retry intervals are scaled too: 10 s and 20 s -> 10 ms and 20 ms
        lambdas: {
          [ids.flaky!]: async () => {
            attempts++;
            if (attempts <= 2) throw Object.assign(new Error('slow down'), { name: 'Throttled' });
            class ExperimentError extends Error {
              override name = 'ExperimentError';
            }
            throw new ExperimentError('weights could not be set');
          },
          [ids.cleanup!]: async (event) => {
            cleaned.push(event);
            return { stopped: true };
          },
        },
        onEvent: (e) => events.push(e),
      },
    )) as { bakeId: string; error: { Error: string; Cause: string }; cleanup: unknown };
    expect(Date.now() - t0).toBeLessThan(2000);

    expect(attempts).toBe(3); // the first try and two retries; the third error matches no retrier
    expect(events.filter((e) => e.type === 'StateRetried').map((e) => e.retryAttempt)).toEqual([1, 2]);
    expect(events.find((e) => e.type === 'StateCaught')).toMatchObject({
      state: { name: 'StartExperiment' },
      caughtNext: 'StopExperiment',
    });
    expect(entered(events)).toEqual(['StartExperiment', 'StopExperiment', 'CleanedUp']);

    // Error is the function's errorType; Cause is Lambda's error document, as a JSON string.
    expect(output.error.Error).toBe('ExperimentError');
    expect(JSON.parse(output.error.Cause)).toMatchObject({ errorType: 'ExperimentError', errorMessage: 'weights could not be set' });
    expect(output.bakeId).toBe('b-2');
    expect(output.cleanup).toEqual({ stopped: true });
    expect(cleaned[0]).toMatchObject({ bakeId: 'b-2', error: { Error: 'ExperimentError' } });
  });

  it('models Lambda refusing an invocation (throttle, service error): the function does not run, the Task fails with Lambda.<Exception>', async () => {
    const ids: Record<string, string> = {};
    const template = synth((stack) => {
      const judgeFn = fnIn(stack, 'JudgeFn');
      const cleanupFn = fnIn(stack, 'CleanupFn');
      ids.judge = logicalId(stack, judgeFn);
      ids.cleanup = logicalId(stack, cleanupFn);
      // One task of each resource form: the optimized lambda:invoke and a bare Lambda ARN.
      const judge = new tasks.LambdaInvoke(stack, 'Judge', {
        lambdaFunction: judgeFn,
        retryOnServiceExceptions: false,
        outputPath: '$.Payload',
      });
      judge.addRetry({ errors: ['Lambda.TooManyRequestsException'], interval: Duration.seconds(1), maxAttempts: 2 });
      const cleanup = new tasks.LambdaInvoke(stack, 'Cleanup', {
        lambdaFunction: cleanupFn,
        payloadResponseOnly: true,
        retryOnServiceExceptions: false,
        resultPath: '$.cleanup',
      });
      judge.addCatch(cleanup, { errors: ['States.ALL'], resultPath: '$.error' });
      new sfn.StateMachine(stack, 'M', { definitionBody: sfn.DefinitionBody.fromChainable(judge.next(new sfn.Succeed(stack, 'Done'))) });
    });
    const sm = only(template);
    const ran: string[] = [];
    const asked: string[] = [];
    // The judge is throttled three times (two retries, then caught); the cleanup once refused with a service error (no retrier: the execution fails).
    const faults: Record<string, ('TooManyRequestsException' | 'ServiceException')[]> = {
      [ids.judge!]: ['TooManyRequestsException', 'TooManyRequestsException', 'TooManyRequestsException'],
      [ids.cleanup!]: ['ServiceException'],
    };
    const events: ExecutionEvent[] = [];
    const run = runExecution(
      sm.definition,
      { bakeId: 'b-3' },
      {
        timeScale: 1000,
        lambdas: {
          [ids.judge!]: async () => void ran.push('judge'),
          [ids.cleanup!]: async () => void ran.push('cleanup'),
        },
        lambdaInvokeFault: (id) => {
          asked.push(id);
          return faults[id]!.shift();
        },
        onEvent: (e) => events.push(e),
      },
    );
    const e = await run.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ExecutionFailedError);
    expect(e).toMatchObject({ status: 'FAILED', Error: 'Lambda.ServiceException' });
    expect((e as ExecutionFailedError).Cause).toMatch(
      /^An internal error occurred\. \(Service: AWSLambda; Status Code: 500; Error Code: ServiceException; /,
    );
    expect(ran).toEqual([]); // a refused invocation never reaches the function
    expect(asked).toEqual([ids.judge, ids.judge, ids.judge, ids.cleanup]);
    expect(events.filter((x) => x.type === 'StateRetried').map((x) => x.state!.name)).toEqual(['Judge', 'Judge']);
    expect(events.find((x) => x.type === 'StateCaught')).toMatchObject({ state: { name: 'Judge' }, caughtNext: 'Cleanup' });
    const cleanupInput = events.find((x) => x.type === 'StateEntered' && x.state?.name === 'Cleanup')!.state!.input as {
      error: { Error: string; Cause: string };
    };
    expect(cleanupInput.error.Error).toBe('Lambda.TooManyRequestsException');
    expect(cleanupInput.error.Cause).toMatch(
      /^Rate Exceeded\. \(Service: AWSLambda; Status Code: 429; Error Code: TooManyRequestsException; /,
    );
  });

  it('surfaces a Fail state as the execution error, with Error and Cause', async () => {
    const template = synth((stack) => {
      const chain = new sfn.Pass(stack, 'Check').next(
        new sfn.Choice(stack, 'Healthy?')
          .when(sfn.Condition.booleanEquals('$.healthy', true), new sfn.Succeed(stack, 'Ok'))
          .otherwise(new sfn.Fail(stack, 'BakeFailed', { error: 'Logrelay.BakeFailed', cause: 'the canary alarm fired' })),
      );
      new sfn.StateMachine(stack, 'Gate', { definitionBody: sfn.DefinitionBody.fromChainable(chain) });
    });
    const sm = only(template);
    expect(await runExecution(sm.definition, { healthy: true })).toEqual({ healthy: true });

    const events: ExecutionEvent[] = [];
    const err = await runExecution(sm.definition, { healthy: false }, { onEvent: (e) => events.push(e) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionFailedError);
    expect(err).toMatchObject({ status: 'FAILED', Error: 'Logrelay.BakeFailed', Cause: 'the canary alarm fired' });
    expect(events.at(-1)).toMatchObject({ type: 'ExecutionFailed', error: 'Logrelay.BakeFailed', cause: 'the canary alarm fired' });

    // An uncaught task error fails the execution the same way.
    const ids: Record<string, string> = {};
    const t2 = synth((stack) => {
      const fn = fnIn(stack, 'Boom');
      ids.fn = logicalId(stack, fn);
      new sfn.StateMachine(stack, 'M', {
        definitionBody: sfn.DefinitionBody.fromChainable(new tasks.LambdaInvoke(stack, 'Go', { lambdaFunction: fn })),
      });
    });
    const err2 = (await runExecution(
      only(t2).definition,
      {},
      {
        lambdas: {
          [ids.fn!]: async () => {
            throw new TypeError('x is undefined');
          },
        },
      },
    ).catch((e: unknown) => e)) as ExecutionFailedError;
    expect(err2.Error).toBe('TypeError');
    expect(JSON.parse(err2.Cause!)).toMatchObject({ errorType: 'TypeError', errorMessage: 'x is undefined' });
  });

  it('stops on abort, and refuses to start a machine with a task it cannot run', async () => {
    const ids: Record<string, string> = {};
    const template = synth((stack) => {
      const fn = fnIn(stack, 'Fn');
      ids.fn = logicalId(stack, fn);
      const chain = new sfn.Wait(stack, 'Long', { time: sfn.WaitTime.duration(Duration.hours(1)) }).next(
        new tasks.LambdaInvoke(stack, 'After', { lambdaFunction: fn }),
      );
      new sfn.StateMachine(stack, 'M', { definitionBody: sfn.DefinitionBody.fromChainable(chain) });
    });
    const sm = only(template);
    const ac = new AbortController();
    let called = false;
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 50);
    const err = await runExecution(
      sm.definition,
      {},
      {
        signal: ac.signal,
        lambdas: {
          [ids.fn!]: async () => {
            called = true;
          },
        },
      },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 'ABORTED' });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(called).toBe(false);

    await expect(runExecution(sm.definition, {}, { lambdas: {} })).rejects.toThrow(/After: no local handler for Lambda Fn/);
  });

  it('binds and scales the states inside Parallel branches and Map iterations too', async () => {
    const ids: Record<string, string> = {};
    const template = synth((stack) => {
      const fn = fnIn(stack, 'Double');
      ids.fn = logicalId(stack, fn);
      const parallel = new sfn.Parallel(stack, 'Both', { resultPath: '$.both' })
        .branch(
          new sfn.Wait(stack, 'WaitA', { time: sfn.WaitTime.duration(Duration.seconds(60)) }).next(
            new sfn.Pass(stack, 'A', { result: sfn.Result.fromString('a') }),
          ),
        )
        .branch(
          new sfn.Wait(stack, 'WaitB', { time: sfn.WaitTime.secondsPath('$.seconds') }).next(
            new sfn.Pass(stack, 'B', { result: sfn.Result.fromString('b') }),
          ),
        );
      const map = new sfn.Map(stack, 'EachItem', { itemsPath: '$.items', resultPath: '$.doubled' });
      map.itemProcessor(new tasks.LambdaInvoke(stack, 'DoubleIt', { lambdaFunction: fn, payloadResponseOnly: true }));
      new sfn.StateMachine(stack, 'Nested', { definitionBody: sfn.DefinitionBody.fromChainable(parallel.next(map)) });
    });
    const sm = only(template);
    const events: ExecutionEvent[] = [];
    const t0 = Date.now();
    const out = await runExecution(
      sm.definition,
      { seconds: 60, items: [1, 2, 3] },
      {
        timeScale: 600,
        lambdas: { [ids.fn!]: async (n) => (n as number) * 2 },
        onEvent: (e) => events.push(e),
      },
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(out).toEqual({ seconds: 60, items: [1, 2, 3], both: ['a', 'b'], doubled: [2, 4, 6] });
    expect(events.filter((e) => e.type === 'StateEntered' && e.state!.name === 'DoubleIt').map((e) => e.index)).toEqual([0, 1, 2]);
  });

  describe('with the optimized DynamoDB integration on a real client', () => {
    let server: Server;
    let client: DynamoDBClient;
    beforeAll(async () => {
      server = dynalite({ createTableMs: 0 });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      client = new DynamoDBClient({
        endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      });
      await client.send(
        new CreateTableCommand({
          TableName: 'local-bakes',
          BillingMode: 'PAY_PER_REQUEST',
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        }),
      );
    });
    afterAll(async () => {
      client?.destroy();
      await new Promise<void>((r) => server?.close(() => r()));
    });

    it('puts, updates (conditionally) and gets items; a failed condition is DynamoDB.ConditionalCheckFailedException', async () => {
      const template = synth((stack) => {
        const table = new dynamodb.Table(stack, 'Bakes', { partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING } });
        const put = new tasks.DynamoPutItem(stack, 'Put', {
          table,
          item: {
            pk: tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$.bakeId')),
            status: tasks.DynamoAttributeValue.fromString('RUNNING'),
          },
          resultPath: sfn.JsonPath.DISCARD,
        });
        const finish = new tasks.DynamoUpdateItem(stack, 'Finish', {
          table,
          key: { pk: tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$.bakeId')) },
          updateExpression: 'SET #s = :done',
          conditionExpression: '#s = :running',
          expressionAttributeNames: { '#s': 'status' },
          expressionAttributeValues: {
            ':done': tasks.DynamoAttributeValue.fromString('SUCCEEDED'),
            ':running': tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$.expect')),
          },
          resultPath: sfn.JsonPath.DISCARD,
        });
        finish.addCatch(new sfn.Pass(stack, 'Conflict'), { errors: ['DynamoDB.ConditionalCheckFailedException'], resultPath: '$.error' });
        const get = new tasks.DynamoGetItem(stack, 'Get', {
          table,
          key: { pk: tasks.DynamoAttributeValue.fromString(sfn.JsonPath.stringAt('$.bakeId')) },
          resultSelector: { 'status.$': '$.Item.status.S' },
          resultPath: '$.item',
        });
        new sfn.StateMachine(stack, 'M', { definitionBody: sfn.DefinitionBody.fromChainable(put.next(finish).next(get)) });
      });
      const sm = only(template, { tableName: () => 'local-bakes' });
      const out = await runExecution(sm.definition, { bakeId: 'b-3', expect: 'RUNNING' }, { dynamodb: client });
      expect(out).toEqual({ bakeId: 'b-3', expect: 'RUNNING', item: { status: 'SUCCEEDED' } });
      const stored = await client.send(new GetItemCommand({ TableName: 'local-bakes', Key: { pk: { S: 'b-3' } } }));
      expect(stored.Item?.status).toEqual({ S: 'SUCCEEDED' });

      const events: ExecutionEvent[] = [];
      const out2 = (await runExecution(
        sm.definition,
        { bakeId: 'b-4', expect: 'PAUSED' },
        { dynamodb: client, onEvent: (e) => events.push(e) },
      )) as {
        error: { Error: string; Cause: string };
      };
      expect(entered(events)).toEqual(['Put', 'Finish', 'Conflict']);
      expect(out2.error.Error).toBe('DynamoDB.ConditionalCheckFailedException');
      expect(out2.error.Cause).toMatch(/conditional request failed/i);
    });
  });
});
