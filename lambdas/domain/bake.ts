/**
 * The two-phase config bake as plain data and pure decisions: the bake record, the lock on the
 * rollout state, each phase's start / poll / verdict, and cleanup. The bake service applies
 * these to storage with conditional writes; the Step Functions state machine sequences them.
 *
 * Version contents travel with the versions: POST /bakes copies each change's content from
 * AppConfig into its phase, the phase's start copies it into the rollout state with the
 * experiment, and approval keeps it as the control's. Every transition here ends with
 * `withContents`, so the rollout state holds exactly the contents of the versions it names.
 *
 * Around the phases (README "Config bake"):
 * - each phase records, when it starts, the control it is tested against (version and content)
 *   and what the version changes against it (`diff`, domain/diff.ts);
 * - a dry run (`dryRun`) reaches every verdict but never promotes: WOULD_APPROVE / WOULD_REJECT;
 * - the watch after promotion (`finalBakeSeconds`) polls the absolute SLO alarms after the last
 *   phase (`decideWatchPoll`); when one fires, every phase this bake promoted is reverted, last
 *   first, to the control it was tested against (`revertPhase`);
 * - every transition is appended to the record's `history` (`recordTransitions`) as a small
 *   object that can be published as an event unchanged.
 */
import { contentOf, withContents, type Experiment, type ProfileName, type RolloutState } from './config';
import type { ConfigDiff } from './diff';
import { JUDGE_DEFAULTS, type Judgement, type JudgeSettings, type PeriodStats } from './judge';

/**
 * `REVERTED`: the watch after promotion saw an SLO alarm fire and reverted what the bake promoted.
 * The others as before: `SUCCEEDED` ran to its end (the watch, if any, passed), whatever the verdicts.
 */
export type BakeStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'REVERTED';
/**
 * `REVERTED`: approved and promoted, then reverted to the control it was tested against by the
 * watch. `WOULD_APPROVE` / `WOULD_REJECT`: a dry run's verdicts; the control was never changed.
 */
export type Verdict = 'PENDING' | 'BAKING' | 'APPROVED' | 'REJECTED' | 'REVERTED' | 'WOULD_APPROVE' | 'WOULD_REJECT';

export interface BakeSettings extends Partial<Pick<JudgeSettings, 'errorMarginPoints' | 'latencyMarginPercent' | 'alpha'>> {
  weightPercent: number;
  bakeSeconds: number;
  pollSeconds: number;
  /** Fewest experiment-arm requests a phase needs before it can be approved. */
  minExperimentRequests: number;
  /**
   * Seconds the watch after promotion polls the SLO alarms after the last phase: 0 (no watch),
   * or FINAL_BAKE_SECONDS.min..max. Absent in records from before the watch: 0.
   */
  finalBakeSeconds?: number;
  /** A dry run: every phase runs and reaches its verdict, nothing is promoted. Absent: false. */
  dryRun?: boolean;
}

/**
 * The range of `finalBakeSeconds` (besides 0, off). At least the SLO alarms' evaluation window
 * (6 periods of 10 s), so a regression that starts as the watch does can fill it; at most an
 * hour, like `bakeSeconds`, which keeps the longest bake (10 phases and the watch) well inside
 * the state machine's 24-hour execution limit.
 */
export const FINAL_BAKE_SECONDS = { min: 60, max: 3600 } as const;

