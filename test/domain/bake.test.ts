/**
 * The bake's pure decisions: the lock on the rollout state, phase order, and each poll's verdict.
 */
import { describe, expect, it } from 'vitest';
import {
  approve,
  BakeStateError,
  clearExperiment,
  currentPhase,
  decidePoll,
  holdsLock,
  newBake,
  phaseBudgetSeconds,
  pollBudget,
  releaseLock,
  startExperiment,
  takeLock,
  type AlarmSnapshot,
  type ArmStats,
  type BakeSettings,
  type Phase,
  type PollDecision,
  type RolloutItem,
} from '../../lambdas/domain/bake';
import type { Experiment } from '../../lambdas/domain/config';

const T0 = 1_700_000_000_000;
const LOCK_MS = 60_000;

const fresh = (): RolloutItem => ({ state: { control: { delivery: '1', limits: '1' } }, rev: 4 });
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
    item = startExperiment(item, exp('b1'));
    expect(item.state.experiment?.bakeId).toBe('b1');
    const taken = takeLock(item, 'b2', T0 + LOCK_MS, T0 + 3 * LOCK_MS);
    expect(taken.lock).toEqual({ bakeId: 'b2', expiresAtMs: T0 + 3 * LOCK_MS, takenAtMs: T0 + LOCK_MS });
    expect(taken.state.experiment).toBeUndefined();
    expect(taken.state.control).toEqual(item.state.control);
    expect(holdsLock(taken, 'b1')).toBe(false);
    // The dead bake cannot act any more.
    expect(bakeErrorOf(() => startExperiment(taken, exp('b1'))).code).toBe('LockLost');
    expect(bakeErrorOf(() => approve(taken, 'b1', 'limits', '2')).code).toBe('LockLost');
  });

  it('does not release for a non-holder', () => {
    let item = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1'));
    const after = releaseLock(item, 'b2');
    expect(after.lock).toEqual({ bakeId: 'b1', expiresAtMs: T0 + LOCK_MS, takenAtMs: T0 });
    expect(after.state.experiment?.bakeId).toBe('b1');
    expect(bakeErrorOf(() => takeLock(after, 'b3', T0 + 1, T0 + LOCK_MS)).code).toBe('BakeInProgress');
  });

  it('releases for the holder, clearing its experiment', () => {
    let item = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1'));
    const after = releaseLock(item, 'b1');
    expect(after.lock).toBeUndefined();
    expect(after.state.experiment).toBeUndefined();
    expect(takeLock(after, 'b2', T0 + 1, T0 + LOCK_MS).lock?.bakeId).toBe('b2');
  });

  it('refuses startExperiment and approve without the lock with LockLost', () => {
    const none = fresh();
    expect(bakeErrorOf(() => startExperiment(none, exp('b1'))).code).toBe('LockLost');
    expect(bakeErrorOf(() => approve(none, 'b1', 'limits', '2')).code).toBe('LockLost');
    const other = takeLock(fresh(), 'b2', T0, T0 + LOCK_MS);
    expect(bakeErrorOf(() => startExperiment(other, exp('b1'))).code).toBe('LockLost');
    expect(bakeErrorOf(() => approve(other, 'b1', 'limits', '2')).code).toBe('LockLost');
    // Nothing was changed by the refused calls.
    expect(other.state).toEqual(fresh().state);
  });

  it("approve sets that profile's control and clears only that bake's experiment", () => {
    let item = takeLock(fresh(), 'b1', T0, T0 + LOCK_MS);
    item = startExperiment(item, exp('b1', { profile: 'limits', version: '2' }));
    const approved = approve(item, 'b1', 'limits', '2');
    expect(approved.state.control).toEqual({ delivery: '1', limits: '2' });
    expect(approved.state.experiment).toBeUndefined();
    expect(approved.lock).toEqual(item.lock);

    // An experiment that is not this bake's (left by another, however it got there) stays.
    const foreign: RolloutItem = { ...item, state: { ...item.state, experiment: exp('b0', { profile: 'delivery', version: '5' }) } };
    const kept = approve(foreign, 'b1', 'delivery', '3');
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
    const b = newBake('b1', [{ profile: 'limits', version: '2' }, { profile: 'delivery', version: '4' }], S, T0);
    b.phases[1]!.verdict = 'BAKING';
    expect(currentPhase(b)).toBe(1);
  });
});

