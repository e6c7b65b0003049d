/**
 * The two-phase config bake as plain data and pure decisions: the bake record, the lock on the
 * rollout state, each phase's start / poll / verdict, and cleanup. The bake service applies
 * these to storage with conditional writes; the Step Functions state machine sequences them.
 *
 * Version contents travel with the versions: POST /bakes copies each change's content from
 * AppConfig into its phase, the phase's start copies it into the rollout state with the
 * experiment, and approval keeps it as the control's. Every transition here ends with
 * `withContents`, so the rollout state holds exactly the contents of the versions it names.
 */
import { contentOf, withContents, type Experiment, type ProfileName, type RolloutState } from './config';
import { JUDGE_DEFAULTS, type Judgement, type JudgeSettings } from './judge';

export type BakeStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
export type Verdict = 'PENDING' | 'BAKING' | 'APPROVED' | 'REJECTED';

export interface BakeSettings extends Partial<Pick<JudgeSettings, 'errorMarginPoints' | 'latencyMarginPercent' | 'alpha'>> {
  weightPercent: number;
  bakeSeconds: number;
  pollSeconds: number;
  /** Fewest experiment-arm requests a phase needs before it can be approved. */
  minExperimentRequests: number;
}

export const BAKE_DEFAULTS: BakeSettings = {
  weightPercent: 10,
  bakeSeconds: 600,
  pollSeconds: 30,
  minExperimentRequests: JUDGE_DEFAULTS.minExperimentRequests,
  errorMarginPoints: JUDGE_DEFAULTS.errorMarginPoints,
  latencyMarginPercent: JUDGE_DEFAULTS.latencyMarginPercent,
  alpha: JUDGE_DEFAULTS.alpha,
};

/** The judge's settings for a bake (older bake records lack the judge's fields: defaults). */
export function judgeSettingsOf(s: BakeSettings): JudgeSettings {
  return {
    ...JUDGE_DEFAULTS,
    minExperimentRequests: s.minExperimentRequests,
    errorMarginPoints: s.errorMarginPoints ?? JUDGE_DEFAULTS.errorMarginPoints,
    latencyMarginPercent: s.latencyMarginPercent ?? JUDGE_DEFAULTS.latencyMarginPercent,
    alpha: s.alpha ?? JUDGE_DEFAULTS.alpha,
  };
}

/** One arm's traffic over a phase's measurement window. */
export interface ArmStats {
  requests: number;
  errors4xx: number;
  errors5xx: number;
  /** The worst 10-second period's p99 service latency in the window, ms; absent with no requests. */
  p99Ms?: number;
}

export interface AlarmSnapshot {
  name: string;
  state: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
  reason?: string;
}

export interface Phase {
  profile: ProfileName;
  version: string;
  /**
   * The version's content (JSON text), copied from AppConfig when the bake was started: what
   * the phase's start puts in the rollout state. Absent in records from before it was kept.
   */
  content?: string;
  verdict: Verdict;
  reason?: string;
  alarms?: AlarmSnapshot[];
  arms?: { control: ArmStats; experiment: ArmStats };
  /** Epoch ms: experiment written to the rollout state. */
  startedAtMs?: number;
  /** Epoch ms from which the arms are measured: after every host has picked the experiment up. */
  measureFromMs?: number;
  endedAtMs?: number;
  polls: number;
  extended?: boolean;
}

export interface BakeRecord {
  bakeId: string;
  status: BakeStatus;
  settings: BakeSettings;
  phases: Phase[];
  createdAtMs: number;
  endedAtMs?: number;
  abortRequested: boolean;
  /** Why the bake FAILED (the machinery's error), for operators. */
  error?: string;
  /** When the bake's lock expires: past it, a bake still RUNNING died without cleanup. */
  deadlineMs?: number;
  /** Set by the execution's first step: evidence that the state machine really runs this bake. */
  executionStartedAtMs?: number;
  /** Optimistic-concurrency counter of the record. */
  rev: number;
}

/** The lock on the rollout state: one bake at a time. */
export interface BakeLock {
  bakeId: string;
  /** A lock whose bake died without cleanup (machine timeout, StopExecution) frees itself then. */
  expiresAtMs: number;
  takenAtMs?: number;
}

export interface RolloutItem {
  state: RolloutState;
  lock?: BakeLock;
  rev: number;
}

/** Seconds a phase may take at most: pick-up, the bake, one extension, and two polls of slack. */
export function phaseBudgetSeconds(s: BakeSettings, pickupSeconds: number): number {
  return pickupSeconds + Math.ceil(s.bakeSeconds * 1.5) + 2 * s.pollSeconds + 60;
}

/** Polls a phase runs before it can be decided, and the extra polls of its one extension. */
export function pollBudget(s: BakeSettings): { polls: number; extension: number } {
  const polls = Math.max(1, Math.ceil(s.bakeSeconds / s.pollSeconds));
  return { polls, extension: Math.max(1, Math.ceil(polls / 2)) };
}

export class BakeStateError extends Error {
  constructor(readonly code: 'BakeInProgress' | 'LockLost' | 'NoCurrentPhase' | 'NoContent', message: string) {
    super(message);
    this.name = 'BakeStateError';
  }
}

/** Takes the lock for `bakeId`, or keeps it when already held by it. Throws BakeInProgress. */
export function takeLock(item: RolloutItem, bakeId: string, nowMs: number, expiresAtMs: number): RolloutItem {
  const held = item.lock;
  if (held && held.bakeId !== bakeId && held.expiresAtMs > nowMs) {
    throw new BakeStateError('BakeInProgress', `Bake ${held.bakeId} is running; one bake runs at a time. Wait for it to end, or abort it with POST /bakes/${held.bakeId}/abort.`);
  }
  // Whatever experiment is left belongs to a dead bake (or to no live lock): it goes.
  const leftover = item.state.experiment;
  const state = leftover && leftover.bakeId !== bakeId ? clearExperiment(item.state, leftover.bakeId) : item.state;
  if (held?.bakeId === bakeId) return { ...item, state, lock: { ...held, expiresAtMs } };
  return { ...item, state, lock: { bakeId, expiresAtMs, takenAtMs: nowMs } };
}