export const BAKE_DEFAULTS: BakeSettings = {
  weightPercent: 10,
  bakeSeconds: 600,
  pollSeconds: 30,
  minExperimentRequests: JUDGE_DEFAULTS.minExperimentRequests,
  errorMarginPoints: JUDGE_DEFAULTS.errorMarginPoints,
  latencyMarginPercent: JUDGE_DEFAULTS.latencyMarginPercent,
  alpha: JUDGE_DEFAULTS.alpha,
  finalBakeSeconds: 0,
  dryRun: false,
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

/** An arm's totals over a series: summed counts, the worst period's p99. */
export function totalsOf(series: PeriodStats[]): ArmStats {
  const requests = series.reduce((a, p) => a + p.requests, 0);
  const p99s = series.filter((p) => p.requests > 0 && p.p99Ms !== undefined).map((p) => p.p99Ms!);
  return {
    requests,
    errors4xx: series.reduce((a, p) => a + (p.errors4xx ?? 0), 0),
    errors5xx: series.reduce((a, p) => a + p.errors5xx, 0),
    ...(p99s.length ? { p99Ms: Math.max(...p99s) } : {}),
  };
}

export interface AlarmSnapshot {
  name: string;
  state: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
  reason?: string;
  /** The alarm's threshold, as DescribeAlarms reports it (recorded by the watch). */
  threshold?: number;
  /** The datapoints of its last evaluation, newest first, as DescribeAlarms' StateReasonData reports them (recorded for an alarm in ALARM). */
  datapoints?: number[];
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
  /**
   * The profile's control version when the phase started, and its content (JSON text): what the
   * phase was tested against, and what a revert by the watch puts back. Absent in records from
   * before they were kept (and the content when the rollout item had none).
   */
  controlVersion?: string;
  controlContent?: string;
  /** What the version changes against that control (domain/diff.ts), computed when the phase started. */
  diff?: ConfigDiff[];
}

/** The watch after promotion, once it started. */
export interface BakeWatch {
  /** Its length in polls' time: `finalBakeSeconds`. */
  seconds: number;
  startedAtMs: number;
  /** Epoch ms of its first poll: after every host dropped the last experiment and the SLO alarms' window lies after that. */
  measureFromMs: number;
  polls: number;
  /** The SLO alarms at its last poll. */
  alarms?: AlarmSnapshot[];
  outcome?: 'PASSED' | 'FIRED' | 'ABORTED' | 'FAILED';
  /** With FIRED: the alarm that fired and why, in numbers; what Revert records on each phase it reverts. */
  fired?: { alarm: AlarmSnapshot; reason: string };
  endedAtMs?: number;
}

/** What `history` holds: every transition of a bake, in order (README "Config bake"). */
export type TransitionType =
  | 'BakeStarted'
  | 'PhaseBaking'
  | 'PhaseExtended'
  | 'PhaseApproved'
  | 'PhaseRejected'
  | 'PhaseWouldApprove'
  | 'PhaseWouldReject'
  | 'PhaseReverted'
  | 'AbortRequested'
  | 'WatchStarted'
  | 'WatchPassed'
  | 'WatchFired'
  | 'BakeEnded';

/**
 * One transition of a bake, with its time and the numbers behind it: small and self-contained,
 * so it can be published as an event (EventBridge `detail`) exactly as stored. Which fields a
 * type carries:
 * - BakeStarted: changes, weightPercent, bakeSeconds, pollSeconds, finalBakeSeconds, dryRun;
 * - PhaseBaking: phase, profile, version, controlVersion, weightPercent, diff;
 * - PhaseExtended: phase, profile, version, polls, arms (too few requests or undecided at the budget);
 * - PhaseApproved / PhaseRejected / PhaseWouldApprove / PhaseWouldReject: phase, profile,
 *   version, verdict, reason, polls, arms, alarmsInAlarm;
 * - PhaseReverted: phase, profile, version (the one taken back), controlVersion (the one put
 *   back), verdict REVERTED, reason, alarm (name, threshold, datapoints);
 * - AbortRequested: nothing more;
 * - WatchStarted: finalBakeSeconds, pollSeconds, settleSeconds, promoted;
 * - WatchPassed: polls, finalBakeSeconds, traffic (all requests during the watch, when CloudWatch answered);
 * - WatchFired: polls, reason, alarm;
 * - BakeEnded: status, reason (the error of a FAILED bake), verdicts.
 */
export interface BakeTransition {
  type: TransitionType;
  /** Its place in the history, from 0: consumers of the events can order and de-duplicate by it. */
  seq: number;
  /** ISO 8601. */
  at: string;
  bakeId: string;
  /** Index of the phase in the bake's changes. */
  phase?: number;
  profile?: ProfileName;
  version?: string;
  controlVersion?: string;
  verdict?: Verdict;
  status?: BakeStatus;
  reason?: string;
  polls?: number;
  arms?: { control: ArmStats; experiment: ArmStats };
  alarmsInAlarm?: string[];
  alarm?: AlarmSnapshot;
  diff?: ConfigDiff[];
  weightPercent?: number;
  bakeSeconds?: number;
  pollSeconds?: number;
  finalBakeSeconds?: number;
  settleSeconds?: number;
  dryRun?: boolean;
  changes?: { profile: ProfileName; version: string }[];
  promoted?: { profile: ProfileName; version: string; controlVersion?: string }[];
  traffic?: ArmStats;
  verdicts?: { profile: ProfileName; version: string; verdict: Verdict }[];
}

/** A transition as a task makes it; `recordTransitions` numbers it and names the bake. */
export type NewTransition = Omit<BakeTransition, 'seq' | 'bakeId' | 'at'> & { atMs: number };

/** Longest reason a transition keeps, characters (the phase's own `reason` is not clipped). */
export const TRANSITION_REASON_CHARS = 1000;

/**
 * The most transitions a bake of `phases` phases records: per phase at most PhaseBaking,
 * PhaseExtended (once), its verdict and PhaseReverted; per bake BakeStarted, AbortRequested
 * (the first request only), WatchStarted, WatchPassed or WatchFired, BakeEnded. 45 for the
 * largest bake (10 changes). Each is under about 2 KB (a reason of at most 1,000 characters,
 * a diff of a profile's few fields, two arms' numbers), so a bake's history stays under about
 * 90 KB, well inside DynamoDB's 400 KB item beside the phases, and each task's share of it
 * (a handful) far inside Step Functions' 256 KB state.
 */
export function historyBound(phases: number): number {
  return 4 * phases + 5;
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
  /** The watch after promotion, once it started. */
  watch?: BakeWatch;
  /** Every transition, in order (absent in records from before it was kept). */
  history?: BakeTransition[];
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
  constructor(
    readonly code: 'BakeInProgress' | 'LockLost' | 'NoCurrentPhase' | 'NoContent',
    message: string,
  ) {
    super(message);
    this.name = 'BakeStateError';
  }
}

/** Takes the lock for `bakeId`, or keeps it when already held by it. Throws BakeInProgress. */
export function takeLock(item: RolloutItem, bakeId: string, nowMs: number, expiresAtMs: number): RolloutItem {
  const held = item.lock;
  if (held && held.bakeId !== bakeId && held.expiresAtMs > nowMs) {
    throw new BakeStateError(
      'BakeInProgress',
      `Bake ${held.bakeId} is running; one bake runs at a time. Wait for it to end, or abort it with POST /bakes/${held.bakeId}/abort.`,
    );
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
  return {
    ...item,
    state: withContents({ ...item.state, experiment }, { profile: experiment.profile, version: experiment.version, content }),
  };
}

/**
 * Approval: the version becomes its profile's control, and the experiment ends. The content is
 * the phase's (or, for a record from before phases kept it, the one its start put in the state);
 * with neither, hosts could not serve the new control, so it is refused (NoContent).
 */
export function approve(item: RolloutItem, bakeId: string, profile: ProfileName, version: string, content?: string): RolloutItem {
  if (!holdsLock(item, bakeId))
    throw new BakeStateError('LockLost', `Bake ${bakeId} no longer holds the rollout lock; it will not change a control version.`);
  const text = content ?? contentOf(item.state, profile, version);
  if (text === undefined) {
    throw new BakeStateError(
      'NoContent',
      `Bake ${bakeId} has no content for version ${version} of profile ${profile}; it will not make a version control that hosts could not serve.`,
    );
  }
  const state = clearExperiment(item.state, bakeId);
  return {
    ...item,
    state: withContents({ ...state, control: { ...state.control, [profile]: version } }, { profile, version, content: text }),
  };
}

// ---------------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------------

/** A new bake's record, its history opened with BakeStarted. */
export function newBake(
  bakeId: string,
  changes: { profile: ProfileName; version: string; content?: string }[],
  settings: BakeSettings,
  nowMs: number,
): BakeRecord {
  const b: BakeRecord = {
    bakeId,
    status: 'RUNNING',
    settings,
    phases: changes.map((c) => ({
      profile: c.profile,
      version: c.version,
      ...(c.content !== undefined ? { content: c.content } : {}),
      verdict: 'PENDING',
      polls: 0,
    })),
    createdAtMs: nowMs,
    abortRequested: false,
    rev: 0,
  };
  return recordTransitions(b, [
    {
      type: 'BakeStarted',
      atMs: nowMs,
      changes: changes.map((c) => ({ profile: c.profile, version: c.version })),
      weightPercent: settings.weightPercent,
      bakeSeconds: settings.bakeSeconds,
      pollSeconds: settings.pollSeconds,
      finalBakeSeconds: settings.finalBakeSeconds ?? 0,
      dryRun: settings.dryRun ?? false,
    },
  ]);
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
    return {
      action: 'REJECT',
      reason: `Alarm ${firing.map((a) => a.name).join(', ')} in ALARM at poll ${phase.polls}. ${judgement.reason}`,
    };
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

// ---------------------------------------------------------------------------------------------
// Alarms as DescribeAlarms reports them
// ---------------------------------------------------------------------------------------------

/** An alarm of DescribeAlarms' `MetricAlarms`, as the state machine hands it to the bake function. */
export interface DescribedAlarm {
  AlarmName?: string;
  StateValue?: string;
  StateReason?: string;
  /** JSON: `evaluatedDatapoints` (newest first, each with a `value`) and/or `recentDatapoints`. */
  StateReasonData?: string;
  Threshold?: number;
}

/** The values of an alarm's last evaluation, newest first, from its StateReasonData; [] when it has none readable. */
export function datapointsOf(stateReasonData: string | undefined): number[] {
  if (!stateReasonData) return [];
  let data: unknown;
  try {
    data = JSON.parse(stateReasonData);
  } catch {
    return [];
  }
  if (!data || typeof data !== 'object') return [];
  const d = data as { evaluatedDatapoints?: unknown; recentDatapoints?: unknown };
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (Array.isArray(d.evaluatedDatapoints)) {
    const values = d.evaluatedDatapoints
      .map((p) => (p && typeof p === 'object' ? (p as { value?: unknown }).value : undefined))
      .filter(num);
    if (values.length) return values.slice(0, 10);
  }
  // recentDatapoints are oldest first.
  if (Array.isArray(d.recentDatapoints)) return d.recentDatapoints.filter(num).reverse().slice(0, 10);
  return [];
}

/** An alarm as the bake records it: its state and reason, its threshold, and, in ALARM, the datapoints behind it. */
export function alarmSnapshotOf(a: DescribedAlarm): AlarmSnapshot {
  const state = a.StateValue === 'ALARM' || a.StateValue === 'OK' ? a.StateValue : 'INSUFFICIENT_DATA';
  const datapoints = state === 'ALARM' ? datapointsOf(a.StateReasonData) : [];
  return {
    name: a.AlarmName ?? '?',
    state,
    ...(a.StateReason ? { reason: a.StateReason } : {}),
    ...(typeof a.Threshold === 'number' && Number.isFinite(a.Threshold) ? { threshold: a.Threshold } : {}),
    ...(datapoints.length ? { datapoints } : {}),
  };
}

const num3 = (x: number): string => String(Number(x.toFixed(3)));

/** An alarm's numbers in words: its datapoints against its threshold. */
export function alarmNumbers(a: AlarmSnapshot): string {
  const points = a.datapoints?.length ? `datapoints [${a.datapoints.map(num3).join(', ')}] (newest first)` : 'no datapoints reported';
  return a.threshold !== undefined ? `${points} against its threshold ${num3(a.threshold)}` : points;
}

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

const clipReason = (r: string): string => (r.length > TRANSITION_REASON_CHARS ? `${r.slice(0, TRANSITION_REASON_CHARS - 1)}…` : r);

/** The record with `ts` appended to its history, in order, numbered on from the last one. */
export function recordTransitions(b: BakeRecord, ts: NewTransition[]): BakeRecord {
  if (!ts.length) return b;
  const history = [...(b.history ?? [])];
  for (const { atMs, type, ...rest } of ts) {
    history.push({
      type,
      seq: history.length,
      at: new Date(atMs).toISOString(),
      bakeId: b.bakeId,
      ...rest,
      ...(rest.reason !== undefined ? { reason: clipReason(rest.reason) } : {}),
    });
  }
  return { ...b, history };
}

/** The transition a phase's verdict is recorded as. */
export function transitionOf(verdict: 'APPROVED' | 'REJECTED' | 'WOULD_APPROVE' | 'WOULD_REJECT'): TransitionType {
  switch (verdict) {
    case 'APPROVED':
      return 'PhaseApproved';
    case 'REJECTED':
      return 'PhaseRejected';
    case 'WOULD_APPROVE':
      return 'PhaseWouldApprove';
    case 'WOULD_REJECT':
      return 'PhaseWouldReject';
  }
}

/** The verdict a phase's decision is recorded as: in a dry run, what it would have been. */
export function verdictOf(action: 'APPROVE' | 'REJECT', dryRun: boolean): 'APPROVED' | 'REJECTED' | 'WOULD_APPROVE' | 'WOULD_REJECT' {
  if (dryRun) return action === 'APPROVE' ? 'WOULD_APPROVE' : 'WOULD_REJECT';
  return action === 'APPROVE' ? 'APPROVED' : 'REJECTED';
}

/** BakeEnded's numbers: each phase's verdict. */
export function verdictsOf(b: BakeRecord): { profile: ProfileName; version: string; verdict: Verdict }[] {
  return b.phases.map((p) => ({ profile: p.profile, version: p.version, verdict: p.verdict }));
}

// ---------------------------------------------------------------------------------------------
// The watch after promotion
// ---------------------------------------------------------------------------------------------

/** Indexes of the phases this bake promoted (APPROVED), in the order they ran. */
export function promotedPhases(b: BakeRecord): number[] {
  return b.phases.flatMap((p, i) => (p.verdict === 'APPROVED' ? [i] : []));
}

/**
 * Whether the bake watches after its last phase: `finalBakeSeconds` set, not a dry run, not
 * aborted, and it promoted something (with nothing promoted there is nothing to revert).
 */
export function shouldWatch(b: BakeRecord): boolean {
  return (b.settings.finalBakeSeconds ?? 0) > 0 && !b.settings.dryRun && !b.abortRequested && promotedPhases(b).length > 0;
}

/** Polls the watch runs: one every `pollSeconds` for `finalBakeSeconds`. */
export function watchPolls(s: BakeSettings): number {
  return Math.max(1, Math.ceil((s.finalBakeSeconds ?? 0) / s.pollSeconds));
}

/** Seconds the watch may take at most (0 without one): its settling, its polls, two polls of slack. */
export function watchBudgetSeconds(s: BakeSettings, settleSeconds: number): number {
  const seconds = s.finalBakeSeconds ?? 0;
  if (seconds <= 0 || s.dryRun) return 0;
  return settleSeconds + watchPolls(s) * s.pollSeconds + 2 * s.pollSeconds + 60;
}

export type WatchDecision =
  | { action: 'CONTINUE' }
  | { action: 'PASS' }
  | { action: 'FIRE'; alarm: AlarmSnapshot; reason: string }
  | { action: 'ABORT' };

/**
 * One poll of the watch (`polls` counts this one), over the absolute SLO alarms only. After
 * promotion every request is served control, so there is no experiment arm: the judge has
 * nothing to compare, and the experiment alarms have no data; what can still see a regression
 * is the SLO alarms on all traffic. An abort ends the watch (without reverting, which the
 * operator asked to stop); any SLO alarm in ALARM fires it; past its polls it passes.
 */
export function decideWatchPoll(input: {
  polls: number;
  settings: BakeSettings;
  alarms: AlarmSnapshot[];
  abortRequested: boolean;
}): WatchDecision {
  if (input.abortRequested) return { action: 'ABORT' };
  const firing = input.alarms.filter((a) => a.state === 'ALARM');
  const budget = watchPolls(input.settings);
  if (firing.length) {
    const alarm = firing[0]!;
    const others =
      firing.length > 1
        ? ` (also in ALARM: ${firing
            .slice(1)
            .map((a) => a.name)
            .join(', ')})`
        : '';
    return {
      action: 'FIRE',
      alarm,
      reason: `The watch after promotion saw alarm ${alarm.name} in ALARM at its poll ${input.polls} of ${budget}: ${alarmNumbers(alarm)}${others}.${alarm.reason ? ` CloudWatch: ${alarm.reason.slice(0, 400)}` : ''}`,
    };
  }
  if (input.polls >= budget) return { action: 'PASS' };
  return { action: 'CONTINUE' };
}

export type RevertOutcome = 'REVERTED' | 'ALREADY_REVERTED' | 'SUPERSEDED' | 'NO_CONTROL';

/**
 * Takes back what phase `phase` promoted: its profile's control goes back to the version it was
 * tested against (`controlVersion`, with the content the phase copied when it started), but
 * only while that control is still the version this phase promoted. The caller writes the
 * result with a `rev`-conditional put of the item it was computed from, so the check and the
 * write are one atomic step: no version another writer made control in between is ever
 * overwritten (a later bake's promotion stays). Under the lock, which the bake holds through
 * its watch, no other bake can write a control at all; the check is what keeps that true even
 * for a bake whose lock was lost (then LockLost is thrown first).
 *
 * Outcomes: REVERTED (the item changed); ALREADY_REVERTED (control is already the one the
 * phase was tested against: a retry after the write whose record update was lost; phases are
 * reverted last first, so when two phases changed one profile the later one's is already back
 * before the earlier one is looked at); SUPERSEDED (control is some other version: left as it
 * is); NO_CONTROL (the phase has no copy of its control's content, a record from before it was
 * kept: hosts could not serve a revert, so none is made).
 */
export function revertPhase(item: RolloutItem, bakeId: string, phase: Phase): { item: RolloutItem; outcome: RevertOutcome } {
  if (!holdsLock(item, bakeId))
    throw new BakeStateError('LockLost', `Bake ${bakeId} no longer holds the rollout lock; it will not change a control version.`);
  const current = item.state.control[phase.profile];
  if (phase.controlVersion !== undefined && current === phase.controlVersion && current !== phase.version)
    return { item, outcome: 'ALREADY_REVERTED' };
  if (current !== phase.version) return { item, outcome: 'SUPERSEDED' };
  if (phase.controlVersion === undefined || phase.controlContent === undefined) return { item, outcome: 'NO_CONTROL' };
  const state = withContents(
    { ...item.state, control: { ...item.state.control, [phase.profile]: phase.controlVersion } },
    { profile: phase.profile, version: phase.controlVersion, content: phase.controlContent },
  );
  return { item: { ...item, state }, outcome: 'REVERTED' };
}

/**
 * A bake's status and error as every reader reports them (GET /bakes/{bakeId}, GET /bakes): a
 * RUNNING bake past its deadline died without cleanup (its execution timed out or was stopped;
 * its lock and experiment have expired), so it is over, and FAILED.
 */
export function reportedStatus(
  b: Pick<BakeRecord, 'status' | 'error' | 'deadlineMs'>,
  nowMs: number,
): { status: BakeStatus; error?: string } {
  if (b.status === 'RUNNING' && b.deadlineMs !== undefined && nowMs > b.deadlineMs) {
    return {
      status: 'FAILED',
      error:
        b.error ??
        'The bake passed its deadline without finishing: its execution stopped without cleanup. Its lock and experiment have expired.',
    };
  }
  return b.error === undefined ? { status: b.status } : { status: b.status, error: b.error };
}

/** A bake's settings as readers report them: records from before the watch and dry runs lack both. */
export const reportedSettings = (b: Pick<BakeRecord, 'settings'>): BakeSettings => ({
  ...b.settings,
  finalBakeSeconds: b.settings.finalBakeSeconds ?? 0,
  dryRun: b.settings.dryRun ?? false,
});
