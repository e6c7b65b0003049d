/**
 * The config-bake half of the stack: the AppConfig application with one hosted profile per
 * config profile (JSON Schema validators generated from lambdas/domain/config.ts, version 1 the
 * defaults), the arm alarms, the Standard state machine that runs a bake, and the dashboard.
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
 */
import { Duration, Stack, Validations, type RemovalPolicy } from 'aws-cdk-lib';
import * as appconfig from 'aws-cdk-lib/aws-appconfig';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { bakeEvent } from './bake-events';
import { acknowledgeWildcardResources } from './nag';
import { vendedLogGroupName } from './vended-logs';
import { initialContent, PROFILES, profileJsonSchema, type ProfileName } from '../lambdas/domain/config';
import { ALARM_PERIOD_SECONDS, ARM_METRICS, BAKE_METRICS, METRIC_NAMESPACE, SERVICE_NAME, SLO_ALARMS, armDimensions } from '../lambdas/metrics';

/** Thresholds of the bake's alarms. Percentages are of requests; latency is service time (long-poll waits excluded). */
export interface BakeAlarmThresholds {
  /** Experiment arm's 5xx rate, %. */
  experiment5xxPercent: number;
  /** Experiment arm's p99 latency, ms. */
  experimentP99Ms: number;
  /** Experiment's 5xx rate minus control's, percentage points. */
  relative5xxPoints: number;
  /** Experiment's 4xx rate minus control's, percentage points. */
  relative4xxPoints: number;
  /** 5xx rate of all traffic, % (the SLO). */
  slo5xxPercent: number;
  /** p99 latency of either arm, ms (the SLO). */
  sloP99Ms: number;
  /** Requests an arm needs in one period before its rates count (fewer: the period reads 0). */
  minRequestsPerPeriod: number;
  /** Errors a period needs before an error-rate alarm counts it (one error in a handful of requests is not a rate). */
  minErrorsPerPeriod: number;
}

export const DEFAULT_BAKE_ALARMS: BakeAlarmThresholds = {
  experiment5xxPercent: 5,
  experimentP99Ms: 2000,
  relative5xxPoints: 5,
  relative4xxPoints: 5,
  slo5xxPercent: 2,
  sloP99Ms: 3000,
  minRequestsPerPeriod: 5,
  minErrorsPerPeriod: 3,
};

export interface ConfigBakeProps {
  /** The state machine's task function (lambdas/handlers/bake.ts). */
  bakeFunction: lambda.IFunction;
  thresholds?: Partial<BakeAlarmThresholds>;
  removalPolicy: RemovalPolicy;
  logRetention: logs.RetentionDays;
}

export class ConfigBake extends Construct {
  readonly application: appconfig.CfnApplication;
  readonly environment: appconfig.CfnEnvironment;
  readonly profiles: Record<ProfileName, appconfig.CfnConfigurationProfile>;
  readonly alarms: cloudwatch.Alarm[];
  /** The absolute SLO alarms among `alarms` (all traffic): what the watch after promotion polls. */
  readonly sloAlarms: cloudwatch.Alarm[];
  readonly stateMachine: sfn.StateMachine;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ConfigBakeProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const t = { ...DEFAULT_BAKE_ALARMS, ...props.thresholds };

    // ---- AppConfig ---------------------------------------------------------------------------
    this.application = new appconfig.CfnApplication(this, 'Application', {
      name: stack.stackName,
      description: 'Logrelay config profiles; versions are baked by the Logrelay bake state machine, not AppConfig deployments',
    });
    this.environment = new appconfig.CfnEnvironment(this, 'Environment', { applicationId: this.application.ref, name: 'live' });
    const profiles = {} as Record<ProfileName, appconfig.CfnConfigurationProfile>;
    for (const p of PROFILES) {
      const profile = new appconfig.CfnConfigurationProfile(this, `${cap(p)}Profile`, {
        applicationId: this.application.ref,
        name: p,
        locationUri: 'hosted',
        type: 'AWS.Freeform',
        description: `Logrelay ${p} profile (fields and ranges: shared/API.md)`,
        validators: [{ type: 'JSON_SCHEMA', content: JSON.stringify(profileJsonSchema(p)) }],
      });
      // Version 1: the defaults, so hosts have a control version from the first request. Its
      // content is the one the initial rollout state carries (hosts never read it from here).
      new appconfig.CfnHostedConfigurationVersion(this, `${cap(p)}InitialVersion`, {
        applicationId: this.application.ref,
        configurationProfileId: profile.ref,
        contentType: 'application/json',
        content: initialContent(p),
        description: 'Initial version: the defaults of shared/API.md',
      });
      profiles[p] = profile;
    }
    this.profiles = profiles;

