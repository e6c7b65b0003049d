/**
 * The bake workflow: the Standard state machine that runs a config bake, calling the bake's task
 * function (lambdas/handlers/bake.ts) for every decision, AppConfig to validate a version, and
 * CloudWatch to read the arm alarms (lib/arm-alarms.ts); its execution log group; and the
 * publishing of each transition as an EventBridge event (lib/bake-events.ts).
 *
 * The state machine: TakeLock, then per change NextPhase, ValidateVersion, StartExperiment,
 * WaitForHosts and the poll loop (WaitPoll, DescribeAlarms, Judge); after the last phase, when
 * the bake has a watch (`finalBakeSeconds`, and something was promoted), StartWatch,
 * WatchSettle and the watch loop (DescribeSloAlarms, WatchPoll, WatchWait), which ends in
 * Finish when it passes or Revert when an SLO alarm fires; else Finish. Every task catches to
 * Cleanup. Each bake task's output replaces the state and carries `events` (the transitions it
 * recorded, in order) and `historyLength`, the next task's `from` (lambdas/services/bakes.ts).
 *
 * Events: right after each bake-function task (and only there: Waits and the aws-sdk tasks pass
 * the last bake task's `events` through, so publishing after them would repeat it), `<Task>HasEvents`
 * skips to the task's next state when `events` is empty, else `<Task>Publish`, a Map over
 * `$.events` with maxConcurrency 1, puts one EventBridge event per transition, in order, on the
 * default bus (lib/bake-events.ts: source `logrelay.bake`, detail-type the transition's `type`,
 * detail the transition as recorded). The Map discards its result, so the state after it is the
 * task's output, unchanged. Events are best effort: a PutEvents that is throttled (or whose entry
 * fails) is retried briefly (EVENT_RETRY), then caught, and the Map goes on to the next
 * transition; nothing about publishing can fail or stop the bake, and a transition holds it up
 * by at most EVENT_RETRY's 7 s of waits and its calls, each cut off at EVENT_TIMEOUT_SECONDS
 * (a PutEvents takes milliseconds). The bake's history (GET /bakes/{bakeId}) is the record.
 * Cleanup's transitions are published too, before the bake ends (ABORTED and FAILED included).
 *
 * Fixed defaults: type STANDARD; timeout 24 hours; X-Ray tracing on; logging level ALL with
 * execution data, to a log group under /aws/vendedlogs/states/ (lib/vended-logs.ts); each bake
 * task cut off at 60 s, retried on Lambda's service errors (CDK's retryOnServiceExceptions) and
 * on throttling (THROTTLE_RETRY; Cleanup: CLEANUP_THROTTLE_ATTEMPTS, then 6 more on any error);
 * ValidateVersion and the DescribeAlarms tasks retried 3 times from 2 s on any error except
 * AppConfig's refusal of a version (a verdict, never retried).
 */
import { Duration, Validations, type RemovalPolicy } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { bakeEvent } from './bake-events';
import { acknowledgeWildcardResources } from './nag';
import { vendedLogGroupName } from './vended-logs';

export interface BakeWorkflowProps {
  /** The state machine's task function (lambdas/handlers/bake.ts). */
  readonly bakeFunction: lambda.IFunction;
  /** ARNs of the configuration profiles whose versions ValidateVersion may validate (ConfigProfiles' `profileArns()`). */
  readonly profileArns: readonly string[];
  /** The alarms Judge reads (DescribeAlarms); the state machine may describe these and no others. */
  readonly alarms: readonly cloudwatch.IAlarm[];
  /** The alarms the watch after promotion reads (DescribeSloAlarms): the SLO alarms, among `alarms`. */
  readonly sloAlarms: readonly cloudwatch.IAlarm[];
  /** Removal policy of the execution log group. */
  readonly removalPolicy: RemovalPolicy;
  /** Retention of the execution log group. */
  readonly logRetention: logs.RetentionDays;
}

