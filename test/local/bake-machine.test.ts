/**
 * The bake state machine, exactly as the stack synthesizes it, executed by the local ASL
 * interpreter on every path a bake can take. Its Lambda tasks run the real bake handler over the
 * embedded DynamoDB; the alarms and the arms' metrics are scripted per phase, so each test states
 * what CloudWatch would have shown and checks what the bake did about it: the control versions,
 * no experiment left, the lock free, and the verdicts recorded. Its EventBridge PutEvents go to
 * the local default bus (local/eventbridge.ts), whose recorded events must be the bake's history;
 * a bus that throttles or fails entries shows that events never change what the bake does.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { synthTemplate, readSystem, type Template } from '../../local/template';
import {
  ExecutionFailedError,
  runExecution,
  stateMachinesFromTemplate,
  type AslDefinition,
  type ExecutionEvent,
  type LambdaInvokeFault,
} from '../../local/stepfunctions';
import { startEmbeddedDynamo, type EmbeddedDynamo } from '../../local/dynamo';
import { DynamoControlStore } from '../../lambdas/adapters/control';
import type { ConfigVersions } from '../../lambdas/adapters/appconfig';
import type { ArmMetricsReader } from '../../lambdas/adapters/cloudwatch';
import { historyBound, type BakeRecord, type BakeSettings, type BakeTransition } from '../../lambdas/domain/bake';
import { contentOf } from '../../lambdas/domain/config';
import type { ArmSeries, PeriodStats } from '../../lambdas/domain/judge';
import type { ProfileName } from '../../lambdas/domain/config';
import { BakeService, WATCH_SETTLE_SECONDS, type BakeTask } from '../../lambdas/services/bakes';
import { CLEANUP_THROTTLE_ATTEMPTS, EVENT_RETRY, THROTTLE_RETRY } from '../../lib/config-bake';
import { LocalEventBridge, type LocalEvent, type PutEventsEntry, type PutEventsOutput } from '../../local/eventbridge';
import { makeHandler } from '../../lambdas/handlers/bake';
import Ajv2020 from 'ajv/dist/2020';
import openapi from '../../openapi.json';
import { refused } from '../support/refusal';

const SCALE = 1000; // Wait states of 10 s take 10 ms
/** GET /bakes/{bakeId}'s body as openapi.json states it. */
const bakeContract = new Ajv2020({ strict: false, validateFormats: false, allErrors: true }).compile({
  $ref: '#/components/schemas/Bake',
  components: openapi.components,
});
const IDS = { applicationId: 'app1234', profiles: { delivery: 'dlv1234', limits: 'lim1234' } };

let template: Template;
let definition: AslDefinition;
let bakeFnId: string;
let alarmNames: string[];
let dynamo: EmbeddedDynamo;
let control: DynamoControlStore;

beforeAll(async () => {
  template = synthTemplate();
  const system = readSystem(template);
  const sm = stateMachinesFromTemplate(template).find((m) => m.logicalId.includes('BakeStateMachine'));
  if (!sm) throw new Error('no bake state machine in the stack');
  definition = sm.definition;
  bakeFnId = Object.values(system.functions).find((f) => f.entry === 'lambdas/handlers/bake.ts')!.logicalId;
  alarmNames = Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
    .map((r) => String(r.Properties.AlarmName));
  dynamo = await startEmbeddedDynamo({ tables: system.tables });
  control = new DynamoControlStore(dynamo.client, system.tables.find((t) => t.logicalId.startsWith('Control'))!.name);
}, 120_000);

afterAll(async () => {
  await dynamo?.close();
});

/** What CloudWatch shows during one phase (keyed "profile:version"). */
interface PhaseScript {
  /** Alarm names (suffix after "-bake-") in ALARM from this poll on (1-based). */
  alarm?: { name: string; fromPoll: number };
  /** Experiment requests per 10-second period (default 1000; control gets nine times as many). */
  experimentPerPeriod?: number;
  /** The experiment's 5xx rate above control's 0.5%, in points, and its p99 above control's, in percent. */
  errorPoints?: number;
  p99Percent?: number;
  /** Throw from the metrics read at this poll (a task failure). */
  failAtPoll?: number;
  /** Request an abort when this poll's alarms are read. */
  abortAtPoll?: number;
  /** AppConfig's validators refuse this version. */
  invalid?: boolean;
  /** Request an abort while the version is being validated, before its experiment starts. */
  abortOnValidate?: boolean;
  /** The watch after promotion (script key 'watch'): before its poll `poll` is answered. */
  beforeWatchPoll?: (poll: number) => Promise<void>;
}

/** Each version's content as the scripted AppConfig has it (version 1: the defaults). */
const CONTENTS: Record<string, unknown> = {
  'delivery:2': { maxBatchRecords: 50 },
  'delivery:3': { maxBatchRecords: 50, longPollIntervalMs: 100 },
  'limits:2': { maxRecordsPerAppend: 1 },
  'limits:3': { maxRecordsPerAppend: 400 },
};

/** What GetMetricData shows after `polls` polls: three 10-second periods a poll, both arms. */
const seriesOf = (polls: number, s: PhaseScript = {}): ArmSeries => {
  const e = s.experimentPerPeriod ?? 1000;
  const period = (requests: number, errorRate: number, p99Ms: number): PeriodStats => ({
    requests,
    errors4xx: 0,
    errors5xx: Math.round(requests * errorRate),
    p99Ms,
  });
  const n = polls * 3;
  return {
    control: Array.from({ length: n }, () => period(9 * e, 0.005, 40)),
    experiment: Array.from({ length: n }, () => period(e, 0.005 + (s.errorPoints ?? 0) / 100, 40 * (1 + (s.p99Percent ?? 0) / 100))),
  };
};

interface Run {
  bakeId: string;
  status: 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  error?: string;
  record: BakeRecord;
  events: ExecutionEvent[];
  /** The experiment seen in the rollout state at each poll, "profile:version@weight"; "watch" at each poll of the watch. */
  liveDuringPolls: string[];
  /** The alarm names each DescribeAlarms of the watch asked for. */
  watchAsked: string[][];
  /** The `events` of every bake-function task's output, in the order the tasks ran: what the state machine would publish. */
  published: BakeTransition[];
  /** The control versions each rollout write of a Revert task wrote, in order. */
  revertWrites: Record<string, string>[];
  /** GET /bakes/{bakeId}'s body at the end. */
  view: Record<string, any>;
  /** What the local default bus recorded: the events the state machine published. */
  busEvents: LocalEvent[];
}

/** The states that invoke the bake function (their output is the function's, `events` included). */
const BAKE_TASKS = new Set([
  'TakeLock',
  'NextPhase',
  'RejectInvalid',
  'StartExperiment',
  'Judge',
  'StartWatch',
  'WatchPoll',
  'Revert',
  'Finish',
  'Cleanup',
]);

/** Lambda's answer to each invocation of the bake function before it runs (a throttle, a service error), by its task. */
type InvokeFaults = (task: BakeTask) => LambdaInvokeFault | undefined;