export function holdsLock(item: RolloutItem, bakeId: string): boolean {
  return item.lock?.bakeId === bakeId;
}

/** Releases the lock if `bakeId` holds it, clearing its experiment. */
export function releaseLock(item: RolloutItem, bakeId: string): RolloutItem {
  const state = clearExperiment(item.state, bakeId);
  if (!holdsLock(item, bakeId)) return { ...item, state };
  const { lock: _lock, ...rest } = item;
  return { ...rest, state };
}

/** Ends `bakeId`'s experiment (if it is the live one), and drops its version's content unless control serves it too. */
export function clearExperiment(state: RolloutState, bakeId: string): RolloutState {
  if (state.experiment?.bakeId !== bakeId) return state;
  const { experiment: _e, ...rest } = state;
  return withContents(rest);
}

/**
 * Puts `experiment` live, with its version's `content` (JSON text) beside it in the same state,
 * so no host can see the experiment without the content it serves.
 */
export function startExperiment(item: RolloutItem, experiment: Experiment, content: string): RolloutItem {
  if (!holdsLock(item, experiment.bakeId)) {
    throw new BakeStateError('LockLost', `Bake ${experiment.bakeId} no longer holds the rollout lock; it will not start an experiment.`);
  }
  return { ...item, state: withContents({ ...item.state, experiment }, { profile: experiment.profile, version: experiment.version, content }) };
}

/**
 * Approval: the version becomes its profile's control, and the experiment ends. The content is
 * the phase's (or, for a record from before phases kept it, the one its start put in the state);
 * with neither, hosts could not serve the new control, so it is refused (NoContent).
 */
export function approve(item: RolloutItem, bakeId: string, profile: ProfileName, version: string, content?: string): RolloutItem {
  if (!holdsLock(item, bakeId)) throw new BakeStateError('LockLost', `Bake ${bakeId} no longer holds the rollout lock; it will not change a control version.`);
  const text = content ?? contentOf(item.state, profile, version);
  if (text === undefined) {
    throw new BakeStateError('NoContent', `Bake ${bakeId} has no content for version ${version} of profile ${profile}; it will not make a version control that hosts could not serve.`);
  }
  const state = clearExperiment(item.state, bakeId);
  return { ...item, state: withContents({ ...state, control: { ...state.control, [profile]: version } }, { profile, version, content: text }) };
}

// ---------------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------------

export function newBake(bakeId: string, changes: { profile: ProfileName; version: string; content?: string }[], settings: BakeSettings, nowMs: number): BakeRecord {
  return {
    bakeId,
    status: 'RUNNING',
    settings,
    phases: changes.map((c) => ({ profile: c.profile, version: c.version, ...(c.content !== undefined ? { content: c.content } : {}), verdict: 'PENDING', polls: 0 })),
    createdAtMs: nowMs,
    abortRequested: false,
    rev: 0,
  };
}

/** Index of the phase being baked, or of the next one to start; -1 when none is left. */
export function currentPhase(b: BakeRecord): number {
  const baking = b.phases.findIndex((p) => p.verdict === 'BAKING');
  return baking >= 0 ? baking : b.phases.findIndex((p) => p.verdict === 'PENDING');
}

export type PollDecision =
  | { action: 'CONTINUE'; extended: boolean }
  | { action: 'APPROVE'; reason: string }
  | { action: 'REJECT'; reason: string }
  | { action: 'ABORT' };

/**
 * One poll of a baking phase (`phase.polls` already counts this one). An abort request aborts;
 * any alarm in ALARM rejects at once (the fast safety net); the judge's REJECT rejects at once.
 * Otherwise the phase runs its poll budget, and is then approved only on the judge's APPROVE
 * (which needs the minimum experiment samples and both arms shown within the margins). Short of
 * that it is extended once (half the budget again) and then rejected as inconclusive: missing or
 * thin data is never healthy evidence.
 */
export function decidePoll(input: {
  phase: Phase;
  settings: BakeSettings;
  alarms: AlarmSnapshot[];
  judgement: Judgement;
  abortRequested: boolean;
}): PollDecision {
  const { phase, settings, alarms, judgement } = input;
  if (input.abortRequested) return { action: 'ABORT' };
  const firing = alarms.filter((a) => a.state === 'ALARM');
  if (firing.length) {
    return { action: 'REJECT', reason: `Alarm ${firing.map((a) => a.name).join(', ')} in ALARM at poll ${phase.polls}. ${judgement.reason}` };
  }
  if (judgement.decision === 'REJECT') return { action: 'REJECT', reason: `${judgement.reason} (poll ${phase.polls})` };
  const budget = pollBudget(settings);
  if (phase.polls < budget.polls) return { action: 'CONTINUE', extended: false };
  if (judgement.decision === 'APPROVE' && judgement.experimentRequests >= settings.minExperimentRequests) {
    return { action: 'APPROVE', reason: `No alarm in ${phase.polls} polls (${phase.polls * settings.pollSeconds} s). ${judgement.reason}` };
  }
  if (phase.polls < budget.polls + budget.extension) return { action: 'CONTINUE', extended: true };
  return {
    action: 'REJECT',
    reason: `Inconclusive after ${phase.polls} polls (the phase was extended once; an approval needs at least ${settings.minExperimentRequests} experiment requests and both arms within the margins). ${judgement.reason}`,
  };
}