export class BakeWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  /** The state machine's execution log group. */
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: BakeWorkflowProps) {
    super(scope, id);
    for (const a of props.sloAlarms) {
      if (!props.alarms.includes(a))
        throw new Error(
          `BakeWorkflow ${id}: sloAlarms must be among alarms (the state machine may describe only those); ${a.node.path} is not.`,
        );
    }

    // Every Lambda task retries, in this order: Lambda's service errors (CDK's
    // retryOnServiceExceptions: 6 attempts from 2 s, doubling), then Lambda's throttle, 429
    // TooManyRequestsException (the function's reserved concurrency or the account's is used
    // up). A throttled invocation never ran, so its retry repeats nothing; it is retried with
    // THROTTLE_RETRY's backoff, about 2 minutes for a step, after which the step's Catch runs
    // Cleanup, and about 8 minutes for Cleanup itself, which clears the experiment and frees
    // the lock (an experiment nobody clears still expires at the end of its phase budget).
    const bakeTask = (id: string, payload: Record<string, unknown>, resultPath?: string, throttleAttempts = THROTTLE_RETRY.maxAttempts) => {
      const task = new tasks.LambdaInvoke(this, id, {
        lambdaFunction: props.bakeFunction,
        payload: sfn.TaskInput.fromObject(payload),
        payloadResponseOnly: true,
        retryOnServiceExceptions: true,
        ...(resultPath ? { resultPath } : {}),
        taskTimeout: sfn.Timeout.duration(Duration.seconds(60)),
      });
      task.addRetry({ ...THROTTLE_RETRY, maxAttempts: throttleAttempts });
      return task;
    };
    const bakeId = sfn.JsonPath.stringAt('$.bakeId');
    // Every bake task after TakeLock gets the history cursor the previous one returned (each
    // bake task's output replaces the state and always has it), and returns the transitions
    // recorded since as `events`.
    const from = sfn.JsonPath.numberAt('$.historyLength');
    const takeLock = bakeTask('TakeLock', { action: 'lock', bakeId });
    const nextPhase = bakeTask('NextPhase', { action: 'next', bakeId, from });
    const validate = new tasks.CallAwsService(this, 'ValidateVersion', {
      service: 'appconfig',
      action: 'validateConfiguration',
      parameters: {
        ApplicationId: sfn.JsonPath.stringAt('$.phase.applicationId'),
        ConfigurationProfileId: sfn.JsonPath.stringAt('$.phase.profileId'),
        ConfigurationVersion: sfn.JsonPath.stringAt('$.phase.version'),
      },
      iamResources: [...props.profileArns],
      resultPath: sfn.JsonPath.DISCARD,
    });
    // Retriers apply in order: AppConfig's refusal is a verdict, never retried; anything else
    // (throttling, a blip) is retried before it can fail the bake.
    validate.addRetry({ errors: ['AppConfig.BadRequestException'], maxAttempts: 0 });
    validate.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 3, backoffRate: 2 });
    const rejectInvalid = bakeTask('RejectInvalid', {
      action: 'invalid',
      bakeId,
      index: sfn.JsonPath.numberAt('$.phase.index'),
      error: sfn.JsonPath.objectAt('$.error'),
      from,
    });
    const startExperiment = bakeTask('StartExperiment', { action: 'start', bakeId, from });
    const waitForHosts = new sfn.Wait(this, 'WaitForHosts', { time: sfn.WaitTime.secondsPath('$.phase.pickupSeconds') });
    const waitPoll = new sfn.Wait(this, 'WaitPoll', { time: sfn.WaitTime.secondsPath('$.phase.pollSeconds') });
    const describe = (id: string, alarms: readonly cloudwatch.IAlarm[]) => {
      const task = new tasks.CallAwsService(this, id, {
        service: 'cloudwatch',
        action: 'describeAlarms',
        parameters: { AlarmNames: alarms.map((a) => a.alarmName) },
        // Both read states grant DescribeAlarms on all six alarms: one statement, the same as
        // before the watch (DescribeAlarms is authorized per alarm named; the watch names two).
        iamResources: props.alarms.map((a) => a.alarmArn),
        iamAction: 'cloudwatch:DescribeAlarms',
        resultSelector: { 'MetricAlarms.$': '$.MetricAlarms' },
        resultPath: '$.alarms',
      });
      task.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 3, backoffRate: 2 });
      return task;
    };
    const describeAlarms = describe('DescribeAlarms', props.alarms);
    const judge = bakeTask('Judge', { action: 'judge', bakeId, alarms: sfn.JsonPath.objectAt('$.alarms.MetricAlarms'), from });
    const finish = bakeTask('Finish', { action: 'finish', bakeId, from });
    // The watch after promotion: only the SLO alarms (after promotion there is no experiment arm
    // for the judge or the experiment alarms to look at).
    const startWatch = bakeTask('StartWatch', { action: 'watch', bakeId, from });
    const watchSettle = new sfn.Wait(this, 'WatchSettle', { time: sfn.WaitTime.secondsPath('$.watch.settleSeconds') });
    const watchWait = new sfn.Wait(this, 'WatchWait', { time: sfn.WaitTime.secondsPath('$.watch.pollSeconds') });
    const describeSloAlarms = describe('DescribeSloAlarms', props.sloAlarms);
    const watchPoll = bakeTask('WatchPoll', { action: 'watch-poll', bakeId, alarms: sfn.JsonPath.objectAt('$.alarms.MetricAlarms'), from });
    const revert = bakeTask('Revert', { action: 'revert', bakeId, from });
    const cleanup = bakeTask(
      'Cleanup',
      { action: 'cleanup', bakeId, input: sfn.JsonPath.objectAt('$') },
      undefined,
      CLEANUP_THROTTLE_ATTEMPTS,
    );
    cleanup.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });

    const failed = new sfn.Fail(this, 'BakeFailed', {
      error: 'BakeFailed',
      cause: 'A step of the bake failed; its experiment was cleared and its lock released. See the bake record.',
    });
    const ended = new sfn.Succeed(this, 'BakeEnded');
    const afterCleanup = new sfn.Choice(this, 'CleanupOutcome')
      .when(sfn.Condition.stringEquals('$.status', 'FAILED'), failed)
      .otherwise(ended);

    for (const s of [
      takeLock,
      nextPhase,
      rejectInvalid,
      startExperiment,
      describeAlarms,
      judge,
      finish,
      startWatch,
      describeSloAlarms,
      watchPoll,
      revert,
    ]) {
      s.addCatch(cleanup, { errors: ['States.ALL'], resultPath: '$.error' });
    }
    validate.addCatch(rejectInvalid, { errors: ['AppConfig.BadRequestException'], resultPath: '$.error' });
    validate.addCatch(cleanup, { errors: ['States.ALL'], resultPath: '$.error' });

    const hasPhase = new sfn.Choice(this, 'HasPhase')
      .when(sfn.Condition.and(sfn.Condition.isPresent('$.decision'), sfn.Condition.stringEquals('$.decision', 'ABORT')), cleanup)
      .when(
        sfn.Condition.and(
          sfn.Condition.booleanEquals('$.done', true),
          sfn.Condition.isPresent('$.watchNext'),
          sfn.Condition.booleanEquals('$.watchNext', true),
        ),
        startWatch,
      )
      .when(sfn.Condition.booleanEquals('$.done', true), finish)
      .otherwise(validate);
    const decided = new sfn.Choice(this, 'Decided')
      .when(sfn.Condition.stringEquals('$.decision', 'CONTINUE'), waitPoll)
      .when(sfn.Condition.stringEquals('$.decision', 'ABORT'), cleanup)
      .otherwise(nextPhase);
    const watchDecided = new sfn.Choice(this, 'WatchDecided')
      .when(sfn.Condition.stringEquals('$.decision', 'CONTINUE'), watchWait)
      .when(sfn.Condition.stringEquals('$.decision', 'PASSED'), finish)
      .when(sfn.Condition.stringEquals('$.decision', 'FIRED'), revert)
      .otherwise(cleanup);

    // Each bake-function task goes to its next state through the publishing of its events (see
    // the top of this file); every other state goes there directly.
    const publish = (task: tasks.LambdaInvoke, next: sfn.IChainable) => {
      const id = task.node.id;
      const put = bakeEvent(this, `${id}Event`, {
        detailType: sfn.JsonPath.stringAt('$.type'),
        detailPath: '$',
        taskTimeout: sfn.Timeout.duration(Duration.seconds(EVENT_TIMEOUT_SECONDS)),
        comment: `One transition ${id} recorded, as an EventBridge event`,
      });
      put.addRetry(EVENT_RETRY);
      // Best effort: a transition that could not be published is skipped (the history has it).
      put.addCatch(
        new sfn.Pass(this, `${id}EventNotPublished`, {
          comment: 'Events are best effort: the bake goes on; GET /bakes/{bakeId} has the history',
        }),
        {
          errors: ['States.ALL'],
          resultPath: sfn.JsonPath.DISCARD,
        },
      );
      // No Catch on the Map: its one task catches every error States.ALL can catch, and what it
      // cannot (States.Runtime, States.DataLimitExceeded) a Catch here could not either.
      const map = new sfn.Map(this, `${id}Publish`, {
        comment: `Puts the transitions ${id} recorded on the default event bus, one at a time, in order`,
        itemsPath: '$.events',
        maxConcurrency: 1,
        resultPath: sfn.JsonPath.DISCARD,
      }).itemProcessor(put);
      map.next(next);
      task.next(new sfn.Choice(this, `${id}HasEvents`).when(sfn.Condition.isPresent('$.events[0]'), map).otherwise(next));
    };

    publish(takeLock, nextPhase);
    publish(nextPhase, hasPhase);
    validate.next(startExperiment);
    publish(rejectInvalid, nextPhase);
    publish(startExperiment, waitForHosts);
    waitForHosts.next(waitPoll);
    waitPoll.next(describeAlarms);
    describeAlarms.next(judge);
    publish(judge, decided);
    publish(startWatch, watchSettle);
    watchSettle.next(describeSloAlarms);
    watchWait.next(describeSloAlarms);
    describeSloAlarms.next(watchPoll);
    publish(watchPoll, watchDecided);
    publish(finish, ended);
    publish(revert, ended);
    // Cleanup's transitions (the phase it closed, BakeEnded) are published before the bake ends,
    // FAILED included.
    publish(cleanup, afterCleanup);

    // Under /aws/vendedlogs/ so that Step Functions' log delivery does not grow the account's
    // CloudWatch Logs resource policy (lib/vended-logs.ts).
    this.logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      logGroupName: vendedLogGroupName(this, 'states', 'bake'),
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    this.stateMachine = new sfn.StateMachine(this, 'BakeStateMachine', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromChainable(takeLock),
      comment: 'Logrelay config bake: one profile change at a time, experiment arm vs control arm, gated on CloudWatch alarms',
      timeout: Duration.hours(24),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    Validations.of(this.stateMachine).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Step Functions log delivery (logs:CreateLogDelivery and friends) and X-Ray actions support no resource-level permissions.',
    });
    acknowledgeWildcardResources(
      this.stateMachine,
      [`${props.bakeFunction.functionArn}:*`],
      "CDK's LambdaInvoke grants invoking the task function's versions and aliases (`:*`), all of which are this one function.",
    );
  }
}

