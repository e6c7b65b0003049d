/**
 * The bake's pure decisions: the lock on the rollout state, phase order, and each poll's verdict
 * (given the judge's judgement, hand-made here except in one block); the watch after promotion
 * and its revert, dry-run verdicts, the history, and alarms as DescribeAlarms reports them.
 */
import { describe, expect, it } from 'vitest';
import {
  alarmNumbers,
  alarmSnapshotOf,
  approve,
  BAKE_DEFAULTS,
  BakeStateError,
  datapointsOf,
  decideWatchPoll,
  FINAL_BAKE_SECONDS,
  historyBound,
  promotedPhases,
  recordTransitions,
  revertPhase,
  shouldWatch,
  TRANSITION_REASON_CHARS,
  totalsOf,
  transitionOf,
  verdictOf,
  verdictsOf,
  watchBudgetSeconds,
  watchPolls,
  clearExperiment,
  currentPhase,
  decidePoll,
  holdsLock,
  judgeSettingsOf,
  newBake,
  phaseBudgetSeconds,
  pollBudget,
  releaseLock,
  startExperiment,
  takeLock,
  type AlarmSnapshot,
  type BakeSettings,
  type Phase,
  type PollDecision,
  type RolloutItem,
} from '../../lambdas/domain/bake';
import {
  contentOf,
  INITIAL_ROLLOUT,
  missingContents,
  namedVersions,
  withContents,
  type Experiment,
  type RolloutState,
} from '../../lambdas/domain/config';
import { prng } from './model';
import { judge, type ArmSeries, type Judgement, type JudgeDecision } from '../../lambdas/domain/judge';

const T0 = 1_700_000_000_000;
const LOCK_MS = 60_000;

const fresh = (): RolloutItem => ({ state: { control: { delivery: '1', limits: '1' } }, rev: 4 });
/** A version's content as the bake copies it (JSON text). */
const CONTENT = '{"maxRecordsPerAppend":1}';
const exp = (bakeId: string, over: Partial<Experiment> = {}): Experiment => ({
  profile: 'limits',
  version: '2',
  weightPercent: 10,
  bakeId,
  expiresAtMs: T0 + LOCK_MS,
  ...over,
});

/** Runs `fn`, expecting a BakeStateError; returns it. */
function bakeErrorOf(fn: () => unknown): BakeStateError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BakeStateError);
    return e as BakeStateError;
  }
  throw new Error('expected a BakeStateError, nothing was thrown');
}

describe('the rollout lock', () => {
  it('refuses a second bake with BakeInProgress while the lock is live, naming the holder', () => {
    const held = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    expect(holdsLock(held, 'b1')).toBe(true);
    for (const at of [T0, T0 + 1, T0 + LOCK_MS - 1]) {
      const err = bakeErrorOf(() => takeLock(held, 'b2', at, at + LOCK_MS));
      expect(err.code).toBe('BakeInProgress');
      expect(err.message).toContain('b1');
    }
  });

  it('lets the holder take it again (renewing it)', () => {
    const held = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    const again = takeLock(held, 'b1', T0 + 10, T0 + 2 * LOCK_MS);
    expect(again.lock).toEqual({ bakeId: 'b1', expiresAtMs: T0 + 2 * LOCK_MS, takenAtMs: T0 }); // renewed, still taken at T0
  });

  it("lets another bake take it once it expired, and clears the dead bake's experiment", () => {
    let item = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1'), CONTENT);
    expect(item.state.experiment?.bakeId).toBe('b1');
    const taken = takeLock(item, 'b2', T0 + LOCK_MS, T0 + 3 * LOCK_MS);
    expect(taken.lock).toEqual({ bakeId: 'b2', expiresAtMs: T0 + 3 * LOCK_MS, takenAtMs: T0 + LOCK_MS });
    expect(taken.state.experiment).toBeUndefined();
    expect(taken.state.control).toEqual(item.state.control);
    expect(holdsLock(taken, 'b1')).toBe(false);
    // The dead bake cannot act any more.
    expect(bakeErrorOf(() => startExperiment(taken, exp('b1'), CONTENT)).code).toBe('LockLost');
    expect(bakeErrorOf(() => approve(taken, 'b1', 'limits', '2')).code).toBe('LockLost');
  });

  it('does not release for a non-holder', () => {
    let item = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1'), CONTENT);
    const after = releaseLock(item, 'b2');
    expect(after.lock).toEqual({ bakeId: 'b1', expiresAtMs: T0 + LOCK_MS, takenAtMs: T0 });
    expect(after.state.experiment?.bakeId).toBe('b1');
    expect(bakeErrorOf(() => takeLock(after, 'b3', T0 + 1, T0 + LOCK_MS)).code).toBe('BakeInProgress');
  });

  it('releases for the holder, clearing its experiment', () => {
    let item = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1'), CONTENT);
    const after = releaseLock(item, 'b1');
    expect(after.lock).toBeUndefined();
    expect(after.state.experiment).toBeUndefined();
    expect(takeLock(after, 'b2', T0 + 1, T0 + LOCK_MS).lock?.bakeId).toBe('b2');
  });

  it('refuses startExperiment and approve without the lock with LockLost', () => {
    const none = fresh();
    expect(bakeErrorOf(() => startExperiment(none, exp('b1'), CONTENT)).code).toBe('LockLost');
    expect(bakeErrorOf(() => approve(none, 'b1', 'limits', '2')).code).toBe('LockLost');
    const other = takeLock(fresh(), 'b2', T0, T0 + LOCK_MS);
    expect(bakeErrorOf(() => startExperiment(other, exp('b1'), CONTENT)).code).toBe('LockLost');
    expect(bakeErrorOf(() => approve(other, 'b1', 'limits', '2')).code).toBe('LockLost');
    // Nothing was changed by the refused calls.
    expect(other.state).toEqual(fresh().state);
  });

  it("approve sets that profile's control and clears only that bake's experiment", () => {
    let item = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1', { profile: 'limits', version: '2' }), CONTENT);
    const approved = approve(item, 'b1', 'limits', '2');
    expect(approved.state.control).toEqual({ delivery: '1', limits: '2' });
    expect(approved.state.experiment).toBeUndefined();
    expect(approved.lock).toEqual(item.lock);

    // An experiment that is not this bake's (left by another, however it got there) stays.
    const foreign: RolloutItem = { ...item, state: { ...item.state, experiment: exp('b0', { profile: 'delivery', version: '5' }) } };
    const kept = approve(foreign, 'b1', 'delivery', '3', '{"maxBatchRecords":3}');
    expect(kept.state.control).toEqual({ delivery: '3', limits: '1' });
    expect(kept.state.experiment).toEqual(exp('b0', { profile: 'delivery', version: '5' }));
  });

  it('clearExperiment removes only the named bake’s experiment', () => {
    const state = { control: { delivery: '1', limits: '1' }, experiment: exp('b1') };
    expect(clearExperiment(state, 'b2')).toEqual(state);
    expect(clearExperiment(state, 'b1')).toEqual({ control: state.control });
    expect('experiment' in clearExperiment(state, 'b1')).toBe(false);
  });
});