/** What the bus does with a PutEvents call (its one entry, and how many calls came before it): accept it, or refuse it as EventBridge can. */
type BusFault = (entry: PutEventsEntry, call: number) => 'throttle' | 'fail-entry' | 'denied' | undefined;

/** The local default bus, refusing the calls `fault` says to: as the AWS SDK reports a refused call, or as PutEvents reports a failed entry. */
function faultyBus(bus: LocalEventBridge, fault: BusFault): Pick<LocalEventBridge, 'putEvents'> {
  let calls = 0;
  return {
    putEvents(input: { Entries?: PutEventsEntry[] }): PutEventsOutput {
      const what = fault(input.Entries![0]!, calls++);
      if (what === 'throttle')
        throw Object.assign(new Error('Rate exceeded'), {
          name: 'ThrottlingException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
        });
      if (what === 'denied')
        throw Object.assign(new Error('User is not authorized to perform events:PutEvents'), {
          name: 'AccessDeniedException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
        });
      if (what === 'fail-entry')
        return { FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'Internal failure' }] };
      return bus.putEvents(input);
    },
  };
}

async function bake(
  changes: { profile: ProfileName; version: string }[],
  scripts: Record<string, PhaseScript>,
  settings: BakeSettings = { weightPercent: 10, bakeSeconds: 30, pollSeconds: 10, minExperimentRequests: 100 },
  invokeFaults?: InvokeFaults,
  busFault?: BusFault,
): Promise<Run> {
  const pollOf = new Map<string, number>();
  let current = '';
  const liveDuringPolls: string[] = [];
  const watchAsked: string[][] = [];
  const revertWrites: Record<string, string>[] = [];
  const versions: ConfigVersions = {
    get: async (p, v) => (Number(v) === 1 ? {} : Number(v) >= 2 && Number(v) <= 3 ? CONTENTS[`${p}:${v}`] : undefined),
    create: async () => '4',
    list: async () => ['3', '2', '1'],
  };
  const metrics: ArmMetricsReader = {
    armSeries: async () => {
      const s = scripts[current] ?? {};
      if (s.failAtPoll === pollOf.get(current)) throw new Error('CloudWatch GetMetricData failed: throttled past every retry');
      return seriesOf(pollOf.get(current) ?? 1, s);
    },
  };
  // The Control table, with each rollout write seen (the task that made it, and its control versions).
  let task = '';
  const observed = new Proxy(control, {
    get(target, key) {
      if (key === 'putRollout') {
        return async (next: Parameters<DynamoControlStore['putRollout']>[0]) => {
          const before = (await target.getRollout(true)).state.control;
          const stored = await target.putRollout(next);
          if (task === 'revert' && JSON.stringify(before) !== JSON.stringify(next.state.control))
            revertWrites.push({ ...next.state.control });
          return stored;
        };
      }
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const service = new BakeService(
    observed,
    versions,
    IDS,
    metrics,
    { start: async () => {} },
    { now: () => Date.now() },
    { timeScale: SCALE },
  );
  const handler = makeHandler({ bakes: service });
  let bakeId = '';

  const sdk = {
    'appconfig:validateConfiguration': async (p: { ConfigurationProfileId: string; ConfigurationVersion: string }) => {
      const profile = (Object.entries(IDS.profiles).find(([, id]) => id === p.ConfigurationProfileId)?.[0] ?? '?') as ProfileName;
      if (scripts[`${profile}:${p.ConfigurationVersion}`]?.abortOnValidate) await service.abort(bakeId);
      if (scripts[`${profile}:${p.ConfigurationVersion}`]?.invalid) {
        throw Object.assign(new Error('Configuration failed JSON Schema validation: /maxRecordsPerAppend must be >= 1'), {
          name: 'BadRequestException',
        });
      }
      return {};
    },
    'cloudwatch:describeAlarms': async (p: { AlarmNames: string[] }) => {
      const rollout = await control.getRollout(true);
      const e = rollout.state.experiment;
      // The watch asks for fewer alarms than a phase's poll (the SLO ones); its script is 'watch'.
      const watching = p.AlarmNames.length < alarmNames.length;
      if (watching) watchAsked.push([...p.AlarmNames]);
      current = e ? `${e.profile}:${e.version}` : watching ? 'watch' : '';
      liveDuringPolls.push(e ? `${current}@${e.weightPercent}` : watching ? 'watch' : 'none');
      const poll = (pollOf.get(current) ?? 0) + 1;
      pollOf.set(current, poll);
      const s = scripts[current] ?? {};
      if (watching) await s.beforeWatchPoll?.(poll);
      if (s.abortAtPoll === poll) await service.abort(bakeId);
      return {
        MetricAlarms: p.AlarmNames.map((name) => {
          const firing = s.alarm && name.endsWith(`-bake-${s.alarm.name}`) && poll >= s.alarm.fromPoll;
          // As CloudWatch reports an alarm: its threshold, and the datapoints of its last evaluation (newest first).
          return firing
            ? {
                AlarmName: name,
                StateValue: 'ALARM',
                StateReason: 'Threshold Crossed: 3 out of the last 6 datapoints [7.5, 6.25, 4.0] were greater than the threshold (2.0).',
                StateReasonData: JSON.stringify({
                  version: '1.0',
                  threshold: 2,
                  evaluatedDatapoints: [{ value: 7.5 }, { value: 6.25 }, { value: 4 }, { value: 0 }, { value: 0 }, { value: 0 }],
                }),
                Threshold: 2,
              }
            : { AlarmName: name, StateValue: 'OK', StateReason: 'scripted', Threshold: 2 };
        }),
      };
    },
  };

  // POST /bakes does this before starting the execution: lock and record.
  ({ bakeId } = await service.startBake(changes, settings));
  const events: ExecutionEvent[] = [];
  const bus = new LocalEventBridge();
  let status: Run['status'] = 'SUCCEEDED';
  let error: string | undefined;
  try {
    await runExecution(
      definition,
      { bakeId },
      {
        lambdas: {
          [bakeFnId]: async (e) => {
            task = (e as BakeTask).action;
            return handler(e as never);
          },
        },
        ...(invokeFaults ? { lambdaInvokeFault: (_id: string, e: unknown) => invokeFaults(e as BakeTask) } : {}),
        sdk,
        eventBridge: busFault ? faultyBus(bus, busFault) : bus,
        timeScale: SCALE,
        name: bakeId,
        onEvent: (e) => events.push(e),
      },
    );
  } catch (e) {
    if (!(e instanceof ExecutionFailedError)) throw e;
    status = e.status === 'ABORTED' ? 'ABORTED' : 'FAILED';
    error = e.Error;
  }
  const record = (await control.getBake(bakeId))!;
  // A task whose error was caught exits with its input (and the error): not the function's output.
  const caught = new Set<string>();
  const published: BakeTransition[] = [];
  for (const e of events) {
    if (e.type === 'StateCaught') caught.add(e.state!.name);
    if (e.type !== 'StateExited' || !BAKE_TASKS.has(e.state!.name)) continue;
    if (caught.delete(e.state!.name)) continue;
    published.push(...((e.state!.output as { events?: BakeTransition[] }).events ?? []));
  }
  const view = await service.describe(bakeId);
  return {
    bakeId,
    status,
    ...(error ? { error } : {}),
    record,
    events,
    liveDuringPolls,
    watchAsked,
    published,
    revertWrites,
    view,
    busEvents: bus.list(),
  };
}

beforeEach(async () => {
  // Every test starts from the initial rollout state: version 1 of both profiles, no lock.
  const item = await control.getRollout(true);
  if (item.rev > 0) await control.putRollout({ state: { control: { delivery: '1', limits: '1' } }, rev: item.rev });
});

async function expectClean(expectedControl: Record<ProfileName, string>) {
  const item = await control.getRollout(true);
  expect(item.state.control).toEqual(expectedControl);
  expect(item.state.experiment).toBeUndefined();
  expect(item.lock).toBeUndefined();
}

const verdicts = (r: Run) => r.record.phases.map((p) => `${p.profile}:${p.version}=${p.verdict}`);

/**
 * The events the bus recorded are the bake's history: one per transition, in order, each exactly
 * once, the transition as recorded as the detail, its type as the detail-type, source
 * logrelay.bake, and this execution among the resources (as Step Functions adds it).
 */
function expectPublished(r: Run): void {
  const h = r.record.history ?? [];
  expect(h.length).toBeGreaterThan(0);
  expect(r.busEvents.map((e) => e.detail)).toEqual(h);
  expect(r.busEvents.map((e) => e.detailType)).toEqual(h.map((t) => t.type));
  expect(r.busEvents.every((e) => e.source === 'logrelay.bake')).toBe(true);
  for (const e of r.busEvents) expect(e.resources).toContain(`arn:aws:states:us-east-1:000000000000:execution:Local:${r.bakeId}`);
}

describe('the synthesized bake state machine, run locally on each path', () => {
  it('approve -> approve: both versions become control, in order, each baked alone at its weight', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      {},
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(r.record.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED', 'limits:2=APPROVED']);
    // Three polls per phase (30 s / 10 s), one experiment at a time, never both.
    expect(r.liveDuringPolls).toEqual(['delivery:2@10', 'delivery:2@10', 'delivery:2@10', 'limits:2@10', 'limits:2@10', 'limits:2@10']);
    // The judge said CONTINUE at polls 1 and 2 (the bake was not over), APPROVE at 3.
    expect(r.record.phases[0]!.reason).toMatch(
      /^No alarm in 3 polls \(30 s\)\. Judge: not worse than control by more than 0\.5 points of 5xx or 15% of p99: 5xx 0\.50% \(45\/9000\)/,
    );
    expect(r.record.phases[0]!.alarms).toHaveLength(alarmNames.length);
    expect(r.record.phases[0]!.arms?.experiment.requests).toBe(9000);
    expectPublished(r);
    await expectClean({ delivery: '2', limits: '2' });
  });

  it('approve -> reject: the second phase is tested against the approved baseline and rejected on its alarm', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '3' },
      ],
      { 'limits:3': { alarm: { name: 'experiment-4xx-vs-control', fromPoll: 2 } } },
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED', 'limits:3=REJECTED']);
    const rejected = r.record.phases[1]!;
    expect(rejected.reason).toMatch(
      /^Alarm Logrelay-bake-experiment-4xx-vs-control in ALARM at poll 2\. Judge: .* 5xx 0\.50% \(30\/6000\) vs control 0\.50% \(270\/54000\)/,
    );
    expect(rejected.alarms!.find((a) => a.name.endsWith('experiment-4xx-vs-control'))!.state).toBe('ALARM');
    // Rejected at the poll that saw the alarm: no further poll of that phase.
    expect(r.liveDuringPolls.filter((l) => l.startsWith('limits:3'))).toHaveLength(2);
    expectPublished(r);
    await expectClean({ delivery: '2', limits: '1' });
  });

  it('reject -> approve: a rejected change leaves its control as it was and the next phase still runs', async () => {
    const r = await bake(
      [
        { profile: 'limits', version: '2' },
        { profile: 'delivery', version: '3' },
      ],
      { 'limits:2': { alarm: { name: 'experiment-5xx-rate', fromPoll: 1 } } },
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['limits:2=REJECTED', 'delivery:3=APPROVED']);
    expect(r.liveDuringPolls[0]).toBe('limits:2@10');
    expect(r.liveDuringPolls.filter((l) => l.startsWith('limits:2'))).toHaveLength(1);
    await expectClean({ delivery: '3', limits: '1' });
  });

  it('reject -> reject: nothing changes', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      {
        'delivery:2': { alarm: { name: 'slo-p99-latency', fromPoll: 3 } },
        'limits:2': { alarm: { name: 'experiment-5xx-vs-control', fromPoll: 1 } },
      },
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=REJECTED', 'limits:2=REJECTED']);
    expect(r.record.phases[0]!.reason).toContain('slo-p99-latency');
    expectPublished(r);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('abort during a phase: the loop sees the flag at its next poll, clears the experiment and ends ABORTED', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { 'delivery:2': { abortAtPoll: 2 } },
    );
    expect(r.status).toBe('SUCCEEDED'); // the execution ends in its Succeed state after cleanup
    expect(r.record.status).toBe('ABORTED');
    expect(verdicts(r)).toEqual(['delivery:2=REJECTED', 'limits:2=PENDING']);
    expect(r.record.phases[0]!.reason).toMatch(/^Aborted by an operator/);
    expect(r.events.some((e) => e.type === 'StateEntered' && e.state?.name === 'Cleanup')).toBe(true);
    expectPublished(r);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('an abort that lands while a phase is starting is honoured at its first poll, with cleanup', async () => {
    const r = await bake([{ profile: 'limits', version: '2' }], { 'limits:2': { abortOnValidate: true } });
    expect(r.status).toBe('SUCCEEDED');
    expect(r.record.status).toBe('ABORTED');
    expect(verdicts(r)).toEqual(['limits:2=REJECTED']);
    expect(r.liveDuringPolls).toEqual(['limits:2@10']);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('a task failure during a phase: Catch runs cleanup, the bake is FAILED with the error, nothing is left live', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { 'limits:2': { failAtPoll: 2 } },
    );
    expect(r.status).toBe('FAILED');
    expect(r.error).toBe('BakeFailed');
    expect(r.record.status).toBe('FAILED');
    expect(r.record.error).toContain('GetMetricData failed');
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED', 'limits:2=REJECTED']);
    expectPublished(r);
    await expectClean({ delivery: '2', limits: '1' });
  });

  it('a judge task Lambda throttles (and once refuses with a service error) is retried with backoff: the bake goes on as if nothing happened', async () => {
    // The account's concurrency is used up: the judge's invocations are refused 429 (and one 500)
    // before the function runs, then get through.
    const refusals: LambdaInvokeFault[] = [
      'ServiceException',
      'TooManyRequestsException',
      'TooManyRequestsException',
      'TooManyRequestsException',
    ];
    const r = await bake([{ profile: 'delivery', version: '2' }], {}, undefined, (t) =>
      t.action === 'judge' ? refusals.shift() : undefined,
    );
    expect(refusals).toEqual([]);
    const retried = r.events.filter((e) => e.type === 'StateRetried');
    expect(retried.map((e) => e.state!.name)).toEqual(['Judge', 'Judge', 'Judge', 'Judge']);
    expect(r.events.some((e) => e.type === 'StateEntered' && e.state?.name === 'Cleanup')).toBe(false);
    expect(r.status).toBe('SUCCEEDED');
    expect(r.record.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED']);
    // A refused invocation never ran: the judge counted each poll once.
    expect(r.record.phases[0]!.polls).toBe(3);
    await expectClean({ delivery: '2', limits: '1' });
  });

  it('a judge task throttled past every retry: Catch runs Cleanup, itself throttled for a while, which clears the experiment and frees the lock', async () => {
    let cleanupRefusals = CLEANUP_THROTTLE_ATTEMPTS - 2; // more than the 6 attempts of Cleanup's States.ALL retrier
    const judged: string[] = [];
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      {},
      undefined,
      (t) => {
        if (t.action === 'judge') {
          judged.push(t.action);
          return 'TooManyRequestsException';
        }
        if (t.action === 'cleanup' && cleanupRefusals > 0) {
          cleanupRefusals--;
          return 'TooManyRequestsException';
        }
        return undefined;
      },
    );
    expect(judged).toHaveLength(THROTTLE_RETRY.maxAttempts + 1); // the first try and every retry
    expect(r.events.find((e) => e.type === 'StateCaught')).toMatchObject({ state: { name: 'Judge' }, caughtNext: 'Cleanup' });
    expect(r.events.filter((e) => e.type === 'StateRetried' && e.state?.name === 'Cleanup')).toHaveLength(CLEANUP_THROTTLE_ATTEMPTS - 2);
    expect(r.status).toBe('FAILED');
    expect(r.error).toBe('BakeFailed');
    expect(r.record.status).toBe('FAILED');
    expect(r.record.error).toMatch(/^The bake failed: Lambda\.TooManyRequestsException \(Rate Exceeded\./);
    expect(verdicts(r)).toEqual(['delivery:2=REJECTED', 'limits:2=PENDING']);
    // The experiment was live when the judge was throttled; nothing is left of it.
    expect(r.liveDuringPolls).toEqual(['delivery:2@10']);
    expectPublished(r);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('too little traffic: the phase is extended once, then rejected as inconclusive, never approved', async () => {
    const r = await bake([{ profile: 'limits', version: '2' }], { 'limits:2': { experimentPerPeriod: 6 } });
    expect(r.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['limits:2=REJECTED']);
    const p = r.record.phases[0]!;
    expect(p.extended).toBe(true);
    expect(p.polls).toBe(5); // 3 polls + an extension of 2
    expect(p.reason).toMatch(/^Inconclusive after 5 polls .* Judge: 90 experiment requests, fewer than the 100 needed/);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it("the judge rejects a 5xx regression no alarm catches, at the first poll, with both arms' numbers", async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { 'delivery:2': { errorPoints: 1 } },
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=REJECTED', 'limits:2=APPROVED']);
    expect(r.record.phases[0]!.alarms!.every((a) => a.state === 'OK')).toBe(true);
    expect(r.record.phases[0]!.reason).toMatch(
      /^Judge: the experiment's 5xx rate is higher than control's: 5xx 1\.50% \(45\/3000\) vs control 0\.50% \(135\/27000\).*\(poll 1\)$/,
    );
    await expectClean({ delivery: '1', limits: '2' });
  });

  it('the judge rejects a p99 regression once it has enough periods to tell', async () => {
    const r = await bake([{ profile: 'delivery', version: '2' }], { 'delivery:2': { p99Percent: 50 } });
    expect(verdicts(r)).toEqual(['delivery:2=REJECTED']);
    // Six paired periods are needed: the second poll.
    expect(r.record.phases[0]!.polls).toBe(2);
    expect(r.record.phases[0]!.reason).toMatch(
      /^Judge: the experiment's p99 latency is higher than control's: p99 ratio 50\.0% over 6 periods/,
    );
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('a version that fails its validators is rejected before it goes live', async () => {
    const r = await bake(
      [
        { profile: 'limits', version: '3' },
        { profile: 'delivery', version: '2' },
      ],
      { 'limits:3': { invalid: true } },
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['limits:3=REJECTED', 'delivery:2=APPROVED']);
    expect(r.record.phases[0]!.reason).toMatch(/^Invalid: version 3 fails the limits profile's validators \(AppConfig.BadRequestException/);
    expect(r.liveDuringPolls.some((l) => l.startsWith('limits:3'))).toBe(false);
    await expectClean({ delivery: '2', limits: '1' });
  });

  it('a bake whose request died before starting its execution blocks others for a minute, not until its deadline', async () => {
    const versions: ConfigVersions = { get: async () => ({}), create: async () => '2', list: async () => ['1'] };
    const metrics: ArmMetricsReader = { armSeries: async () => seriesOf(3) };
    let offset = 0;
    const clock = { now: () => Date.now() + offset };
    const settings = { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 1 };
    // The first request takes the lock, records the bake, and dies inside StartExecution.
    let died!: (bakeId: string) => void;
    const dead = new Promise<string>((r) => (died = r));
    const crashing = new BakeService(
      control,
      versions,
      IDS,
      metrics,
      {
        start: (id) => {
          died(id);
          return new Promise<void>(() => {});
        },
      },
      clock,
      { timeScale: 1 },
    );
    void crashing.startBake([{ profile: 'delivery', version: '2' }], settings);
    const deadId = await dead;
    const service = new BakeService(control, versions, IDS, metrics, { start: async () => {} }, clock, { timeScale: 1 });
    expect(await refused(service.startBake([{ profile: 'limits', version: '2' }], settings))).toMatchObject({
      status: 409,
      code: 'BakeInProgress',
    });
    offset = 61_000;
    const next = await service.startBake([{ profile: 'limits', version: '2' }], settings);
    const old = (await service.describe(deadId)) as { status: string; error?: string };
    expect(old.status).toBe('FAILED');
    expect(old.error).toMatch(/NeverStarted/);
    expect((await control.getRollout(true)).lock?.bakeId).toBe(next.bakeId);
    await service.cleanup(next.bakeId);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('a bake that ended but lost its lock release does not block the next one, and keeps its verdict', async () => {
    const versions: ConfigVersions = { get: async () => ({}), create: async () => '2', list: async () => ['1'] };
    const metrics: ArmMetricsReader = { armSeries: async () => seriesOf(3) };
    const settings = { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 1 };
    const service = new BakeService(
      control,
      versions,
      IDS,
      metrics,
      { start: async () => {} },
      { now: () => Date.now() },
      { timeScale: 1 },
    );
    const first = await service.startBake([{ profile: 'delivery', version: '2' }], settings);
    // Finish recorded SUCCEEDED, then the execution died before releasing the lock.
    const rec = (await control.getBake(first.bakeId))!;
    await control.putBake({ ...rec, status: 'SUCCEEDED', endedAtMs: Date.now() });
    expect((await control.getRollout(true)).lock?.bakeId).toBe(first.bakeId);
    const next = await service.startBake([{ profile: 'limits', version: '2' }], settings);
    expect((await control.getRollout(true)).lock?.bakeId).toBe(next.bakeId);
    expect(((await service.describe(first.bakeId)) as { status: string }).status).toBe('SUCCEEDED');
    // A RUNNING holder that did start is still respected.
    expect(await refused(service.startBake([{ profile: 'delivery', version: '2' }], settings))).toMatchObject({
      status: 409,
      code: 'BakeInProgress',
    });
    await service.cleanup(next.bakeId);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('a started bake is never taken for dead: its execution marked it', async () => {
    const r = await bake([{ profile: 'delivery', version: '2' }], {});
    expect(r.record.executionStartedAtMs).toBeGreaterThanOrEqual(r.record.createdAtMs);
  });

  it('one bake at a time: a second bake is refused while the first holds the lock', async () => {
    const versions: ConfigVersions = { get: async () => ({}), create: async () => '2', list: async () => ['1'] };
    const metrics: ArmMetricsReader = { armSeries: async () => seriesOf(3) };
    const service = new BakeService(
      control,
      versions,
      IDS,
      metrics,
      { start: async () => {} },
      { now: () => Date.now() },
      { timeScale: SCALE },
    );
    const first = await service.startBake([{ profile: 'delivery', version: '2' }], {
      weightPercent: 10,
      bakeSeconds: 30,
      pollSeconds: 10,
      minExperimentRequests: 1,
    });
    expect(
      await refused(
        service.startBake([{ profile: 'limits', version: '2' }], {
          weightPercent: 10,
          bakeSeconds: 30,
          pollSeconds: 10,
          minExperimentRequests: 1,
        }),
      ),
    ).toMatchObject({
      status: 409,
      code: 'BakeInProgress',
    });
    await service.cleanup(first.bakeId);
    await expectClean({ delivery: '1', limits: '1' });
  });
});

// ---- The watch after promotion, dry runs, history and diffs ------------------------------------

/** The default test settings with a watch of 60 s: 6 polls of 10 s after its settling. */
const WATCHED: BakeSettings = { weightPercent: 10, bakeSeconds: 30, pollSeconds: 10, minExperimentRequests: 100, finalBakeSeconds: 60 };
const DRY: BakeSettings = { weightPercent: 10, bakeSeconds: 30, pollSeconds: 10, minExperimentRequests: 100, dryRun: true };

/**
 * The history is the transitions of `types`, in order, numbered from 0, in time order, within
 * its bound; it is exactly what the bake tasks handed the state machine as `events`, in the
 * same order, and exactly what the state machine published on the bus (expectPublished).
 */
function expectHistory(r: Run, types: string[]): BakeTransition[] {
  const h = r.record.history ?? [];
  expect(h.map((t) => (t.profile ? `${t.type}:${t.profile}:${t.version}` : t.type))).toEqual(types);
  expect(h.map((t) => t.seq)).toEqual(h.map((_t, i) => i));
  expect(h.every((t) => t.bakeId === r.bakeId)).toBe(true);
  const at = h.map((t) => Date.parse(t.at));
  expect(at).toEqual([...at].sort((a, b) => a - b));
  expect(h.length).toBeLessThanOrEqual(historyBound(r.record.phases.length));
  expect(r.published).toEqual(h);
  expectPublished(r);
  expect(r.view.history).toEqual(h);
  // The record as GET /bakes/{bakeId} shows it fits the contract (history, watch, diffs, verdicts).
  expect(bakeContract(r.view) ? [] : bakeContract.errors).toEqual([]);
  return h;
}

const SLO_NAMES = ['Logrelay-bake-slo-5xx-rate', 'Logrelay-bake-slo-p99-latency'];

describe('the watch after promotion, run locally', () => {
  it('a watch that passes: the bake SUCCEEDED with both versions promoted; it polled only the SLO alarms, after settling', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      {},
      WATCHED,
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(r.record.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED', 'limits:2=APPROVED']);
    // 60 s / 10 s: six polls of the watch after the phases' three each, with no experiment live.
    expect(r.liveDuringPolls.slice(6)).toEqual(Array(6).fill('watch'));
    expect(r.watchAsked).toHaveLength(6);
    for (const asked of r.watchAsked) expect(asked.sort()).toEqual(SLO_NAMES);
    const w = r.record.watch!;
    expect(w).toMatchObject({ seconds: 60, polls: 6, outcome: 'PASSED' });
    expect(w.measureFromMs - w.startedAtMs).toBe((WATCH_SETTLE_SECONDS * 1000) / SCALE);
    expect(WATCH_SETTLE_SECONDS).toBe(72); // the hosts' pick-up (12 s), then the SLO alarms' 60-second window
    const h = expectHistory(r, [
      'BakeStarted',
      'PhaseBaking:delivery:2',
      'PhaseApproved:delivery:2',
      'PhaseBaking:limits:2',
      'PhaseApproved:limits:2',
      'WatchStarted',
      'WatchPassed',
      'BakeEnded',
    ]);
    expect(h[0]).toMatchObject({
      changes: [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      finalBakeSeconds: 60,
      dryRun: false,
      weightPercent: 10,
    });
    expect(h[5]).toMatchObject({
      finalBakeSeconds: 60,
      pollSeconds: 10,
      settleSeconds: 72,
      promoted: [
        { profile: 'delivery', version: '2', controlVersion: '1' },
        { profile: 'limits', version: '2', controlVersion: '1' },
      ],
    });
    expect(h[6]).toMatchObject({ polls: 6, finalBakeSeconds: 60 });
    expect(h[6]!.traffic!.requests).toBeGreaterThan(0);
    expect(h[7]).toMatchObject({
      status: 'SUCCEEDED',
      verdicts: [
        { profile: 'delivery', version: '2', verdict: 'APPROVED' },
        { profile: 'limits', version: '2', verdict: 'APPROVED' },
      ],
    });
    expect(r.view.watch).toMatchObject({ seconds: 60, polls: 6, outcome: 'PASSED' });
    await expectClean({ delivery: '2', limits: '2' });
  });

  it('a watch that fires: both promoted profiles are reverted, last first, to their pre-bake versions and contents; verdicts REVERTED naming the alarm and its numbers', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { watch: { alarm: { name: 'slo-5xx-rate', fromPoll: 2 } } },
      WATCHED,
    );
    expect(r.status).toBe('SUCCEEDED'); // the execution ends in its Succeed state after Revert
    expect(r.record.status).toBe('REVERTED');
    expect(r.view.status).toBe('REVERTED');
    expect(verdicts(r)).toEqual(['delivery:2=REVERTED', 'limits:2=REVERTED']);
    expect(r.liveDuringPolls.slice(6)).toEqual(['watch', 'watch']); // fired at its second poll
    // Reverse order: limits (promoted last) first, then delivery.
    expect(r.revertWrites).toEqual([
      { delivery: '2', limits: '1' },
      { delivery: '1', limits: '1' },
    ]);
    const fired =
      /The watch after promotion saw alarm Logrelay-bake-slo-5xx-rate in ALARM at its poll 2 of 6: datapoints \[7\.5, 6\.25, 4, 0, 0, 0\] \(newest first\) against its threshold 2\./;
    for (const p of r.record.phases) {
      expect(p.reason).toMatch(/^Reverted to version 1 after promotion: /);
      expect(p.reason).toMatch(fired);
    }
    expect(r.record.watch).toMatchObject({ outcome: 'FIRED', polls: 2 });
    const h = expectHistory(r, [
      'BakeStarted',
      'PhaseBaking:delivery:2',
      'PhaseApproved:delivery:2',
      'PhaseBaking:limits:2',
      'PhaseApproved:limits:2',
      'WatchStarted',
      'WatchFired',
      'PhaseReverted:limits:2',
      'PhaseReverted:delivery:2',
      'BakeEnded',
    ]);
    expect(h[6]!.alarm).toMatchObject({
      name: 'Logrelay-bake-slo-5xx-rate',
      state: 'ALARM',
      threshold: 2,
      datapoints: [7.5, 6.25, 4, 0, 0, 0],
    });
    expect(h[7]).toMatchObject({ verdict: 'REVERTED', controlVersion: '1', alarm: { name: 'Logrelay-bake-slo-5xx-rate', threshold: 2 } });
    expect(h[9]).toMatchObject({ status: 'REVERTED', verdicts: [{ verdict: 'REVERTED' }, { verdict: 'REVERTED' }] });
    expect(h[9]!.reason).toMatch(fired);
    await expectClean({ delivery: '1', limits: '1' });
    // Hosts can serve what was put back: the item holds version 1's content (the copy the phase
    // took when it started) and no longer version 2's.
    const state = (await control.getRollout(true)).state;
    expect(contentOf(state, 'delivery', '1')).toBe('{}');
    expect(contentOf(state, 'limits', '1')).toBe('{}');
    expect(contentOf(state, 'delivery', '2')).toBeUndefined();
  });

  it('a watch that fires after two phases of one profile unwinds them in order, 3 -> 2 -> 1; a rejected phase is not touched', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '3' },
        { profile: 'delivery', version: '3' },
      ],
      {
        'limits:3': { alarm: { name: 'experiment-4xx-vs-control', fromPoll: 1 } },
        watch: { alarm: { name: 'slo-p99-latency', fromPoll: 1 } },
      },
      WATCHED,
    );
    expect(r.record.status).toBe('REVERTED');
    expect(verdicts(r)).toEqual(['delivery:2=REVERTED', 'limits:3=REJECTED', 'delivery:3=REVERTED']);
    expect(r.revertWrites).toEqual([
      { delivery: '2', limits: '1' },
      { delivery: '1', limits: '1' },
    ]);
    expect(r.record.phases[2]!.reason).toMatch(/^Reverted to version 2 after promotion: .*slo-p99-latency/);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('a control that is no longer the version this bake promoted is left alone when the watch fires (the revert is conditional on it)', async () => {
    // Between two polls of the watch, limits' control becomes version 3 (as if promoted by
    // someone else: under the lock only a manual write can do it).
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      {
        watch: {
          alarm: { name: 'slo-5xx-rate', fromPoll: 2 },
          beforeWatchPoll: async (poll) => {
            if (poll !== 2) return;
            const item = await control.getRollout(true);
            const state = { ...item.state, control: { ...item.state.control, limits: '3' } };
            await control.putRollout({
              ...item,
              state: { ...state, contents: { ...state.contents, limits: { '3': '{"maxRecordsPerAppend":400}' } } },
            });
          },
        },
      },
      WATCHED,
    );
    expect(r.record.status).toBe('REVERTED');
    expect(verdicts(r)).toEqual(['delivery:2=REVERTED', 'limits:2=APPROVED']);
    expect(r.record.phases[1]!.reason).toMatch(
      /Not reverted after the watch fired: limits's control is now version 3, not this bake's 2\.$/,
    );
    expect(r.revertWrites).toEqual([{ delivery: '1', limits: '3' }]);
    expectHistory(r, [
      'BakeStarted',
      'PhaseBaking:delivery:2',
      'PhaseApproved:delivery:2',
      'PhaseBaking:limits:2',
      'PhaseApproved:limits:2',
      'WatchStarted',
      'WatchFired',
      'PhaseReverted:delivery:2',
      'BakeEnded',
    ]);
    await expectClean({ delivery: '1', limits: '3' });
  });

  it('abort during the watch ends it without reverting, even with an SLO alarm firing at that poll: the promoted versions stay', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { watch: { abortAtPoll: 2, alarm: { name: 'slo-5xx-rate', fromPoll: 2 } } },
      WATCHED,
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(r.record.status).toBe('ABORTED');
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED', 'limits:2=APPROVED']);
    expect(r.record.watch).toMatchObject({ outcome: 'ABORTED', polls: 1 });
    expect(r.revertWrites).toEqual([]);
    expect(r.events.some((e) => e.type === 'StateEntered' && e.state?.name === 'Cleanup')).toBe(true);
    const h = expectHistory(r, [
      'BakeStarted',
      'PhaseBaking:delivery:2',
      'PhaseApproved:delivery:2',
      'PhaseBaking:limits:2',
      'PhaseApproved:limits:2',
      'WatchStarted',
      'AbortRequested',
      'BakeEnded',
    ]);
    expect(h[7]).toMatchObject({ status: 'ABORTED' });
    await expectClean({ delivery: '2', limits: '2' });
  });

  it('a watch task failing past its retries: the bake FAILED, nothing reverted, the lock free', async () => {
    const r = await bake([{ profile: 'delivery', version: '2' }], {}, WATCHED, (t) =>
      t.action === 'watch-poll' ? 'TooManyRequestsException' : undefined,
    );
    expect(r.status).toBe('FAILED');
    expect(r.record.status).toBe('FAILED');
    expect(r.record.error).toMatch(/^The bake failed: Lambda\.TooManyRequestsException/);
    expect(r.record.watch).toMatchObject({ outcome: 'FAILED' });
    expectHistory(r, ['BakeStarted', 'PhaseBaking:delivery:2', 'PhaseApproved:delivery:2', 'WatchStarted', 'BakeEnded']);
    await expectClean({ delivery: '2', limits: '1' });
  });

  it('a Revert task failing past its retries is finished by Cleanup: the versions are reverted and the bake ends REVERTED', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { watch: { alarm: { name: 'slo-5xx-rate', fromPoll: 1 } } },
      WATCHED,
      (t) => (t.action === 'revert' ? 'TooManyRequestsException' : undefined),
    );
    expect(r.events.find((e) => e.type === 'StateCaught')).toMatchObject({ state: { name: 'Revert' }, caughtNext: 'Cleanup' });
    expect(r.status).toBe('SUCCEEDED');
    expect(r.record.status).toBe('REVERTED');
    expect(verdicts(r)).toEqual(['delivery:2=REVERTED', 'limits:2=REVERTED']);
    // Cleanup did the reverting: its transitions were published, after the ones before the failed Revert.
    expectPublished(r);
    expect(r.busEvents.map((e) => e.detailType).slice(-3)).toEqual(['PhaseReverted', 'PhaseReverted', 'BakeEnded']);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('no watch when nothing was promoted, or without finalBakeSeconds', async () => {
    const rejected = await bake(
      [{ profile: 'limits', version: '2' }],
      { 'limits:2': { alarm: { name: 'experiment-5xx-rate', fromPoll: 1 } } },
      WATCHED,
    );
    expect(rejected.record.status).toBe('SUCCEEDED');
    expect(rejected.record.watch).toBeUndefined();
    expect(rejected.watchAsked).toEqual([]);
    expectHistory(rejected, ['BakeStarted', 'PhaseBaking:limits:2', 'PhaseRejected:limits:2', 'BakeEnded']);
    const plain = await bake([{ profile: 'limits', version: '2' }], {});
    expect(plain.record.watch).toBeUndefined();
    expect(plain.watchAsked).toEqual([]);
    await expectClean({ delivery: '1', limits: '2' });
  });
});

describe('dry runs, run locally', () => {
  it('a dry run of bad changes: each verdict recorded as WOULD_REJECT with its reason, the experiment was live and is cleared, control unchanged', async () => {
    const r = await bake(
      [
        { profile: 'limits', version: '2' },
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '3' },
      ],
      {
        'limits:2': { alarm: { name: 'experiment-4xx-vs-control', fromPoll: 2 } },
        'delivery:2': { errorPoints: 1 },
        'limits:3': { invalid: true },
      },
      DRY,
    );
    expect(r.status).toBe('SUCCEEDED');
    expect(r.record.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['limits:2=WOULD_REJECT', 'delivery:2=WOULD_REJECT', 'limits:3=WOULD_REJECT']);
    // Each ran at its weight, and was decided as a real bake would have: the alarm, the judge, the validators.
    expect(r.liveDuringPolls).toEqual(['limits:2@10', 'limits:2@10', 'delivery:2@10']);
    expect(r.record.phases[0]!.reason).toMatch(/^Alarm Logrelay-bake-experiment-4xx-vs-control in ALARM at poll 2\./);
    expect(r.record.phases[1]!.reason).toMatch(/^Judge: the experiment's 5xx rate is higher than control's: 5xx 1\.50%/);
    expect(r.record.phases[2]!.reason).toMatch(/^Invalid: version 3 fails the limits profile's validators/);
    const h = expectHistory(r, [
      'BakeStarted',
      'PhaseBaking:limits:2',
      'PhaseWouldReject:limits:2',
      'PhaseBaking:delivery:2',
      'PhaseWouldReject:delivery:2',
      'PhaseWouldReject:limits:3',
      'BakeEnded',
    ]);
    expect(h[0]).toMatchObject({ dryRun: true });
    expect(h[2]).toMatchObject({
      verdict: 'WOULD_REJECT',
      dryRun: true,
      alarmsInAlarm: ['Logrelay-bake-experiment-4xx-vs-control'],
      polls: 2,
    });
    expect(r.view.settings).toMatchObject({ dryRun: true, finalBakeSeconds: 0 });
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('a dry run of good changes: WOULD_APPROVE, control unchanged, and a later phase of the same profile is tested against the unchanged control', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'delivery', version: '3' },
      ],
      {},
      DRY,
    );
    expect(r.record.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=WOULD_APPROVE', 'delivery:3=WOULD_APPROVE']);
    expect(r.record.phases[0]!.reason).toMatch(/^No alarm in 3 polls \(30 s\)\. Judge: not worse than control/);
    expect(r.liveDuringPolls).toEqual([
      'delivery:2@10',
      'delivery:2@10',
      'delivery:2@10',
      'delivery:3@10',
      'delivery:3@10',
      'delivery:3@10',
    ]);
    // Version 3 was measured against version 1 (still control), not against 2.
    expect(r.record.phases.map((p) => p.controlVersion)).toEqual(['1', '1']);
    expect(r.record.phases[1]!.diff).toEqual([
      { path: 'longPollIntervalMs', control: 250, experimental: 100 },
      { path: 'maxBatchRecords', control: 100, experimental: 50 },
    ]);
    expectHistory(r, [
      'BakeStarted',
      'PhaseBaking:delivery:2',
      'PhaseWouldApprove:delivery:2',
      'PhaseBaking:delivery:3',
      'PhaseWouldApprove:delivery:3',
      'BakeEnded',
    ]);
    await expectClean({ delivery: '1', limits: '1' });
  });
});

describe('phase diffs and history on the other paths, run locally', () => {
  it('each phase records the control it was tested against and what the version changes against it, computed when it started', async () => {
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'delivery', version: '3' },
        { profile: 'limits', version: '2' },
      ],
      {},
    );
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED', 'delivery:3=APPROVED', 'limits:2=APPROVED']);
    expect(r.view.phases.map((p: { controlVersion: string }) => p.controlVersion)).toEqual(['1', '2', '1']);
    expect(r.view.phases.map((p: { diff: unknown }) => p.diff)).toEqual([
      [{ path: 'maxBatchRecords', control: 100, experimental: 50 }],
      [{ path: 'longPollIntervalMs', control: 250, experimental: 100 }],
      [{ path: 'maxRecordsPerAppend', control: 500, experimental: 1 }],
    ]);
    const h = expectHistory(r, [
      'BakeStarted',
      'PhaseBaking:delivery:2',
      'PhaseApproved:delivery:2',
      'PhaseBaking:delivery:3',
      'PhaseApproved:delivery:3',
      'PhaseBaking:limits:2',
      'PhaseApproved:limits:2',
      'BakeEnded',
    ]);
    // The event says the same as the phase: the diff and the control it is against.
    expect(h[3]).toMatchObject({
      controlVersion: '2',
      weightPercent: 10,
      diff: [{ path: 'longPollIntervalMs', control: 250, experimental: 100 }],
    });
    expect(h[4]).toMatchObject({ verdict: 'APPROVED', polls: 3, arms: { experiment: { requests: 9000 } } });
    expect(h[4]!.reason).toBe(r.record.phases[1]!.reason);
    await expectClean({ delivery: '3', limits: '2' });
  });

  it('history on the abort, extension and failure paths', async () => {
    const aborted = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { 'delivery:2': { abortAtPoll: 2 } },
    );
    const h = expectHistory(aborted, ['BakeStarted', 'PhaseBaking:delivery:2', 'AbortRequested', 'PhaseRejected:delivery:2', 'BakeEnded']);
    expect(h[3]!.reason).toMatch(/^Aborted by an operator/);
    expect(h[4]).toMatchObject({ status: 'ABORTED', verdicts: [{ verdict: 'REJECTED' }, { verdict: 'PENDING' }] });

    const thin = await bake([{ profile: 'limits', version: '2' }], { 'limits:2': { experimentPerPeriod: 6 } });
    const t = expectHistory(thin, ['BakeStarted', 'PhaseBaking:limits:2', 'PhaseExtended:limits:2', 'PhaseRejected:limits:2', 'BakeEnded']);
    expect(t[2]).toMatchObject({ polls: 3, arms: { experiment: { requests: 54 } } });
    expect(t[2]!.reason).toMatch(/extended once by 2 polls\. Judge: 54 experiment requests, fewer than the 100 needed/);

    const failed = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { 'limits:2': { failAtPoll: 2 } },
    );
    const f = expectHistory(failed, [
      'BakeStarted',
      'PhaseBaking:delivery:2',
      'PhaseApproved:delivery:2',
      'PhaseBaking:limits:2',
      'PhaseRejected:limits:2',
      'BakeEnded',
    ]);
    expect(f[5]).toMatchObject({ status: 'FAILED' });
    expect(f[5]!.reason).toContain('GetMetricData failed');
    await expectClean({ delivery: '2', limits: '1' });
  });
});

describe('EventBridge events of the bake, run locally', () => {
  /** The retries and catches of the PutEvents tasks (inside the publishing Maps), by state. */
  const eventStates = (r: Run, type: 'StateRetried' | 'StateCaught') =>
    r.events.filter((e) => e.type === type && /Event$/.test(e.state!.name)).map((e) => e.state!.name);

  it('publishes only after tasks that recorded something: a poll that decided nothing costs no PutEvents, and nothing is published twice', async () => {
    let calls = 0;
    const r = await bake([{ profile: 'delivery', version: '2' }], {}, undefined, undefined, () => void calls++);
    expectPublished(r);
    expect(calls).toBe(r.record.history!.length); // one call per transition, none for an empty list
    // The judge ran 3 times; the first two decided nothing (CONTINUE, no transition): skipped to Decided.
    const judged = r.events
      .filter((e) => e.type === 'StateExited' && e.state!.name === 'Judge')
      .map((e) => (e.state!.output as { events: unknown[] }).events.length);
    expect(judged).toEqual([0, 0, 1]);
    const entered = r.events.filter((e) => e.type === 'StateEntered' && e.index === undefined).map((e) => e.state!.name);
    expect(entered.filter((n) => n === 'JudgePublish')).toHaveLength(1);
    // The Waits and the aws-sdk tasks carry the last task's events along; none of them publishes.
    for (const [i, n] of entered.entries()) if (/Publish$/.test(n)) expect(entered[i - 1], n).toBe(n.replace(/Publish$/, 'HasEvents'));
  });

  it('a throttled PutEvents (the call, then its entry) is retried: every transition still published once, in order, and the bake is as it would be', async () => {
    // The first transition (BakeStarted, published after TakeLock): two calls throttled, then its entry fails, then it goes through.
    const r = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '3' },
      ],
      { 'limits:3': { alarm: { name: 'experiment-4xx-vs-control', fromPoll: 2 } } },
      undefined,
      undefined,
      (_e, call) => (call < 2 ? 'throttle' : call === 2 ? 'fail-entry' : undefined),
    );
    expect(eventStates(r, 'StateRetried')).toEqual(Array(EVENT_RETRY.maxAttempts).fill('TakeLockEvent'));
    expect(eventStates(r, 'StateCaught')).toEqual([]);
    expectPublished(r);
    expect(r.status).toBe('SUCCEEDED');
    expect(verdicts(r)).toEqual(['delivery:2=APPROVED', 'limits:3=REJECTED']);
    await expectClean({ delivery: '2', limits: '1' });
  });

  it('a PutEvents EventBridge keeps refusing is given up after its retries and the bake goes on: the same outcome, history and reverts as with every event published', async () => {
    const changes = [
      { profile: 'delivery' as const, version: '2' },
      { profile: 'limits' as const, version: '2' },
    ];
    const scripts = { watch: { alarm: { name: 'slo-5xx-rate', fromPoll: 2 } } };
    const lost = new Set(['PhaseApproved', 'PhaseReverted']);
    const healthy = await bake(changes, scripts, WATCHED);
    await expectClean({ delivery: '1', limits: '1' });
    // Every entry of these types fails, every time (2 approvals, 2 reverts).
    const r = await bake(changes, scripts, WATCHED, undefined, (e) => (lost.has(e.DetailType!) ? 'fail-entry' : undefined));
    const retried = eventStates(r, 'StateRetried');
    expect(retried).toHaveLength(4 * EVENT_RETRY.maxAttempts);
    expect(new Set(retried)).toEqual(new Set(['JudgeEvent', 'RevertEvent']));
    expect(eventStates(r, 'StateCaught')).toEqual(['JudgeEvent', 'JudgeEvent', 'RevertEvent', 'RevertEvent']);
    // What the bake did is what it does when every event goes out.
    const outcome = (x: Run) => ({
      status: x.status,
      bake: x.record.status,
      verdicts: verdicts(x),
      reverts: x.revertWrites,
      history: x.record.history!.map((t) => t.type),
    });
    expect(outcome(r)).toEqual(outcome(healthy));
    expect(r.record.status).toBe('REVERTED');
    // Everything else was published, in order; the history has it all.
    expect(r.busEvents.map((e) => e.detail)).toEqual(r.record.history!.filter((t) => !lost.has(t.type)));
    expect(r.view.history).toEqual(r.record.history);
    await expectClean({ delivery: '1', limits: '1' });
  });

  it('with every PutEvents refused (access denied, not retried), the abort and failure paths still clean up and end as they do', async () => {
    const denied: BusFault = () => 'denied';
    const aborted = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { 'delivery:2': { abortAtPoll: 2 } },
      undefined,
      undefined,
      denied,
    );
    expect(aborted.status).toBe('SUCCEEDED');
    expect(aborted.record.status).toBe('ABORTED');
    expect(aborted.busEvents).toEqual([]);
    expect(eventStates(aborted, 'StateRetried')).toEqual([]);
    expect(eventStates(aborted, 'StateCaught')).toContain('CleanupEvent');
    expect(aborted.record.history!.map((t) => t.type)).toEqual([
      'BakeStarted',
      'PhaseBaking',
      'AbortRequested',
      'PhaseRejected',
      'BakeEnded',
    ]);
    await expectClean({ delivery: '1', limits: '1' });

    const failed = await bake(
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '2' },
      ],
      { 'limits:2': { failAtPoll: 2 } },
      undefined,
      undefined,
      denied,
    );
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toBe('BakeFailed');
    expect(failed.record.status).toBe('FAILED');
    expect(verdicts(failed)).toEqual(['delivery:2=APPROVED', 'limits:2=REJECTED']);
    expect(failed.busEvents).toEqual([]);
    expect(eventStates(failed, 'StateCaught').filter((n) => n === 'CleanupEvent')).toHaveLength(2); // its PhaseRejected and BakeEnded
    await expectClean({ delivery: '2', limits: '1' });
  });
});