describe('pollBudget and phaseBudgetSeconds', () => {
  it('runs bakeSeconds / pollSeconds polls, and half that again as the extension', () => {
    const s = (bakeSeconds: number, pollSeconds: number): BakeSettings => ({ weightPercent: 10, bakeSeconds, pollSeconds, minExperimentRequests: 1 });
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
  const arms = (experimentRequests: number): { control: ArmStats; experiment: ArmStats } => ({
    control: { requests: 9000 + experimentRequests, errors4xx: 17, errors5xx: 3, p99Ms: 41.6 },
    experiment: {
      requests: experimentRequests,
      errors4xx: Math.min(2, experimentRequests),
      errors5xx: Math.min(11, experimentRequests),
      ...(experimentRequests ? { p99Ms: 212.2 } : {}),
    },
  });
  const phase = (polls: number): Phase => ({ profile: 'limits', version: '2', verdict: 'BAKING', polls });
  const decide = (polls: number, over: { alarms?: AlarmSnapshot[]; experimentRequests?: number; abortRequested?: boolean } = {}): PollDecision =>
    decidePoll({
      phase: phase(polls),
      settings: S,
      alarms: over.alarms ?? OK,
      arms: arms(over.experimentRequests ?? 1000),
      abortRequested: over.abortRequested ?? false,
    });

  it('the budget used below is the one pollBudget gives', () => {
    expect(pollBudget(S)).toEqual({ polls: BUDGET, extension: EXTENSION });
  });

  it('ABORT wins over everything', () => {
    const firing: AlarmSnapshot[] = [{ name: 'ExperimentErrorRate', state: 'ALARM' }];
    for (const polls of [1, BUDGET - 1, BUDGET, BUDGET + 1, BUDGET + EXTENSION, BUDGET + EXTENSION + 5]) {
      for (const experimentRequests of [0, 1000]) {
        for (const alarms of [OK, firing]) {
          expect(decide(polls, { alarms, experimentRequests, abortRequested: true })).toEqual({ action: 'ABORT' });
        }
      }
    }
  });

  it('rejects at once on any alarm in ALARM, naming it, with both arms in numbers', () => {
    const alarms: AlarmSnapshot[] = [
      { name: 'ExperimentErrorRate', state: 'OK' },
      { name: 'ExperimentLatency', state: 'ALARM', reason: 'p99 over 200 ms' },
      { name: 'ControlErrorRate', state: 'INSUFFICIENT_DATA' },
    ];
    for (const polls of [1, 5, BUDGET, BUDGET + 3]) {
      for (const experimentRequests of [0, 999]) {
        const d = decide(polls, { alarms, experimentRequests });
        expect(d.action).toBe('REJECT');
        const reason = (d as { reason: string }).reason;
        expect(reason).toContain('ExperimentLatency');
        expect(reason).not.toContain('ExperimentErrorRate');
        expect(reason).toContain(`poll ${polls}`);
        expect(reason).toContain(`experiment ${experimentRequests} requests`);
        expect(reason).toContain(`control ${9000 + experimentRequests} requests`);
        // Errors of each arm, in counts.
        expect(reason).toMatch(new RegExp(`experiment [^;]*5xx (?:[\\d.]+%|n/a) \\(${Math.min(11, experimentRequests)}\\)`));
        expect(reason).toMatch(/control [^;]*5xx [\d.]+% \(3\)/);
      }
    }
  });

  it('names every alarm in ALARM', () => {
    const d = decide(2, {
      alarms: [
        { name: 'A1', state: 'ALARM' },
        { name: 'A2', state: 'ALARM' },
      ],
    });
    expect(d.action).toBe('REJECT');
    expect((d as { reason: string }).reason).toMatch(/A1.*A2|A2.*A1/);
  });

  it('continues until the poll budget, then approves with enough experiment requests', () => {
    for (let polls = 1; polls < BUDGET; polls++) expect(decide(polls, { experimentRequests: 5000 })).toEqual({ action: 'CONTINUE', extended: false });
    const d = decide(BUDGET, { experimentRequests: 200 });
    expect(d.action).toBe('APPROVE');
    expect((d as { reason: string }).reason).toContain('200 experiment requests');
  });

  it('extends once when too few experiment requests, then rejects as Inconclusive at budget + extension', () => {
    for (let polls = BUDGET; polls < BUDGET + EXTENSION; polls++) {
      expect({ polls, d: decide(polls, { experimentRequests: 199 }) }).toEqual({ polls, d: { action: 'CONTINUE', extended: true } });
    }
    for (const polls of [BUDGET + EXTENSION, BUDGET + EXTENSION + 1]) {
      const d = decide(polls, { experimentRequests: 199 });
      expect(d.action).toBe('REJECT');
      expect((d as { reason: string }).reason).toMatch(/^Inconclusive/);
      expect((d as { reason: string }).reason).toContain('199');
    }
  });

  it('approves during the extension once enough requests arrive', () => {
    const d = decide(BUDGET + 3, { experimentRequests: 250 });
    expect(d.action).toBe('APPROVE');
  });

  it('never takes INSUFFICIENT_DATA as healthy evidence: approval still needs the minimum requests', () => {
    const noData: AlarmSnapshot[] = OK.map((a) => ({ ...a, state: 'INSUFFICIENT_DATA' }));
    const seen: PollDecision['action'][] = [];
    for (let polls = 1; polls <= BUDGET + EXTENSION; polls++) {
      for (const experimentRequests of [0, 199]) {
        const d = decide(polls, { alarms: noData, experimentRequests });
        seen.push(d.action);
        expect(d.action).not.toBe('APPROVE');
      }
    }
    expect(seen.at(-1)).toBe('REJECT');
    // With no alarms reported at all, the same.
    expect(decidePoll({ phase: phase(BUDGET), settings: S, alarms: [], arms: arms(0), abortRequested: false })).toEqual({ action: 'CONTINUE', extended: true });
  });
});