describe('version contents in the rollout state', () => {
  const initial = (): RolloutItem => ({ state: structuredClone(INITIAL_ROLLOUT), rev: 0 });
  const V2 = '{"maxRecordsPerAppend":2}';

  /** The invariant hosts rely on: the state holds the content of exactly the versions it names. */
  const expectExactContents = (state: RolloutState) => {
    expect(missingContents(state)).toEqual([]);
    const held = Object.entries(state.contents ?? {}).flatMap(([p, byVersion]) => Object.keys(byVersion ?? {}).map((v) => `${p}:${v}`));
    expect(held.sort()).toEqual([...new Set(namedVersions(state).map((n) => `${n.profile}:${n.version}`))].sort());
  };

  it("the initial state holds the initial versions' contents: the defaults the stack stores as version 1", () => {
    expectExactContents(INITIAL_ROLLOUT);
    expect(JSON.parse(contentOf(INITIAL_ROLLOUT, 'limits', '1')!)).toEqual({
      maxRecordsPerAppend: 500,
      maxRecordBytes: 262144,
      maxRequestBytes: 1048576,
      defaultAckTimeoutSeconds: 30,
    });
    expect(JSON.parse(contentOf(INITIAL_ROLLOUT, 'delivery', '1')!)).toEqual({
      maxBatchRecords: 100,
      maxBatchBytes: 1048576,
      longPollIntervalMs: 250,
    });
  });

  it("start puts the content beside the experiment; approve keeps it as control and drops the old control's", () => {
    let item = takeLock(initial(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1', { profile: 'limits', version: '2' }), V2);
    expect(contentOf(item.state, 'limits', '2')).toBe(V2);
    expect(contentOf(item.state, 'limits', '1')).toBe(contentOf(INITIAL_ROLLOUT, 'limits', '1'));
    expectExactContents(item.state);
    const approved = approve(item, 'b1', 'limits', '2', V2);
    expect(approved.state.control.limits).toBe('2');
    expect(contentOf(approved.state, 'limits', '2')).toBe(V2);
    expect(contentOf(approved.state, 'limits', '1')).toBeUndefined();
    expectExactContents(approved.state);
  });

  it('approve without a content takes the one start put in the state; with neither it refuses (NoContent) and changes nothing', () => {
    let item = takeLock(initial(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1', { profile: 'limits', version: '2' }), V2);
    expect(contentOf(approve(item, 'b1', 'limits', '2').state, 'limits', '2')).toBe(V2);
    const cleared = { ...item, state: clearExperiment(item.state, 'b1') };
    const before = structuredClone(cleared);
    expect(bakeErrorOf(() => approve(cleared, 'b1', 'limits', '2')).code).toBe('NoContent');
    expect(cleared).toEqual(before);
  });

  it("clearing, releasing and a new lock holder drop the experiment's content, unless control serves that version", () => {
    let item = takeLock(initial(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1', { profile: 'limits', version: '2' }), V2);
    for (const after of [
      clearExperiment(item.state, 'b1'),
      releaseLock(item, 'b1').state,
      takeLock(item, 'b2', T0 + LOCK_MS, T0 + 2 * LOCK_MS).state,
    ]) {
      expect(contentOf(after, 'limits', '2')).toBeUndefined();
      expectExactContents(after);
    }
    // An experiment of the control version itself: clearing it keeps the control's content.
    let same = takeLock(initial(), 'b1', T0, T0 + LOCK_MS);
    same = startExperiment(same, exp('b1', { profile: 'limits', version: '1' }), contentOf(INITIAL_ROLLOUT, 'limits', '1')!);
    expectExactContents(clearExperiment(same.state, 'b1'));
  });

  it('over random sequences of bake transitions, the state always holds exactly the contents of the versions it names', () => {
    const rnd = prng(20261206);
    const contentFor = (p: string, v: string) => JSON.stringify({ note: `${p} ${v}` });
    for (let run = 0; run < 200; run++) {
      let item = initial();
      let t = T0;
      for (let step = 0; step < 30; step++) {
        t += rnd.int(0, LOCK_MS);
        const bakeId = rnd.pick(['b1', 'b2', 'b3']);
        const profile = rnd.pick(['delivery', 'limits'] as const);
        const version = String(rnd.int(1, 4));
        try {
          switch (rnd.int(0, 4)) {
            case 0:
              item = takeLock(item, bakeId, t, t + LOCK_MS);
              break;
            case 1:
              item = startExperiment(item, exp(bakeId, { profile, version, expiresAtMs: t + LOCK_MS }), contentFor(profile, version));
              break;
            case 2: {
              const e = item.state.experiment;
              item = e ? approve(item, e.bakeId, e.profile, e.version, rnd.int(0, 1) ? contentFor(e.profile, e.version) : undefined) : item;
              break;
            }
            case 3:
              item = { ...item, state: clearExperiment(item.state, bakeId) };
              break;
            case 4:
              item = releaseLock(item, bakeId);
              break;
          }
        } catch (e) {
          if (!(e instanceof BakeStateError)) throw e;
        }
        expectExactContents(item.state);
        // Each version's content is the one copied for it, never another's.
        for (const n of namedVersions(item.state)) {
          if (n.version !== '1') expect(contentOf(item.state, n.profile, n.version)).toBe(contentFor(n.profile, n.version));
        }
      }
    }
  });

  it('a state from before contents were kept stays without until they are added, and says which it lacks', () => {
    const legacy: RolloutState = { control: { delivery: '3', limits: '1' } };
    expect(missingContents(legacy)).toEqual([
      { profile: 'delivery', version: '3' },
      { profile: 'limits', version: '1' },
    ]);
    expect(withContents(legacy)).toBe(legacy);
    const filled = withContents(withContents(legacy, { profile: 'delivery', version: '3', content: '{}' }), {
      profile: 'limits',
      version: '1',
      content: '{}',
    });
    expectExactContents(filled);
  });
});

describe('currentPhase', () => {
  const S: BakeSettings = { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 200 };

  it('walks the phases in the order given', () => {
    const b = newBake(
      'b1',
      [
        { profile: 'limits', version: '2' },
        { profile: 'delivery', version: '4' },
        { profile: 'limits', version: '3' },
      ],
      S,
      T0,
    );
    expect(b.phases.map((p) => [p.profile, p.version, p.verdict, p.polls])).toEqual([
      ['limits', '2', 'PENDING', 0],
      ['delivery', '4', 'PENDING', 0],
      ['limits', '3', 'PENDING', 0],
    ]);
    expect(b).toMatchObject({ status: 'RUNNING', abortRequested: false, rev: 0, createdAtMs: T0 });
    expect(currentPhase(b)).toBe(0);
    b.phases[0]!.verdict = 'BAKING';
    expect(currentPhase(b)).toBe(0);
    b.phases[0]!.verdict = 'APPROVED';
    expect(currentPhase(b)).toBe(1);
    b.phases[1]!.verdict = 'BAKING';
    expect(currentPhase(b)).toBe(1);
    b.phases[1]!.verdict = 'REJECTED';
    expect(currentPhase(b)).toBe(2);
    b.phases[2]!.verdict = 'APPROVED';
    expect(currentPhase(b)).toBe(-1);
  });

  it('prefers the phase being baked over an earlier pending one', () => {
    const b = newBake(
      'b1',
      [
        { profile: 'limits', version: '2' },
        { profile: 'delivery', version: '4' },
      ],
      S,
      T0,
    );
    b.phases[1]!.verdict = 'BAKING';
    expect(currentPhase(b)).toBe(1);
  });
});

describe('pollBudget and phaseBudgetSeconds', () => {
  it('runs bakeSeconds / pollSeconds polls, and half that again as the extension', () => {
    const s = (bakeSeconds: number, pollSeconds: number): BakeSettings => ({
      weightPercent: 10,
      bakeSeconds,
      pollSeconds,
      minExperimentRequests: 1,
    });
    expect(pollBudget(s(600, 30))).toEqual({ polls: 20, extension: 10 });
    expect(pollBudget(s(610, 30))).toEqual({ polls: 21, extension: 11 });
    expect(pollBudget(s(10, 30))).toEqual({ polls: 1, extension: 1 });
  });

  it('gives a phase time for pick-up and every poll of the budget and the extension', () => {
    for (const bakeSeconds of [1, 10, 59, 60, 61, 300, 600, 601, 3600]) {
      for (const pollSeconds of [1, 5, 30, 31, 60, 120]) {
        const s: BakeSettings = { weightPercent: 10, bakeSeconds, pollSeconds, minExperimentRequests: 1 };
        const { polls, extension } = pollBudget(s);
        const needed = 20 + (polls + extension) * pollSeconds;
        expect({ bakeSeconds, pollSeconds, fits: phaseBudgetSeconds(s, 20) >= needed }).toEqual({ bakeSeconds, pollSeconds, fits: true });
      }
    }
  });
});

describe('decidePoll', () => {
  const S: BakeSettings = { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 200 };
  const BUDGET = 20;
  const EXTENSION = 10;
  const OK: AlarmSnapshot[] = [
    { name: 'ExperimentErrorRate', state: 'OK' },
    { name: 'ExperimentLatency', state: 'OK' },
  ];
  const DECISIONS: JudgeDecision[] = ['REJECT', 'APPROVE', 'CONTINUE'];
  /** A hand-made judgement; its reason is unique so the tests can see it is passed on. */
  const judged = (decision: JudgeDecision, experimentRequests = 1000): Judgement => ({
    decision,
    reason: `Judge: stub ${decision} with ${experimentRequests} experiment requests.`,
    experimentRequests,
    controlRequests: 9 * experimentRequests,
  });
  const phase = (polls: number): Phase => ({ profile: 'limits', version: '2', verdict: 'BAKING', polls });
  const decide = (polls: number, over: { alarms?: AlarmSnapshot[]; judgement?: Judgement; abortRequested?: boolean } = {}): PollDecision =>
    decidePoll({
      phase: phase(polls),
      settings: S,
      alarms: over.alarms ?? OK,
      judgement: over.judgement ?? judged('CONTINUE'),
      abortRequested: over.abortRequested ?? false,
    });
  const reasonOf = (d: PollDecision): string => {
    expect(d).toHaveProperty('reason');
    return (d as { reason: string }).reason;
  };

  it('the budget used below is the one pollBudget gives', () => {
    expect(pollBudget(S)).toEqual({ polls: BUDGET, extension: EXTENSION });
  });

  it('ABORT wins over everything', () => {
    const firing: AlarmSnapshot[] = [{ name: 'ExperimentErrorRate', state: 'ALARM' }];
    for (const polls of [1, BUDGET - 1, BUDGET, BUDGET + 1, BUDGET + EXTENSION, BUDGET + EXTENSION + 5]) {
      for (const decision of DECISIONS) {
        for (const experimentRequests of [0, 1000]) {
          for (const alarms of [OK, firing]) {
            expect(decide(polls, { alarms, judgement: judged(decision, experimentRequests), abortRequested: true })).toEqual({
              action: 'ABORT',
            });
          }
        }
      }
    }
  });

  it("rejects at once on any alarm in ALARM, naming it, with the judge's reason, whatever the judge says", () => {
    const alarms: AlarmSnapshot[] = [
      { name: 'ExperimentErrorRate', state: 'OK' },
      { name: 'ExperimentLatency', state: 'ALARM', reason: 'p99 over 200 ms' },
      { name: 'ControlErrorRate', state: 'INSUFFICIENT_DATA' },
    ];
    for (const polls of [1, 5, BUDGET, BUDGET + 3, BUDGET + EXTENSION]) {
      for (const decision of DECISIONS) {
        const judgement = judged(decision);
        const d = decide(polls, { alarms, judgement });
        expect(d.action).toBe('REJECT');
        const reason = reasonOf(d);
        expect(reason.startsWith(`Alarm ExperimentLatency in ALARM at poll ${polls}.`)).toBe(true);
        expect(reason).toContain(judgement.reason);
        expect(reason).not.toContain('ExperimentErrorRate');
        expect(reason).not.toContain('ControlErrorRate');
      }
    }
  });

  it('names every alarm in ALARM', () => {
    const d = decide(2, {
      alarms: [
        { name: 'A1', state: 'ALARM' },
        { name: 'A2', state: 'ALARM' },
      ],
      judgement: judged('APPROVE'),
    });
    expect(d.action).toBe('REJECT');
    expect(reasonOf(d).startsWith('Alarm A1, A2 in ALARM at poll 2.')).toBe(true);
  });

  it("rejects at once on the judge's REJECT, even before the budget, with the judge's reason", () => {
    for (let polls = 1; polls <= BUDGET + EXTENSION + 1; polls++) {
      const judgement = judged('REJECT');
      const d = decide(polls, { judgement });
      expect({ polls, action: d.action }).toEqual({ polls, action: 'REJECT' });
      expect(reasonOf(d)).toContain(judgement.reason);
      expect(reasonOf(d)).toContain(`poll ${polls}`);
    }
  });

  it('continues until the poll budget, even when the judge would approve', () => {
    for (let polls = 1; polls < BUDGET; polls++) {
      for (const decision of ['APPROVE', 'CONTINUE'] as const) {
        expect({ polls, decision, d: decide(polls, { judgement: judged(decision, 5000) }) }).toEqual({
          polls,
          decision,
          d: { action: 'CONTINUE', extended: false },
        });
      }
    }
  });

  it("approves at the budget on the judge's APPROVE with the minimum experiment requests", () => {
    const judgement = judged('APPROVE', 200);
    const d = decide(BUDGET, { judgement });
    expect(d.action).toBe('APPROVE');
    expect(reasonOf(d)).toContain(`No alarm in ${BUDGET} polls (${BUDGET * 30} s).`);
    expect(reasonOf(d)).toContain(judgement.reason);
    // INSUFFICIENT_DATA alarms do not stop an approval the judge backs.
    expect(decide(BUDGET, { judgement, alarms: OK.map((a) => ({ ...a, state: 'INSUFFICIENT_DATA' as const })) }).action).toBe('APPROVE');
  });

  it("does not approve at the budget without the judge's APPROVE, or with too few experiment requests", () => {
    expect(decide(BUDGET, { judgement: judged('CONTINUE', 100000) })).toEqual({ action: 'CONTINUE', extended: true });
    // Even an APPROVE from a judge run with a lower minimum than the bake's.
    expect(decide(BUDGET, { judgement: judged('APPROVE', 199) })).toEqual({ action: 'CONTINUE', extended: true });
  });

  it('extends once, then rejects as Inconclusive at budget + extension', () => {
    for (let polls = BUDGET; polls < BUDGET + EXTENSION; polls++) {
      expect({ polls, d: decide(polls, { judgement: judged('CONTINUE', 150) }) }).toEqual({
        polls,
        d: { action: 'CONTINUE', extended: true },
      });
    }
    for (const polls of [BUDGET + EXTENSION, BUDGET + EXTENSION + 1]) {
      for (const judgement of [judged('CONTINUE', 150), judged('CONTINUE', 100000), judged('APPROVE', 199)]) {
        const d = decide(polls, { judgement });
        expect(d.action).toBe('REJECT');
        expect(reasonOf(d).startsWith(`Inconclusive after ${polls} polls`)).toBe(true);
        expect(reasonOf(d)).toContain('200 experiment requests');
        expect(reasonOf(d)).toContain(judgement.reason);
      }
    }
  });

  it('approves during the extension once the judge approves', () => {
    expect(decide(BUDGET + 3, { judgement: judged('APPROVE', 250) }).action).toBe('APPROVE');
    expect(decide(BUDGET + EXTENSION - 1, { judgement: judged('APPROVE', 250) }).action).toBe('APPROVE');
  });

  it('never takes INSUFFICIENT_DATA as healthy evidence: approval still needs the judge', () => {
    const noData: AlarmSnapshot[] = OK.map((a) => ({ ...a, state: 'INSUFFICIENT_DATA' }));
    const seen: PollDecision['action'][] = [];
    for (let polls = 1; polls <= BUDGET + EXTENSION; polls++) {
      for (const experimentRequests of [0, 199, 5000]) {
        const d = decide(polls, { alarms: noData, judgement: judged('CONTINUE', experimentRequests) });
        seen.push(d.action);
        expect(d.action).not.toBe('APPROVE');
      }
    }
    expect(seen.at(-1)).toBe('REJECT');
    // With no alarms reported at all, the same.
    expect(decidePoll({ phase: phase(BUDGET), settings: S, alarms: [], judgement: judged('CONTINUE', 0), abortRequested: false })).toEqual({
      action: 'CONTINUE',
      extended: true,
    });
  });

  describe('with the real judge', () => {
    const series = (periods: number, experiment5xxPerPeriod: number): ArmSeries => ({
      control: Array.from({ length: periods }, (_, i) => ({ requests: 1800, errors5xx: 18, p99Ms: 100 + (i % 3) })),
      experiment: Array.from({ length: periods }, (_, i) => ({
        requests: 200,
        errors5xx: experiment5xxPerPeriod,
        p99Ms: 100 + ((i + 1) % 3),
      })),
    });

    it('approves healthy traffic at the budget, and rejects a 5xx regression at the first poll', () => {
      const healthy = judge(series(100, 2), judgeSettingsOf(S));
      expect(healthy.decision).toBe('APPROVE');
      expect(decide(BUDGET - 1, { judgement: healthy })).toEqual({ action: 'CONTINUE', extended: false });
      const approved = decide(BUDGET, { judgement: healthy });
      expect(approved.action).toBe('APPROVE');
      expect(reasonOf(approved)).toContain('5xx 1.00% (200/20000) vs control 1.00% (1800/180000)');

      const broken = judge(series(5, 40), judgeSettingsOf(S));
      const d = decide(1, { judgement: broken });
      expect(d.action).toBe('REJECT');
      expect(reasonOf(d)).toMatch(/^Judge: the experiment's 5xx rate is higher than control's: 5xx 20\.00% \(200\/1000\)/);
    });

    it('does not approve thin traffic at the budget: it extends, then is inconclusive', () => {
      const thin = judge(
        { control: [{ requests: 1000, errors5xx: 0, p99Ms: 100 }], experiment: [{ requests: 50, errors5xx: 0, p99Ms: 100 }] },
        judgeSettingsOf(S),
      );
      expect(thin.decision).toBe('CONTINUE');
      expect(decide(BUDGET, { judgement: thin })).toEqual({ action: 'CONTINUE', extended: true });
      const d = decide(BUDGET + EXTENSION, { judgement: thin });
      expect(reasonOf(d)).toMatch(/^Inconclusive after 30 polls/);
      expect(reasonOf(d)).toContain('50 experiment requests, fewer than the 200 needed');
    });
  });
});

// ---- The watch after promotion, dry runs and history --------------------------------------------

describe('revertPhase', () => {
  /** A phase that promoted limits 2 over control 1, and the item after its approval (the lock still held). */
  const promoted = (): { item: RolloutItem; phase: Phase } => {
    let item = takeLock({ state: withContents(INITIAL_ROLLOUT), rev: 1 }, 'b1', T0, T0 + LOCK_MS);
    item = approve(startExperiment(item, exp('b1'), CONTENT), 'b1', 'limits', '2', CONTENT);
    const phase: Phase = {
      profile: 'limits',
      version: '2',
      content: CONTENT,
      verdict: 'APPROVED',
      polls: 3,
      controlVersion: '1',
      controlContent: contentOf(INITIAL_ROLLOUT, 'limits', '1')!,
    };
    return { item, phase };
  };

  it('puts the control the phase was tested against back, with its content, and keeps only the named contents', () => {
    const { item, phase } = promoted();
    expect(item.state.control.limits).toBe('2');
    const r = revertPhase(item, 'b1', phase);
    expect(r.outcome).toBe('REVERTED');
    expect(r.item.state.control).toEqual({ delivery: '1', limits: '1' });
    expect(contentOf(r.item.state, 'limits', '1')).toBe(contentOf(INITIAL_ROLLOUT, 'limits', '1'));
    expect(missingContents(r.item.state)).toEqual([]);
    expect(contentOf(r.item.state, 'limits', '2')).toBeUndefined();
    expect(r.item.lock).toEqual(item.lock);
  });

  it('never takes back a version that is no longer the one this bake promoted (a later promotion stays): SUPERSEDED, item unchanged', () => {
    const { item, phase } = promoted();
    const later = {
      ...item,
      state: withContents(
        { ...item.state, control: { ...item.state.control, limits: '3' } },
        { profile: 'limits', version: '3', content: '{}' },
      ),
    };
    const r = revertPhase(later, 'b1', phase);
    expect(r.outcome).toBe('SUPERSEDED');
    expect(r.item).toBe(later);
  });

  it('finds an already reverted control (a retry after a lost record update) ALREADY_REVERTED, item unchanged', () => {
    const { item, phase } = promoted();
    const once = revertPhase(item, 'b1', phase).item;
    const again = revertPhase(once, 'b1', phase);
    expect(again.outcome).toBe('ALREADY_REVERTED');
    expect(again.item).toBe(once);
  });

  it('does not revert without a copy of the control content (NO_CONTROL), and refuses without the lock (LockLost)', () => {
    const { item, phase } = promoted();
    const { controlContent: _c, ...bare } = phase;
    const r = revertPhase(item, 'b1', bare);
    expect(r.outcome).toBe('NO_CONTROL');
    expect(r.item).toBe(item);
    expect(bakeErrorOf(() => revertPhase(item, 'b2', phase)).code).toBe('LockLost');
    expect(bakeErrorOf(() => revertPhase(releaseLock(item, 'b1'), 'b1', phase)).code).toBe('LockLost');
  });

  it('two phases of one profile unwind in reverse order, each to the control it was tested against', () => {
    let item = takeLock({ state: withContents(INITIAL_ROLLOUT), rev: 1 }, 'b1', T0, T0 + LOCK_MS);
    item = approve(item, 'b1', 'limits', '2', '{"maxRecordsPerAppend":1}');
    item = approve(item, 'b1', 'limits', '3', '{"maxRecordsPerAppend":2}');
    const p2: Phase = {
      profile: 'limits',
      version: '2',
      verdict: 'APPROVED',
      polls: 1,
      controlVersion: '1',
      controlContent: contentOf(INITIAL_ROLLOUT, 'limits', '1')!,
    };
    const p3: Phase = {
      profile: 'limits',
      version: '3',
      verdict: 'APPROVED',
      polls: 1,
      controlVersion: '2',
      controlContent: '{"maxRecordsPerAppend":1}',
    };
    const a = revertPhase(item, 'b1', p3);
    expect([a.outcome, a.item.state.control.limits, contentOf(a.item.state, 'limits', '2')]).toEqual([
      'REVERTED',
      '2',
      '{"maxRecordsPerAppend":1}',
    ]);
    const b = revertPhase(a.item, 'b1', p2);
    expect([b.outcome, b.item.state.control.limits]).toEqual(['REVERTED', '1']);
    // In the wrong order the earlier phase finds a control it did not promote and leaves it.
    expect(revertPhase(item, 'b1', p2).outcome).toBe('SUPERSEDED');
  });
});

describe('decideWatchPoll', () => {
  const S: BakeSettings = { weightPercent: 10, bakeSeconds: 60, pollSeconds: 10, minExperimentRequests: 1, finalBakeSeconds: 60 };
  const ok = (name: string): AlarmSnapshot => ({ name, state: 'OK', threshold: 2 });
  const firing: AlarmSnapshot = {
    name: 'L-bake-slo-5xx-rate',
    state: 'ALARM',
    threshold: 2,
    datapoints: [7.5, 3.25, 0],
    reason: 'Threshold Crossed: 3 out of the last 6 datapoints',
  };

  it('runs finalBakeSeconds / pollSeconds polls, then passes', () => {
    expect(watchPolls(S)).toBe(6);
    expect(watchPolls({ ...S, finalBakeSeconds: 65 })).toBe(7);
    for (let polls = 1; polls < 6; polls++)
      expect(decideWatchPoll({ polls, settings: S, alarms: [ok('a'), ok('b')], abortRequested: false })).toEqual({ action: 'CONTINUE' });
    expect(decideWatchPoll({ polls: 6, settings: S, alarms: [ok('a'), ok('b')], abortRequested: false })).toEqual({ action: 'PASS' });
  });

  it('fires on an alarm in ALARM at any poll, naming it with its datapoints and threshold', () => {
    const d = decideWatchPoll({ polls: 2, settings: S, alarms: [ok('L-bake-slo-p99-latency'), firing], abortRequested: false });
    expect(d).toMatchObject({ action: 'FIRE', alarm: firing });
    expect(d.action === 'FIRE' && d.reason).toBe(
      'The watch after promotion saw alarm L-bake-slo-5xx-rate in ALARM at its poll 2 of 6: datapoints [7.5, 3.25, 0] (newest first) against its threshold 2. CloudWatch: Threshold Crossed: 3 out of the last 6 datapoints',
    );
    const two = decideWatchPoll({
      polls: 6,
      settings: S,
      alarms: [firing, { ...firing, name: 'L-bake-slo-p99-latency' }],
      abortRequested: false,
    });
    expect(two.action === 'FIRE' && two.reason).toContain('(also in ALARM: L-bake-slo-p99-latency)');
  });

  it('an abort wins over a firing alarm: the watch ends without reverting', () => {
    expect(decideWatchPoll({ polls: 2, settings: S, alarms: [firing], abortRequested: true })).toEqual({ action: 'ABORT' });
  });

  it('INSUFFICIENT_DATA is not a firing', () => {
    expect(decideWatchPoll({ polls: 6, settings: S, alarms: [{ name: 'a', state: 'INSUFFICIENT_DATA' }], abortRequested: false })).toEqual({
      action: 'PASS',
    });
  });
});

describe('shouldWatch and the watch budget', () => {
  const S: BakeSettings = { weightPercent: 10, bakeSeconds: 60, pollSeconds: 10, minExperimentRequests: 1, finalBakeSeconds: 120 };
  const approvedBake = (s: BakeSettings, verdicts: Phase['verdict'][]) => {
    const b = newBake(
      'b1',
      verdicts.map((_v, i) => ({ profile: 'limits' as const, version: String(i + 2) })),
      s,
      T0,
    );
    return { ...b, phases: b.phases.map((p, i) => ({ ...p, verdict: verdicts[i]! })) };
  };

  it('watches only with finalBakeSeconds, something promoted, not a dry run, not aborted', () => {
    expect(shouldWatch(approvedBake(S, ['REJECTED', 'APPROVED']))).toBe(true);
    expect(promotedPhases(approvedBake(S, ['APPROVED', 'REJECTED', 'APPROVED']))).toEqual([0, 2]);
    expect(shouldWatch(approvedBake(S, ['REJECTED', 'REJECTED']))).toBe(false);
    expect(shouldWatch(approvedBake({ ...S, finalBakeSeconds: 0 }, ['APPROVED']))).toBe(false);
    expect(shouldWatch(approvedBake({ ...BAKE_DEFAULTS }, ['APPROVED']))).toBe(false);
    expect(shouldWatch(approvedBake({ ...S, dryRun: true }, ['WOULD_APPROVE']))).toBe(false);
    expect(shouldWatch({ ...approvedBake(S, ['APPROVED']), abortRequested: true })).toBe(false);
  });

  it('gives the watch its settling, every poll and slack; nothing without one', () => {
    expect(watchBudgetSeconds(S, 72)).toBe(72 + 120 + 20 + 60);
    expect(watchBudgetSeconds({ ...S, finalBakeSeconds: 0 }, 72)).toBe(0);
    expect(watchBudgetSeconds({ ...S, dryRun: true }, 72)).toBe(0);
    expect(FINAL_BAKE_SECONDS).toEqual({ min: 60, max: 3600 });
  });
});

describe('history', () => {
  it('a new bake opens with BakeStarted and its settings', () => {
    const b = newBake('b1', [{ profile: 'limits', version: '2', content: CONTENT }], { ...BAKE_DEFAULTS, dryRun: true }, T0);
    expect(b.history).toEqual([
      {
        type: 'BakeStarted',
        seq: 0,
        at: new Date(T0).toISOString(),
        bakeId: 'b1',
        changes: [{ profile: 'limits', version: '2' }],
        weightPercent: 10,
        bakeSeconds: 600,
        pollSeconds: 30,
        finalBakeSeconds: 0,
        dryRun: true,
      },
    ]);
  });

  it('appends in order, numbering on, and clips a long reason; nothing to record is the same record', () => {
    const b = newBake('b1', [{ profile: 'limits', version: '2' }], BAKE_DEFAULTS, T0);
    expect(recordTransitions(b, [])).toBe(b);
    const long = 'x'.repeat(5000);
    const next = recordTransitions(b, [
      { type: 'PhaseBaking', atMs: T0 + 1, phase: 0, profile: 'limits', version: '2' },
      { type: 'PhaseRejected', atMs: T0 + 2, phase: 0, profile: 'limits', version: '2', verdict: 'REJECTED', reason: long },
    ]);
    expect(next.history!.map((t) => [t.seq, t.type, t.at])).toEqual([
      [0, 'BakeStarted', new Date(T0).toISOString()],
      [1, 'PhaseBaking', new Date(T0 + 1).toISOString()],
      [2, 'PhaseRejected', new Date(T0 + 2).toISOString()],
    ]);
    expect(next.history![2]!.reason).toHaveLength(TRANSITION_REASON_CHARS);
    expect(b.history).toHaveLength(1); // the record passed in is not changed
    expect(historyBound(10)).toBe(45);
  });

  it('a dry run records what it would have decided', () => {
    expect([verdictOf('APPROVE', false), verdictOf('REJECT', false), verdictOf('APPROVE', true), verdictOf('REJECT', true)]).toEqual([
      'APPROVED',
      'REJECTED',
      'WOULD_APPROVE',
      'WOULD_REJECT',
    ]);
    expect(['APPROVED', 'REJECTED', 'WOULD_APPROVE', 'WOULD_REJECT'].map((v) => transitionOf(v as never))).toEqual([
      'PhaseApproved',
      'PhaseRejected',
      'PhaseWouldApprove',
      'PhaseWouldReject',
    ]);
  });
});

describe('alarms as DescribeAlarms reports them', () => {
  it('reads the threshold, and in ALARM the datapoints of the last evaluation, newest first', () => {
    const aws = {
      AlarmName: 'a',
      StateValue: 'ALARM',
      StateReason: 'r',
      Threshold: 2,
      StateReasonData: JSON.stringify({ recentDatapoints: [1, 2.5, 7], threshold: 2 }),
    };
    expect(alarmSnapshotOf(aws)).toEqual({ name: 'a', state: 'ALARM', reason: 'r', threshold: 2, datapoints: [7, 2.5, 1] });
    const evaluated = {
      ...aws,
      StateReasonData: JSON.stringify({
        evaluatedDatapoints: [
          { timestamp: 't2', value: 9 },
          { timestamp: 't1', value: 3 },
        ],
        recentDatapoints: [3, 9],
      }),
    };
    expect(alarmSnapshotOf(evaluated).datapoints).toEqual([9, 3]);
    expect(datapointsOf('not json')).toEqual([]);
    expect(datapointsOf(undefined)).toEqual([]);
    expect(alarmSnapshotOf({ ...aws, StateValue: 'OK' })).toEqual({ name: 'a', state: 'OK', reason: 'r', threshold: 2 });
    expect(alarmSnapshotOf({ StateValue: 'weird' })).toEqual({ name: '?', state: 'INSUFFICIENT_DATA' });
    expect(alarmNumbers({ name: 'a', state: 'ALARM' })).toBe('no datapoints reported');
  });
});

describe('mutation survivors: lock renewal, clearing without an experiment, the bake defaults', () => {
  it("a bake renewing its own lock keeps its live experiment and that version's content", () => {
    const initial = (): RolloutItem => ({ state: structuredClone(INITIAL_ROLLOUT), rev: 0 });
    const V2 = '{"maxRecordsPerAppend":2}';
    let item = takeLock(initial(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1', { profile: 'limits', version: '2' }), V2);
    const renewed = takeLock(item, 'b1', T0 + 10, T0 + 2 * LOCK_MS);
    expect(renewed.state).toEqual(item.state);
    expect(renewed.state.experiment).toEqual(exp('b1', { profile: 'limits', version: '2' }));
    expect(contentOf(renewed.state, 'limits', '2')).toBe(V2);
    expect(holdsLock(renewed, 'b1')).toBe(true);
    expect(renewed.lock).toEqual({ bakeId: 'b1', expiresAtMs: T0 + 2 * LOCK_MS, takenAtMs: T0 });
  });

  it('clearExperiment and releaseLock on a state with no experiment leave the state as it is', () => {
    const state = structuredClone(INITIAL_ROLLOUT);
    expect(state.experiment).toBeUndefined();
    expect(clearExperiment(state, 'b1')).toBe(state); // the same object: nothing to clear
    const held = takeLock({ state, rev: 3 }, 'b1', T0, T0 + LOCK_MS);
    const released = releaseLock(held, 'b1');
    expect(released.lock).toBeUndefined();
    expect(released.state).toBe(held.state);
    expect(released.rev).toBe(3);
    // a non-holder releasing: the lock and the state stay
    const notMine = releaseLock(held, 'b2');
    expect(notMine.lock).toEqual(held.lock);
    expect(notMine.state).toBe(held.state);
    // and a state without contents or experiment (written before contents were kept)
    const bare: RolloutState = { control: { delivery: '1', limits: '1' } };
    expect(clearExperiment(bare, 'b1')).toBe(bare);
  });

  it("BAKE_DEFAULTS are the documented defaults, the judge's taken from JUDGE_DEFAULTS", () => {
    expect(BAKE_DEFAULTS).toEqual({
      weightPercent: 10,
      bakeSeconds: 600,
      pollSeconds: 30,
      minExperimentRequests: 200,
      errorMarginPoints: 0.5,
      latencyMarginPercent: 15,
      alpha: 0.005,
      finalBakeSeconds: 0,
      dryRun: false,
    });
  });

  it("judgeSettingsOf takes a bake's judge fields, and the judge's defaults for those an older record lacks", () => {
    const base = { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 50 };
    expect(judgeSettingsOf(base)).toEqual({
      errorMarginPoints: 0.5,
      latencyMarginPercent: 15,
      alpha: 0.005,
      minExperimentRequests: 50,
      minLatencyPeriods: 6,
    });
    expect(judgeSettingsOf({ ...base, errorMarginPoints: 2, latencyMarginPercent: 40, alpha: 0.01 })).toEqual({
      errorMarginPoints: 2,
      latencyMarginPercent: 40,
      alpha: 0.01,
      minExperimentRequests: 50,
      minLatencyPeriods: 6,
    });
    // 0 is a setting, not a missing one
    expect(judgeSettingsOf({ ...base, errorMarginPoints: 0, latencyMarginPercent: 0 })).toMatchObject({
      errorMarginPoints: 0,
      latencyMarginPercent: 0,
    });
  });
});

describe('reportedStatus and reportedSettings (what GET /bakes and GET /bakes/{bakeId} both say)', () => {
  it('a RUNNING bake past its deadline is FAILED with a reason; before it, or any other status, as stored', async () => {
    const { reportedStatus, reportedSettings } = await import('../../lambdas/domain/bake');
    expect(reportedStatus({ status: 'RUNNING', deadlineMs: 1_000 }, 1_001)).toEqual({
      status: 'FAILED',
      error: expect.stringMatching(/passed its deadline/),
    });
    expect(reportedStatus({ status: 'RUNNING', deadlineMs: 1_000, error: 'kept' }, 1_001)).toEqual({ status: 'FAILED', error: 'kept' });
    expect(reportedStatus({ status: 'RUNNING', deadlineMs: 1_000 }, 1_000)).toEqual({ status: 'RUNNING' });
    expect(reportedStatus({ status: 'SUCCEEDED', deadlineMs: 1_000 }, 5_000)).toEqual({ status: 'SUCCEEDED' });
    expect(
      reportedSettings({ settings: { weightPercent: 10, bakeSeconds: 600, pollSeconds: 30, minExperimentRequests: 200 } as never }),
    ).toMatchObject({ finalBakeSeconds: 0, dryRun: false, weightPercent: 10 });
  });
});

describe('mutation survivors: alarm datapoints, thresholds, reasons at the clip length, a stored error', () => {
  it('prefers the evaluated datapoints over the recent ones, skipping entries without a finite value', () => {
    const evaluated = [null, 5, { value: 'x' }, { timestamp: 't2', value: 9 }, { value: 3 }];
    expect(datapointsOf(JSON.stringify({ evaluatedDatapoints: evaluated, recentDatapoints: [1, 2] }))).toEqual([9, 3]);
    // No evaluated entry with a value: the recent ones, newest first.
    expect(datapointsOf(JSON.stringify({ evaluatedDatapoints: [{}], recentDatapoints: [1, 2] }))).toEqual([2, 1]);
    // 1e999 parses as Infinity: not a datapoint.
    expect(datapointsOf('{"evaluatedDatapoints":[{"value":1e999},{"value":4}]}')).toEqual([4]);
    expect(datapointsOf('{"recentDatapoints":[1,"x",null,1e999,2]}')).toEqual([2, 1]);
  });

  it('keeps the ten newest values of either list', () => {
    const twelve = Array.from({ length: 12 }, (_, i) => i);
    expect(datapointsOf(JSON.stringify({ evaluatedDatapoints: twelve.map((value) => ({ value })) }))).toEqual(twelve.slice(0, 10));
    expect(datapointsOf(JSON.stringify({ recentDatapoints: twelve }))).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2]);
  });

  it('reads no datapoints from JSON that is not an object with a list', () => {
    for (const text of ['null', '5', '"text"', '{}', '{"recentDatapoints":5}', '{"evaluatedDatapoints":5}'])
      expect(datapointsOf(text), text).toEqual([]);
  });

  it('records a threshold only when it is a finite number', () => {
    const a = { AlarmName: 'a', StateValue: 'OK' };
    expect(alarmSnapshotOf({ ...a, Threshold: Infinity })).toEqual({ name: 'a', state: 'OK' });
    expect(alarmSnapshotOf({ ...a, Threshold: NaN })).toEqual({ name: 'a', state: 'OK' });
    expect(alarmSnapshotOf({ ...a, Threshold: 0 })).toEqual({ name: 'a', state: 'OK', threshold: 0 });
  });

  it('keeps a reason of exactly the clip length whole', () => {
    const b = newBake('b1', [{ profile: 'limits', version: '2' }], BAKE_DEFAULTS, T0);
    const exact = 'y'.repeat(TRANSITION_REASON_CHARS);
    const next = recordTransitions(b, [
      { type: 'PhaseRejected', atMs: T0 + 1, phase: 0, profile: 'limits', version: '2', verdict: 'REJECTED', reason: exact },
    ]);
    expect(next.history![1]!.reason).toBe(exact);
  });

  it('reports a stored error as is, and no error member when there is none', async () => {
    const { reportedStatus } = await import('../../lambdas/domain/bake');
    expect(reportedStatus({ status: 'FAILED', error: 'boom' }, 0)).toEqual({ status: 'FAILED', error: 'boom' });
    expect(Object.keys(reportedStatus({ status: 'SUCCEEDED' }, 0))).toEqual(['status']);
  });
});

describe('mutation survivors: arm totals, BakeEnded verdicts, refusals in words, new bakes, the watch reason, revert edges', () => {
  it('totalsOf sums each count over the periods and keeps the worst p99 of the periods with requests', () => {
    expect(
      totalsOf([
        { requests: 10, errors5xx: 1, errors4xx: 2, p99Ms: 40 },
        { requests: 0, errors5xx: 0, p99Ms: 900 }, // no requests: its p99 is not a measurement
        { requests: 7, errors5xx: 3, p99Ms: 55.5 },
        { requests: 5, errors5xx: 0, errors4xx: 4 }, // no p99 reported
        { requests: 1, errors5xx: 0, p99Ms: 12 },
      ]),
    ).toStrictEqual({ requests: 23, errors4xx: 6, errors5xx: 4, p99Ms: 55.5 });
    // No period with both requests and a p99: no p99 member at all.
    const none = totalsOf([
      { requests: 0, errors5xx: 0, p99Ms: 30 },
      { requests: 4, errors5xx: 2 },
    ]);
    expect(none).toStrictEqual({ requests: 4, errors4xx: 0, errors5xx: 2 });
    expect('p99Ms' in none).toBe(false);
    expect(totalsOf([])).toStrictEqual({ requests: 0, errors4xx: 0, errors5xx: 0 });
  });

  it("verdictsOf lists each phase's profile, version and verdict, in order, and nothing else", () => {
    const b = newBake(
      'b1',
      [
        { profile: 'limits', version: '2', content: CONTENT },
        { profile: 'delivery', version: '7' },
      ],
      BAKE_DEFAULTS,
      T0,
    );
    const done = { ...b, phases: [{ ...b.phases[0]!, verdict: 'APPROVED' as const, polls: 20, reason: 'ok' }, b.phases[1]!] };
    expect(verdictsOf(done)).toStrictEqual([
      { profile: 'limits', version: '2', verdict: 'APPROVED' },
      { profile: 'delivery', version: '7', verdict: 'PENDING' },
    ]);
  });

  it('BakeStateError is named, and each refusal says which bake, what it will not do and why', () => {
    const other = takeLock(fresh(), 'b2', T0, T0 + LOCK_MS);
    const lost = bakeErrorOf(() => startExperiment(other, exp('b1'), CONTENT));
    expect(lost.name).toBe('BakeStateError');
    expect(lost.message).toBe('Bake b1 no longer holds the rollout lock; it will not start an experiment.');
    expect(bakeErrorOf(() => approve(other, 'b1', 'limits', '2', CONTENT)).message).toBe(
      'Bake b1 no longer holds the rollout lock; it will not change a control version.',
    );
    const mine = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    expect(bakeErrorOf(() => approve(mine, 'b1', 'limits', '2')).message).toBe(
      'Bake b1 has no content for version 2 of profile limits; it will not make a version control that hosts could not serve.',
    );
    const phase: Phase = { profile: 'limits', version: '2', verdict: 'APPROVED', polls: 1, controlVersion: '1', controlContent: '{}' };
    expect(bakeErrorOf(() => revertPhase(other, 'b1', phase)).message).toBe(
      'Bake b1 no longer holds the rollout lock; it will not change a control version.',
    );
  });

  it("a new bake's phases carry the content they were given, and no content member without one", () => {
    const b = newBake(
      'b1',
      [
        { profile: 'limits', version: '2', content: CONTENT },
        { profile: 'delivery', version: '3' },
      ],
      BAKE_DEFAULTS,
      T0,
    );
    expect(b.phases).toStrictEqual([
      { profile: 'limits', version: '2', content: CONTENT, verdict: 'PENDING', polls: 0 },
      { profile: 'delivery', version: '3', verdict: 'PENDING', polls: 0 },
    ]);
    expect('content' in b.phases[1]!).toBe(false);
  });

  it('BakeStarted records a set finalBakeSeconds as set, and a missing dryRun as false', () => {
    const settings: BakeSettings = {
      weightPercent: 20,
      bakeSeconds: 120,
      pollSeconds: 10,
      minExperimentRequests: 50,
      finalBakeSeconds: 300,
    };
    const started = newBake('b1', [{ profile: 'limits', version: '2' }], settings, T0).history![0]!;
    expect(started).toMatchObject({
      type: 'BakeStarted',
      weightPercent: 20,
      bakeSeconds: 120,
      pollSeconds: 10,
      finalBakeSeconds: 300,
      dryRun: false,
    });
  });

  describe("the watch's reason", () => {
    const S: BakeSettings = { weightPercent: 10, bakeSeconds: 60, pollSeconds: 10, minExperimentRequests: 1, finalBakeSeconds: 60 };
    const alarm = (name: string, over: Partial<AlarmSnapshot> = {}): AlarmSnapshot => ({
      name,
      state: 'ALARM',
      threshold: 2,
      datapoints: [3],
      ...over,
    });

    it('names every other alarm in ALARM, comma-separated', () => {
      const d = decideWatchPoll({ polls: 1, settings: S, alarms: [alarm('a'), alarm('b'), alarm('c')], abortRequested: false });
      expect(d.action === 'FIRE' && d.reason).toBe(
        'The watch after promotion saw alarm a in ALARM at its poll 1 of 6: datapoints [3] (newest first) against its threshold 2 (also in ALARM: b, c).',
      );
    });

    it("quotes at most 400 characters of CloudWatch's reason, and nothing of one it did not give", () => {
      const long = `${'r'.repeat(400)}TAIL`;
      const d = decideWatchPoll({ polls: 3, settings: S, alarms: [alarm('a', { reason: long })], abortRequested: false });
      expect(d.action === 'FIRE' && d.reason).toBe(
        `The watch after promotion saw alarm a in ALARM at its poll 3 of 6: datapoints [3] (newest first) against its threshold 2. CloudWatch: ${'r'.repeat(400)}`,
      );
      const bare = decideWatchPoll({ polls: 3, settings: S, alarms: [alarm('a')], abortRequested: false });
      expect(bare.action === 'FIRE' && bare.reason).toBe(
        'The watch after promotion saw alarm a in ALARM at its poll 3 of 6: datapoints [3] (newest first) against its threshold 2.',
      );
    });
  });

  describe('revertPhase at its edges', () => {
    const held = (control: string): RolloutItem =>
      takeLock(
        {
          state: withContents({ control: { delivery: '1', limits: control } }, { profile: 'limits', version: control, content: CONTENT }),
          rev: 1,
        },
        'b1',
        T0,
        T0 + LOCK_MS,
      );

    it('a phase that baked the version already in control (control version = version) still writes it back: REVERTED', () => {
      const item = held('2');
      const phase: Phase = {
        profile: 'limits',
        version: '2',
        verdict: 'APPROVED',
        polls: 1,
        controlVersion: '2',
        controlContent: '{"a":1}',
      };
      const r = revertPhase(item, 'b1', phase);
      expect(r.outcome).toBe('REVERTED');
      expect(r.item).not.toBe(item);
      expect(contentOf(r.item.state, 'limits', '2')).toBe('{"a":1}');
    });

    it('a control content without its control version is no control to go back to: NO_CONTROL, item unchanged', () => {
      const item = held('2');
      const phase: Phase = { profile: 'limits', version: '2', verdict: 'APPROVED', polls: 1, controlContent: '{"a":1}' };
      const r = revertPhase(item, 'b1', phase);
      expect(r.outcome).toBe('NO_CONTROL');
      expect(r.item).toBe(item);
    });
  });
});