    // ---- Alarms --------------------------------------------------------------------------------
    const period = Duration.seconds(ALARM_PERIOD_SECONDS);
    const m = (arm: 'control' | 'experiment', name: string, statistic = 'Sum') =>
      new cloudwatch.Metric({ namespace: METRIC_NAMESPACE, metricName: name, dimensionsMap: armDimensions(arm), statistic, period });
    const armMetrics = {
      er: m('experiment', ARM_METRICS.requests),
      e4: m('experiment', ARM_METRICS.errors4xx),
      e5: m('experiment', ARM_METRICS.errors5xx),
      ep: m('experiment', ARM_METRICS.latency, 'p99'),
      cr: m('control', ARM_METRICS.requests),
      c4: m('control', ARM_METRICS.errors4xx),
      c5: m('control', ARM_METRICS.errors5xx),
      cp: m('control', ARM_METRICS.latency, 'p99'),
    };
    const n = t.minRequestsPerPeriod;
    const k = t.minErrorsPerPeriod;
    const math = (expression: string, keys: (keyof typeof armMetrics)[], label: string) =>
      new cloudwatch.MathExpression({ expression, usingMetrics: Object.fromEntries(keys.map((k) => [k, armMetrics[k]])), period, label });
    // Missing data is "no traffic", never evidence of health: the bake's minimum-traffic rule,
    // not these alarms, decides whether a phase saw enough to be approved.
    const byName = new Map<string, cloudwatch.Alarm>();
    const alarm = (name: string, metric: cloudwatch.IMetric, threshold: number, description: string, evaluationPeriods = 3, datapointsToAlarm = 2) => {
      const a = new cloudwatch.Alarm(this, `${name.replace(/(^|-)(\w)/g, (_x, _d, c: string) => c.toUpperCase())}Alarm`, {
        alarmName: `${stack.stackName}-bake-${name}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods,
        datapointsToAlarm,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      byName.set(name, a);
      return a;
    };
    this.alarms = [
      alarm('experiment-5xx-rate', math(`IF(er >= ${n} AND e5 >= ${k}, 100 * e5 / er, 0)`, ['er', 'e5'], 'experiment 5xx %'), t.experiment5xxPercent, `The experiment arm's 5xx rate is above ${t.experiment5xxPercent}%.`),
      alarm(
        'experiment-p99-latency',
        math(`IF(er >= ${n}, ep, 0)`, ['er', 'ep'], 'experiment p99 ms'),
        t.experimentP99Ms,
        `The experiment arm's p99 service latency is above ${t.experimentP99Ms} ms.`,
      ),
      alarm(
        'experiment-5xx-vs-control',
        math(`IF(er >= ${n} AND cr >= ${n} AND e5 >= ${k}, 100 * (e5 / er - c5 / cr), 0)`, ['er', 'e5', 'cr', 'c5'], 'experiment minus control 5xx, points'),
        t.relative5xxPoints,
        `The experiment arm's 5xx rate exceeds the control arm's by more than ${t.relative5xxPoints} points.`,
      ),
      alarm(
        'experiment-4xx-vs-control',
        math(`IF(er >= ${n} AND cr >= ${n} AND e4 >= ${k}, 100 * (e4 / er - c4 / cr), 0)`, ['er', 'e4', 'cr', 'c4'], 'experiment minus control 4xx, points'),
        t.relative4xxPoints,
        `The experiment arm's 4xx rate exceeds the control arm's by more than ${t.relative4xxPoints} points: valid requests are being refused in one arm only.`,
      ),
      alarm(
        'slo-5xx-rate',
        math(`IF(er + cr >= ${n} AND e5 + c5 >= ${k}, 100 * (e5 + c5) / (er + cr), 0)`, ['er', 'e5', 'cr', 'c5'], 'all traffic 5xx %'),
        t.slo5xxPercent,
        `The 5xx rate of all traffic is above ${t.slo5xxPercent}% (a config that breaks the process hurts both arms).`,
        SLO_ALARMS.evaluationPeriods,
        SLO_ALARMS.datapointsToAlarm,
      ),
      alarm(
        'slo-p99-latency',
        math(`MAX([IF(cr >= ${n}, cp, 0), IF(er >= ${n}, ep, 0)])`, ['cr', 'cp', 'er', 'ep'], 'p99 of the slower arm, ms'),
        t.sloP99Ms,
        `The p99 service latency of an arm is above ${t.sloP99Ms} ms.`,
        SLO_ALARMS.evaluationPeriods,
        SLO_ALARMS.datapointsToAlarm,
      ),
    ];
    this.sloAlarms = SLO_ALARMS.names.map((n) => byName.get(n)!);

    // ---- State machine -------------------------------------------------------------------------
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
      iamResources: PROFILES.map((p) =>
        stack.formatArn({ service: 'appconfig', resource: 'application', resourceName: `${this.application.ref}/configurationprofile/${profiles[p].ref}` }),
      ),
      resultPath: sfn.JsonPath.DISCARD,
    });
    // Retriers apply in order: AppConfig's refusal is a verdict, never retried; anything else
    // (throttling, a blip) is retried before it can fail the bake.
    validate.addRetry({ errors: ['AppConfig.BadRequestException'], maxAttempts: 0 });
    validate.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 3, backoffRate: 2 });
    const rejectInvalid = bakeTask('RejectInvalid', { action: 'invalid', bakeId, index: sfn.JsonPath.numberAt('$.phase.index'), error: sfn.JsonPath.objectAt('$.error'), from });
    const startExperiment = bakeTask('StartExperiment', { action: 'start', bakeId, from });
    const waitForHosts = new sfn.Wait(this, 'WaitForHosts', { time: sfn.WaitTime.secondsPath('$.phase.pickupSeconds') });
    const waitPoll = new sfn.Wait(this, 'WaitPoll', { time: sfn.WaitTime.secondsPath('$.phase.pollSeconds') });
    const describe = (id: string, alarms: cloudwatch.Alarm[]) => {
      const task = new tasks.CallAwsService(this, id, {
        service: 'cloudwatch',
        action: 'describeAlarms',
        parameters: { AlarmNames: alarms.map((a) => a.alarmName) },
        // Both read states grant DescribeAlarms on all six alarms: one statement, the same as
        // before the watch (DescribeAlarms is authorized per alarm named; the watch names two).
        iamResources: this.alarms.map((a) => a.alarmArn),
        iamAction: 'cloudwatch:DescribeAlarms',
        resultSelector: { 'MetricAlarms.$': '$.MetricAlarms' },
        resultPath: '$.alarms',
      });
      task.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 3, backoffRate: 2 });
      return task;
    };
    const describeAlarms = describe('DescribeAlarms', this.alarms);
    const judge = bakeTask('Judge', { action: 'judge', bakeId, alarms: sfn.JsonPath.objectAt('$.alarms.MetricAlarms'), from });
    const finish = bakeTask('Finish', { action: 'finish', bakeId, from });
    // The watch after promotion: only the SLO alarms (after promotion there is no experiment arm
    // for the judge or the experiment alarms to look at).
    const startWatch = bakeTask('StartWatch', { action: 'watch', bakeId, from });
    const watchSettle = new sfn.Wait(this, 'WatchSettle', { time: sfn.WaitTime.secondsPath('$.watch.settleSeconds') });
    const watchWait = new sfn.Wait(this, 'WatchWait', { time: sfn.WaitTime.secondsPath('$.watch.pollSeconds') });
    const describeSloAlarms = describe('DescribeSloAlarms', this.sloAlarms);
    const watchPoll = bakeTask('WatchPoll', { action: 'watch-poll', bakeId, alarms: sfn.JsonPath.objectAt('$.alarms.MetricAlarms'), from });
    const revert = bakeTask('Revert', { action: 'revert', bakeId, from });
    const cleanup = bakeTask('Cleanup', { action: 'cleanup', bakeId, input: sfn.JsonPath.objectAt('$') }, undefined, CLEANUP_THROTTLE_ATTEMPTS);
    cleanup.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });

    const failed = new sfn.Fail(this, 'BakeFailed', { error: 'BakeFailed', cause: 'A step of the bake failed; its experiment was cleared and its lock released. See the bake record.' });
    const ended = new sfn.Succeed(this, 'BakeEnded');
    const afterCleanup = new sfn.Choice(this, 'CleanupOutcome')
      .when(sfn.Condition.stringEquals('$.status', 'FAILED'), failed)
      .otherwise(ended);

    for (const s of [takeLock, nextPhase, rejectInvalid, startExperiment, describeAlarms, judge, finish, startWatch, describeSloAlarms, watchPoll, revert]) {
      s.addCatch(cleanup, { errors: ['States.ALL'], resultPath: '$.error' });
    }
    validate.addCatch(rejectInvalid, { errors: ['AppConfig.BadRequestException'], resultPath: '$.error' });
    validate.addCatch(cleanup, { errors: ['States.ALL'], resultPath: '$.error' });

    const hasPhase = new sfn.Choice(this, 'HasPhase')
      .when(sfn.Condition.and(sfn.Condition.isPresent('$.decision'), sfn.Condition.stringEquals('$.decision', 'ABORT')), cleanup)
      .when(sfn.Condition.and(sfn.Condition.booleanEquals('$.done', true), sfn.Condition.isPresent('$.watchNext'), sfn.Condition.booleanEquals('$.watchNext', true)), startWatch)
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
      put.addCatch(new sfn.Pass(this, `${id}EventNotPublished`, { comment: 'Events are best effort: the bake goes on; GET /bakes/{bakeId} has the history' }), {
        errors: ['States.ALL'],
        resultPath: sfn.JsonPath.DISCARD,
      });
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
    const smLogs = new logs.LogGroup(this, 'StateMachineLogs', {
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
      logs: { destination: smLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
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

    // ---- Dashboard -------------------------------------------------------------------------------
    const both = (f: (arm: 'control' | 'experiment') => cloudwatch.IMetric) => [f('control'), f('experiment')];
    const rate = (arm: 'control' | 'experiment', errors: string, label: string) =>
      new cloudwatch.MathExpression({
        expression: `IF(r${arm[0]} > 0, 100 * e${arm[0]} / r${arm[0]}, 0)`,
        usingMetrics: { [`r${arm[0]}`]: m(arm, ARM_METRICS.requests), [`e${arm[0]}`]: m(arm, errors) },
        period,
        label: `${arm} ${label}`,
      });
    const underTest = (metricName: string, statistic: string) =>
      PROFILES.map((p) => new cloudwatch.Metric({ namespace: METRIC_NAMESPACE, metricName, dimensionsMap: { service: SERVICE_NAME, Profile: p }, statistic, period, label: p }));
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${stack.stackName}-bake`,
      defaultInterval: Duration.hours(1),
      widgets: [
        [
          new cloudwatch.TextWidget({
            markdown:
              '# Logrelay config bake\nEach request is served by the **control** arm (every profile at its control version) or the **experiment** arm (one profile at the version under test). A phase is rejected the moment any alarm below fires; the bake record (`GET /bakes/{bakeId}`) has each verdict in numbers.',
            width: 24,
            height: 2,
          }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Under test: weight % by profile', left: underTest(BAKE_METRICS.weight, 'Maximum'), width: 12 }),
          new cloudwatch.GraphWidget({ title: 'Under test: version by profile', left: underTest(BAKE_METRICS.version, 'Maximum'), width: 12 }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Requests per arm', left: both((a) => m(a, ARM_METRICS.requests).with({ label: a })), width: 6 }),
          new cloudwatch.GraphWidget({ title: '5xx rate per arm (%)', left: both((a) => rate(a, ARM_METRICS.errors5xx, '5xx %')), width: 6 }),
          new cloudwatch.GraphWidget({ title: '4xx rate per arm (%)', left: both((a) => rate(a, ARM_METRICS.errors4xx, '4xx %')), width: 6 }),
          new cloudwatch.GraphWidget({ title: 'p99 service latency per arm (ms)', left: both((a) => m(a, ARM_METRICS.latency, 'p99').with({ label: a })), width: 6 }),
        ],
        [new cloudwatch.AlarmStatusWidget({ title: 'Bake alarms', alarms: this.alarms, width: 24, height: 3 })],
      ],
    });
  }

  /** Lets the admin routes list, read and create versions. */
  grantManageVersions(grantee: iam.Role): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['appconfig:CreateHostedConfigurationVersion', 'appconfig:ListHostedConfigurationVersions'],
      resourceArns: this.profileArns(),
    });
    this.grantReadVersions(grantee);
  }

  /** Lets a function read the versions of this stack's two profiles, and nothing else of AppConfig (the deploy-time upgrade). */
  grantReadVersions(grantee: iam.Role): void {
    iam.Grant.addToPrincipal({ grantee, actions: ['appconfig:GetHostedConfigurationVersion'], resourceArns: this.versionArns() });
    acknowledgeWildcardResources(grantee, this.versionArns(), VERSIONS_REASON);
  }

  /** Environment variables naming the AppConfig application and profiles (lambdas/adapters/appconfig.ts). */
  get environmentVariables(): Record<string, string> {
    return {
      APPCONFIG_APPLICATION_ID: this.application.ref,
      APPCONFIG_DELIVERY_PROFILE_ID: this.profiles.delivery.ref,
      APPCONFIG_LIMITS_PROFILE_ID: this.profiles.limits.ref,
    };
  }

  private profileArns(): string[] {
    const stack = Stack.of(this);
    return PROFILES.map((p) =>
      stack.formatArn({ service: 'appconfig', resource: 'application', resourceName: `${this.application.ref}/configurationprofile/${this.profiles[p].ref}` }),
    );
  }

  private versionArns(): string[] {
    return this.profileArns().map((a) => `${a}/hostedconfigurationversion/*`);
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

const VERSIONS_REASON =
  "Each '*' is a hosted configuration version number of one of this stack's two profiles: versions are created at run time (POST /configs/{profile}/versions), so they cannot be listed in the policy.";

const cap = (s: string): string => s[0]!.toUpperCase() + s.slice(1);