/**
 * Retry of a bake task that Lambda throttled: waits of 1, 2, 4, 8, 16, then 30 s each (about
 * 2 minutes over 8 retries) before the step's Catch gives up and cleans up.
 */
export const THROTTLE_RETRY: Readonly<sfn.RetryProps & { maxAttempts: number }> = {
  errors: ['Lambda.TooManyRequestsException'],
  interval: Duration.seconds(1),
  backoffRate: 2,
  maxDelay: Duration.seconds(30),
  maxAttempts: 8,
};
/** Cleanup has no Catch to fall back on: 20 retries, about 8 minutes of waits. */
export const CLEANUP_THROTTLE_ATTEMPTS = 20;

/**
 * Retry of one bake event's PutEvents: a throttled call (ThrottlingException) or a failed entry
 * (the optimized integration's EventBridge.FailedEntry, which is how PutEvents reports an
 * entry's ThrottlingException or InternalFailure) is retried after 1, 2 and 4 s; then the
 * transition is skipped. So publishing adds at most 7 s of waits per transition, and only while
 * EventBridge refuses. Nothing else is retried: an error that is not a refusal (access denied, a
 * timeout whose call may have gone through) is skipped at once.
 */
export const EVENT_RETRY: Readonly<sfn.RetryProps & { maxAttempts: number }> = {
  errors: ['EventBridge.ThrottlingException', 'EventBridge.FailedEntry'],
  interval: Duration.seconds(1),
  backoffRate: 2,
  maxAttempts: 3,
};
/** Seconds one PutEvents may take before it is given up (States.Timeout, skipped); it takes milliseconds. */
export const EVENT_TIMEOUT_SECONDS = 10;
