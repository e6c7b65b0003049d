/**
 * Configs and bakes: the admin routes' operations and the tasks the bake state machine runs.
 * Each task reads what it needs, decides with domain/bake.ts and writes with conditional puts,
 * so a task Step Functions retries after a crash redoes its step without doing it twice.
 *
 * AppConfig stays the store of versions, read only here, on the control path: POST /bakes
 * copies the content of each version it will serve into the bake record (and, for a rollout
 * item from before contents were kept, the control versions' into the item it locks); the
 * tasks move those copies into the rollout state hosts read, so no task and no host calls
 * AppConfig for a version's content.
 *
 * Filling in an item from before contents were kept is one function, `fillMissingContents`,
 * used by POST /bakes (inside the lock it takes) and by the deploy-time upgrade
 * (`backfillRolloutContents`, lambdas/handlers/upgrade.ts), which a deployment runs before the
 * data routes' functions get the code that serves from contents alone.
 *
 * History and events: every task that changes the bake record appends the transitions it made
 * to the record's `history` (domain/bake.ts, BakeTransition) in the same conditional put, and
 * every task's output carries `events`, the history from the cursor the state machine passed in
 * (`from`, the previous task's `historyLength`) to the end, and the new `historyLength`. So the
 * transitions reach the state machine in order, each once per step that made it, including
 * AbortRequested (appended by POST /bakes/{id}/abort between tasks); a task retried after a lost
 * response returns the same ones again (consumers de-duplicate by `seq`).
 *
 * The watch after promotion: StartWatch (`watch`) records it and waits WATCH_SETTLE_SECONDS,
 * then WatchPoll (`watch-poll`) reads the SLO alarms every `pollSeconds` for
 * `finalBakeSeconds`; when one fires, Revert (`revert`) takes back every promoted phase, last
 * first, and ends the bake REVERTED. The lock is held from TakeLock to the bake's end, watch
 * included (its deadline counts the watch).
 */
import { randomBytes } from 'node:crypto';
import type { AppConfigIds, ArmMetricsReader, Clock, ConfigVersions, ControlStore } from '../ports';
import { judge } from '../domain/judge';
import {
  alarmSnapshotOf,
  approve,
  BakeStateError,
  clearExperiment,
  currentPhase,
  decidePoll,
  decideWatchPoll,
  judgeSettingsOf,
  newBake,
  phaseBudgetSeconds,
  promotedPhases,
  recordTransitions,
  releaseLock,
  revertPhase,
  shouldWatch,
  startExperiment,
  takeLock,
  totalsOf,
  transitionOf,
  verdictOf,
  verdictsOf,
  watchBudgetSeconds,
  type ArmStats,
  type BakeRecord,
  type BakeSettings,
  type BakeStatus,
  type BakeTransition,
  type DescribedAlarm,
  type NewTransition,
  type RevertOutcome,
  type RolloutItem,
  reportedSettings,
  reportedStatus,
} from '../domain/bake';
import {
  checkProfileContent,
  contentOf,
  isProfile,
  liveExperiment,
  MAX_SERVED_CONTENT_BYTES,
  missingContents,
  PROFILES,
  withContents,
  type ProfileName,
  type RolloutState,
} from '../domain/config';
import { diffContents, type ConfigDiff } from '../domain/diff';
import { ALARM_PERIOD_SECONDS, SLO_ALARMS } from '../metrics';
import {
  bakeInProgress,
  bakeNotFound,
  bakeNotRunning,
  busy,
  clip,
  ConflictError,
  profileNotFound,
  validation,
  versionNotFound,
} from '../domain/errors';
import { CONFIG_CACHE_SECONDS } from './rollout';

/** Starts the bake state machine for a bake (execution name = bake id, so a retried start is a no-op). */
export interface BakeRunner {
  start(bakeId: string): Promise<void>;
}

/** Where a bake reports what is under test, for the dashboard (weight 0 when nothing). */
export type BakeGauge = (profile: ProfileName, weightPercent: number, version: number) => void;

export interface BakeServiceOptions {
  /** Divides the durations the bake compares against real time (local runtime only; 1 in AWS). */
  timeScale?: number;
  gauge?: BakeGauge;
}

/**
 * What a bake id from a request can be (the service makes `b-` and 16 base64url characters). A
 * longer or odd one names no bake, and is answered 404 before storage sees it: DynamoDB refuses
 * a key over 2,048 bytes with an error of its own.
 */
const BAKE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Seconds a phase waits after starting its experiment before measuring: every host's cache has turned over. */
export const PICKUP_SECONDS = CONFIG_CACHE_SECONDS + 2;

/**
 * Seconds from the watch's start to its first poll: every host has dropped the last experiment
 * (PICKUP_SECONDS), and then one whole evaluation window of the SLO alarms (6 periods of 10 s)
 * has passed, so no datapoint of an experiment that was not promoted (a rejected last phase)
 * counts in the watch: it judges the promoted versions only.
 */
export const WATCH_SETTLE_SECONDS = PICKUP_SECONDS + SLO_ALARMS.evaluationPeriods * ALARM_PERIOD_SECONDS;

/** What the state machine carries between tasks. */
export interface BakeStep {
  bakeId: string;
  /** `next`: no phase left (or abort requested). */
  done?: boolean;
  /** `next`, with `done`: the watch after promotion comes next (StartWatch), not Finish. */
  watchNext?: boolean;
  /**
   * `judge`: CONTINUE polls again; DECIDED moves to the next phase; ABORT cleans up.
   * `watch-poll`: CONTINUE polls again; PASSED finishes; FIRED reverts; ABORT cleans up.
   */
  decision?: 'CONTINUE' | 'DECIDED' | 'ABORT' | 'PASSED' | 'FIRED';
  phase?: {
    index: number;
    profile: ProfileName;
    version: string;
    applicationId: string;
    profileId: string;
    pickupSeconds: number;
    pollSeconds: number;
  };
  /** `watch`, `watch-poll`: the watch's waits, seconds (scaled locally like every wait of the machine). */
  watch?: { settleSeconds: number; pollSeconds: number };
  status?: BakeStatus;
  /** The transitions recorded since the task's `from`, in order (see the file's doc). */
  events: BakeTransition[];
  /** The history's length after this step: the next task's `from`. */
  historyLength: number;
}

/** The cursor into the bake's history up to which the state machine has had the events (absent: 0). */
type Cursor = { from?: number };
type TaskError = { Error?: string; Cause?: string };

export type BakeTask =
  | ({ action: 'lock' | 'next' | 'start' | 'finish' | 'watch' | 'revert'; bakeId: string } & Cursor)
  | ({ action: 'judge' | 'watch-poll'; bakeId: string; alarms: DescribedAlarm[] } & Cursor)
  /** `index`: the phase AppConfig refused (absent from executions of an older definition: the current one). */
  | ({ action: 'invalid'; bakeId: string; index?: number; error?: TaskError } & Cursor)
  /** `input` is the machine's state when it got here: with `error` when a step failed, and the history cursor. */
  | { action: 'cleanup'; bakeId: string; error?: TaskError; input?: { error?: TaskError; historyLength?: number } };

/** One profile in GET /configs. */
interface ProfileView {
  control: string;
  experiment?: { version: string; weightPercent: number; bakeId: string };
  versions: string[];
}

const MAX_CONFLICT_RETRIES = 8;
/** A RUNNING bake whose execution has not started this long after its creation never will. */
const NEVER_STARTED_MS = 60_000;

export class BakeService {
  private readonly timeScale: number;
  private readonly gauge: BakeGauge;

  constructor(
    private readonly control: ControlStore,
    private readonly versions: ConfigVersions,
    private readonly ids: AppConfigIds,
    private readonly metrics: ArmMetricsReader,
    private readonly runner: BakeRunner,
    private readonly clock: Clock,
    options: BakeServiceOptions = {},
  ) {
    this.timeScale = options.timeScale ?? 1;
    this.gauge = options.gauge ?? (() => {});
  }

  /** Bake seconds as real milliseconds. */
  private ms(seconds: number): number {
    return (seconds * 1000) / this.timeScale;
  }

  // ---- Configs ------------------------------------------------------------------------------

  async listConfigs(): Promise<{ profiles: Record<string, ProfileView> }> {
    const item = await this.control.getRollout(true);
    const exp = liveExperiment(item.state, this.clock.now());
    const profiles: Record<string, ProfileView> = {};
    const lists = await Promise.all(PROFILES.map((p) => this.versions.list(p)));
    PROFILES.forEach((p, i) => {
      profiles[p] = {
        control: item.state.control[p],
        ...(exp?.profile === p ? { experiment: { version: exp.version, weightPercent: exp.weightPercent, bakeId: exp.bakeId } } : {}),
        versions: lists[i]!,
      };
    });
    return { profiles };
  }

  async createVersion(profile: string, content: unknown, description?: string): Promise<{ profile: ProfileName; version: string }> {
    if (!isProfile(profile)) throw profileNotFound(profile);
    const problems = checkProfileContent(profile, content);
    if (problems.length) {
      // A problem can quote a field name the caller sent: clipped.
      const named = problems.slice(0, 5).map((p) => clip(p, 200));
      throw validation(
        `The content does not fit the ${profile} profile's JSON Schema: ${named.join('; ')}. Fix these fields and send it again.`,
      );
    }
    try {
      return { profile, version: await this.versions.create(profile, content, description) };
    } catch (e) {
      if ((e as { name?: string }).name === 'BadRequestException') {
        throw validation(`AppConfig refused the content: ${clip((e as Error).message, 300)}`);
      }
      throw e;
    }
  }

  async getVersion(profile: string, version: string): Promise<{ profile: ProfileName; version: string; content: unknown }> {
    if (!isProfile(profile)) throw profileNotFound(profile);
    const content = await this.versions.get(profile, version);
    if (content === undefined) throw versionNotFound(profile, version);
    return { profile, version, content };
  }

  /** The deploy-time upgrade's backfill (`backfillRolloutContents`) over this service's Control table and AppConfig. */
  backfillContents(): Promise<BackfillOutcome> {
    return backfillRolloutContents(this.control, this.versions, this.clock.now());
  }

  // ---- Bakes (admin routes) -------------------------------------------------------------------

  async startBake(changes: { profile: ProfileName; version: string }[], settings: BakeSettings): Promise<{ bakeId: string }> {
    // The copies hosts will serve, taken now (versions are immutable): the state machine's tasks
    // and the hosts then never call AppConfig for them.
    const missing: string[] = [];
    const unservable: string[] = [];
    const withContent: { profile: ProfileName; version: string; content: string }[] = [];
    for (const c of changes) {
      const content = await servableContent(this.versions, c.profile, c.version);
      if (content === undefined) missing.push(`${c.profile} version ${c.version}`);
      else if ('problem' in content) unservable.push(`${c.profile} version ${c.version} ${content.problem}`);
      else withContent.push({ ...c, content: content.text });
    }
    if (missing.length)
      throw validation(`These versions do not exist: ${missing.join(', ')}. Create them with POST /configs/{profile}/versions first.`);
    if (unservable.length) {
      throw validation(
        `These versions cannot be served: ${unservable.join('; ')}. Create a version that fits the profile's schema with POST /configs/{profile}/versions and bake that.`,
      );
    }

    const bakeId = `b-${randomBytes(12).toString('base64url')}`;
    const now = this.clock.now();
    // The lock and the record's deadline cover every phase and the watch after them.
    const budget = changes.length * phaseBudgetSeconds(settings, PICKUP_SECONDS) + watchBudgetSeconds(settings, WATCH_SETTLE_SECONDS);
    const lockExpiresAtMs = now + this.ms(budget) + 300_000;
    const fetched = new Map<string, string | undefined>();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.updateRollout((item) =>
          fillMissingContents(takeLock(item, bakeId, this.clock.now(), lockExpiresAtMs), this.versions, fetched),
        );
        break;
      } catch (e) {
        if (!(e instanceof BakeStateError)) throw e;
        // A holder that never got going (its POST /bakes died between taking the lock and
        // starting the execution), or that already ended (its execution died between recording
        // the end and releasing the lock), is cleaned up rather than blocking bakes until its
        // deadline.
        if (attempt === 0 && (await this.cleanupDeadHolder())) continue;
        throw bakeInProgress(e.message);
      }
    }
    await this.control.putBake({ ...newBake(bakeId, withContent, settings, now), deadlineMs: lockExpiresAtMs });
    try {
      await this.runner.start(bakeId);
    } catch (e) {
      await this.cleanup(bakeId, { Error: 'StartExecutionFailed', Cause: (e as Error).message });
      throw busy('The bake could not be started (its state machine did not start).', 5);
    }
    return { bakeId };
  }

  /**
   * Releases the lock of a bake that never started its execution, or whose record says it
   * already ended; true when it did so (or the lock is gone).
   */
  private async cleanupDeadHolder(): Promise<boolean> {
    const lock = (await this.control.getRollout(true)).lock;
    if (!lock) return true;
    const b = await this.control.getBake(lock.bakeId);
    const now = this.clock.now();
    const holder = lock.bakeId;
    if (b && b.status !== 'RUNNING') {
      // Its end is recorded; only the release was lost. cleanup leaves an ended record as it is.
      await this.cleanup(holder);
      return true;
    }
    // With no record at all, only a lock older than the grace period is taken as dead.
    const stale = b
      ? b.executionStartedAtMs === undefined && now - b.createdAtMs > NEVER_STARTED_MS
      : (lock.takenAtMs ?? 0) <= now - NEVER_STARTED_MS;
    if (!stale) return false;
    await this.cleanup(holder, {
      Error: 'NeverStarted',
      Cause: 'The request that started this bake stopped before its state machine started; a later POST /bakes cleaned it up.',
    });
    return true;
  }

  async describe(bakeId: string): Promise<Record<string, unknown>> {
    if (!BAKE_ID.test(bakeId)) throw bakeNotFound(bakeId);
    const b = await this.control.getBake(bakeId);
    if (!b) throw bakeNotFound(bakeId);
    const { status, error } = reportedStatus(b, this.clock.now());
    const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    return {
      bakeId: b.bakeId,
      status,
      ...(error ? { error } : {}),
      abortRequested: b.abortRequested,
      createdAt: iso(b.createdAtMs),
      ...(b.endedAtMs ? { endedAt: iso(b.endedAtMs) } : {}),
      settings: reportedSettings(b),
      ...(b.watch
        ? {
            watch: {
              seconds: b.watch.seconds,
              startedAt: iso(b.watch.startedAtMs),
              firstPollAt: iso(b.watch.measureFromMs),
              polls: b.watch.polls,
              ...(b.watch.outcome ? { outcome: b.watch.outcome } : {}),
              ...(b.watch.fired ? { reason: b.watch.fired.reason } : {}),
              ...(b.watch.alarms ? { alarms: b.watch.alarms } : {}),
              ...(b.watch.endedAtMs ? { endedAt: iso(b.watch.endedAtMs) } : {}),
            },
          }
        : {}),
      history: b.history ?? [],
      phases: b.phases.map((p) => ({
        profile: p.profile,
        version: p.version,
        verdict: p.verdict,
        ...(p.reason ? { reason: p.reason } : {}),
        ...(p.alarms ? { alarms: p.alarms } : {}),
        ...(p.arms ? { arms: p.arms } : {}),
        polls: p.polls,
        ...(p.extended ? { extended: true } : {}),
        ...(p.startedAtMs ? { startedAt: iso(p.startedAtMs) } : {}),
        ...(p.endedAtMs ? { endedAt: iso(p.endedAtMs) } : {}),
        ...(p.controlVersion !== undefined ? { controlVersion: p.controlVersion } : {}),
        ...(p.diff ? { diff: p.diff } : {}),
      })),
    };
  }

  async abort(bakeId: string): Promise<void> {
    if (!BAKE_ID.test(bakeId)) throw bakeNotFound(bakeId);
    await this.updateBake(bakeId, (b) => {
      if (b.status !== 'RUNNING') throw bakeNotRunning(bakeId, b.status);
      if (b.abortRequested) return b; // asked again: nothing new to record
      return recordTransitions({ ...b, abortRequested: true }, [{ type: 'AbortRequested', atMs: this.clock.now() }]);
    });
  }

  // ---- Tasks of the state machine -------------------------------------------------------------

  async task(t: BakeTask): Promise<BakeStep> {
    switch (t.action) {
      case 'lock':
        return this.lockTask(t.bakeId, t.from);
      case 'next':
        return this.next(t.bakeId, t.from);
      case 'invalid':
        return this.invalid(t.bakeId, t.index, t.error, t.from);
      case 'start':
        return this.start(t.bakeId, t.from);
      case 'judge':
        return this.judge(t.bakeId, t.alarms, t.from);
      case 'watch':
        return this.startWatch(t.bakeId, t.from);
      case 'watch-poll':
        return this.watchPoll(t.bakeId, t.alarms, t.from);
      case 'revert':
        return this.revert(t.bakeId, t.from);
      case 'finish':
        return this.finish(t.bakeId, t.from);
      case 'cleanup':
        return this.cleanup(t.bakeId, t.error ?? t.input?.error, t.input?.historyLength);
    }
  }

  /** A task's output: `step`, with the history from `from` on as its events (see the file's doc). */
  private stepOf(b: BakeRecord, from: number | undefined, step: Omit<BakeStep, 'bakeId' | 'events' | 'historyLength'> = {}): BakeStep {
    const history = b.history ?? [];
    const start = typeof from === 'number' && Number.isInteger(from) && from > 0 ? from : 0;
    return { bakeId: b.bakeId, ...step, events: history.slice(start), historyLength: history.length };
  }

  private async lockTask(bakeId: string, from?: number): Promise<BakeStep> {
    const b = await this.mustGetBake(bakeId);
    const deadline = b.deadlineMs ?? this.clock.now() + 3_600_000;
    await this.updateRollout((item) => takeLock(item, bakeId, this.clock.now(), deadline));
    const marked = await this.updateBake(bakeId, (cur) =>
      cur.executionStartedAtMs === undefined ? { ...cur, executionStartedAtMs: this.clock.now() } : cur,
    );
    return this.stepOf(marked, from);
  }

  private async next(bakeId: string, from?: number): Promise<BakeStep> {
    const b = await this.mustGetBake(bakeId);
    if (b.abortRequested) return this.stepOf(b, from, { done: true, decision: 'ABORT' });
    const i = currentPhase(b);
    if (i < 0) return this.stepOf(b, from, { done: true, ...(shouldWatch(b) ? { watchNext: true } : {}) });
    return this.stepOf(b, from, this.phaseStep(b, i));
  }

  private phaseStep(b: BakeRecord, i: number): Pick<BakeStep, 'done' | 'phase'> {
    const p = b.phases[i]!;
    return {
      done: false,
      phase: {
        index: i,
        profile: p.profile,
        version: p.version,
        applicationId: this.ids.applicationId,
        profileId: this.ids.profiles[p.profile],
        pickupSeconds: PICKUP_SECONDS,
        pollSeconds: b.settings.pollSeconds,
      },
    };
  }

  /**
   * The version failed AppConfig's validators: reject the phase before anything goes live (a dry
   * run records the rejection it would make). Only phase `index`, and only while it is PENDING,
   * so a retry after a lost response does not reject the next phase too.
   */
  private async invalid(bakeId: string, index: number | undefined, error: TaskError | undefined, from?: number): Promise<BakeStep> {
    const b = await this.updateBake(bakeId, (cur) => {
      const i = index ?? currentPhase(cur);
      const p = cur.phases[i];
      if (p?.verdict !== 'PENDING') return cur;
      const now = this.clock.now();
      const verdict = verdictOf('REJECT', cur.settings.dryRun === true);
      const reason = `Invalid: version ${p.version} fails the ${p.profile} profile's validators (${error?.Error ?? 'validation failed'}: ${error?.Cause ?? 'no detail'}); it never went live.`;
      const phases = [...cur.phases];
      phases[i] = { ...p, verdict, reason, endedAtMs: now };
      return recordTransitions({ ...cur, phases }, [
        { type: transitionOf(verdict), atMs: now, phase: i, profile: p.profile, version: p.version, verdict, reason, polls: 0 },
      ]);
    });
    return this.stepOf(b, from);
  }

  private async start(bakeId: string, from?: number): Promise<BakeStep> {
    const b = await this.mustGetBake(bakeId);
    const i = currentPhase(b);
    if (i < 0) throw new BakeStateError('NoCurrentPhase', `Bake ${bakeId} has no phase to start.`);
    const p = b.phases[i]!;
    // The bake function does not read AppConfig: a record from before phases kept their content
    // cannot start its experiment (the catch cleans up; the operator starts the bake again).
    if (p.content === undefined) {
      throw new BakeStateError(
        'NoContent',
        `Bake ${bakeId} has no copy of version ${p.version} of profile ${p.profile} (it was started before bakes kept one); start the bake again.`,
      );
    }
    const content = p.content;
    const now = this.clock.now();
    const expiresAtMs = now + this.ms(phaseBudgetSeconds(b.settings, PICKUP_SECONDS));
    // The control the phase is tested against, as the put that starts the experiment saw it (the
    // last attempt's, should a lost race make it read again). Under the lock no one else changes
    // a control, so a retried start sees the same.
    let control: { version: string; content?: string } = { version: '' };
    await this.updateRollout((item) => {
      const version = item.state.control[p.profile];
      const text = contentOf(item.state, p.profile, version);
      control = { version, ...(text !== undefined ? { content: text } : {}) };
      return startExperiment(
        item,
        { profile: p.profile, version: p.version, weightPercent: b.settings.weightPercent, bakeId, expiresAtMs },
        content,
      );
    });
    const diff = control.content !== undefined ? diffOf(p.profile, control.content, content) : undefined;
    const recorded = await this.updateBake(bakeId, (cur) => {
      const phases = [...cur.phases];
      const ph = phases[i]!;
      if (ph.verdict === 'BAKING') return cur; // a retried start
      phases[i] = {
        ...ph,
        verdict: 'BAKING',
        startedAtMs: now,
        measureFromMs: now + this.ms(PICKUP_SECONDS),
        polls: 0,
        controlVersion: control.version,
        ...(control.content !== undefined ? { controlContent: control.content } : {}),
        ...(diff ? { diff } : {}),
      };
      return recordTransitions({ ...cur, phases }, [
        {
          type: 'PhaseBaking',
          atMs: now,
          phase: i,
          profile: p.profile,
          version: p.version,
          controlVersion: control.version,
          weightPercent: cur.settings.weightPercent,
          ...(diff ? { diff } : {}),
          ...(cur.settings.dryRun ? { dryRun: true } : {}),
        },
      ]);
    });
    this.gauge(p.profile, b.settings.weightPercent, Number(p.version));
    // Always the phase just started, even if an abort has been requested meanwhile: the state
    // machine waits and polls on it, and its first Judge honours the abort.
    return this.stepOf(recorded, from, this.phaseStep(b, i));
  }

  /**
   * One poll of the baking phase. On a decision the rollout state changes first (approval makes
   * the version control; a rejection, and any verdict of a dry run, only clears the experiment),
   * then the verdict is recorded; a crash between the two leaves the phase BAKING over a state
   * whose experiment is gone, and the retried poll decides and writes again (approve and clear
   * are idempotent).
   */
  private async judge(bakeId: string, rawAlarms: DescribedAlarm[], from?: number): Promise<BakeStep> {
    const alarms = rawAlarms.map(alarmSnapshotOf);
    const b = await this.mustGetBake(bakeId);
    const i = b.phases.findIndex((p) => p.verdict === 'BAKING');
    if (i < 0) return this.stepOf(b, from, { decision: 'DECIDED' }); // a retried judge whose verdict is already recorded
    const phase = { ...b.phases[i]!, polls: b.phases[i]!.polls + 1 };
    const now = this.clock.now();
    const series = await this.metrics.armSeries(phase.measureFromMs ?? phase.startedAtMs ?? now, now);
    const arms = { control: totalsOf(series.control), experiment: totalsOf(series.experiment) };
    const judgement = judge(series, judgeSettingsOf(b.settings));
    const decision = decidePoll({ phase, settings: b.settings, alarms, judgement, abortRequested: b.abortRequested });
    if (decision.action === 'ABORT') return this.stepOf(b, from, { ...this.phaseStep(b, i), decision: 'ABORT' });
    const dryRun = b.settings.dryRun === true;
    if (decision.action === 'APPROVE' && !dryRun) {
      await this.updateRollout((item) => approve(item, bakeId, phase.profile, phase.version, phase.content));
      this.gauge(phase.profile, 0, Number(phase.version));
    } else if (decision.action !== 'CONTINUE') {
      await this.updateRollout((item) => ({ ...item, state: clearExperiment(item.state, bakeId) }));
      this.gauge(phase.profile, 0, Number(phase.version));
    } else {
      this.gauge(phase.profile, b.settings.weightPercent, Number(phase.version));
    }
    const recorded = await this.updateBake(bakeId, (cur) => {
      const phases = [...cur.phases];
      const base = phases[i]!;
      if (base.verdict !== 'BAKING') return cur;
      const where = { phase: i, profile: base.profile, version: base.version, polls: phase.polls, arms };
      if (decision.action === 'CONTINUE') {
        phases[i] = { ...base, polls: phase.polls, alarms, arms, ...(decision.extended ? { extended: true } : {}) };
        const extendedNow = decision.extended && !base.extended;
        const reason = `Not decided at the end of the bake time (${phase.polls} polls): extended once by ${Math.ceil(phase.polls / 2)} polls. ${judgement.reason}`;
        return recordTransitions({ ...cur, phases }, extendedNow ? [{ type: 'PhaseExtended', atMs: now, ...where, reason }] : []);
      }
      const verdict = verdictOf(decision.action, dryRun);
      phases[i] = { ...base, polls: phase.polls, alarms, arms, verdict, reason: decision.reason, endedAtMs: now };
      const inAlarm = alarms.filter((a) => a.state === 'ALARM').map((a) => a.name);
      return recordTransitions({ ...cur, phases }, [
        {
          type: transitionOf(verdict),
          atMs: now,
          ...where,
          verdict,
          reason: decision.reason,
          ...(inAlarm.length ? { alarmsInAlarm: inAlarm } : {}),
          ...(dryRun ? { dryRun: true } : {}),
        },
      ]);
    });
    return this.stepOf(recorded, from, { ...this.phaseStep(b, i), decision: decision.action === 'CONTINUE' ? 'CONTINUE' : 'DECIDED' });
  }

  /** The watch's waits, in the machine's seconds. */
  private watchTimes(b: BakeRecord): { settleSeconds: number; pollSeconds: number } {
    return { settleSeconds: WATCH_SETTLE_SECONDS, pollSeconds: b.settings.pollSeconds };
  }

  /** Starts the watch after promotion (once: a retried start finds it started). */
  private async startWatch(bakeId: string, from?: number): Promise<BakeStep> {
    const b = await this.updateBake(bakeId, (cur) => {
      if (cur.watch || cur.status !== 'RUNNING') return cur;
      const now = this.clock.now();
      const seconds = cur.settings.finalBakeSeconds ?? 0;
      const promoted = promotedPhases(cur).map((i) => {
        const p = cur.phases[i]!;
        return { profile: p.profile, version: p.version, ...(p.controlVersion !== undefined ? { controlVersion: p.controlVersion } : {}) };
      });
      return recordTransitions(
        { ...cur, watch: { seconds, startedAtMs: now, measureFromMs: now + this.ms(WATCH_SETTLE_SECONDS), polls: 0 } },
        [
          {
            type: 'WatchStarted',
            atMs: now,
            finalBakeSeconds: seconds,
            pollSeconds: cur.settings.pollSeconds,
            settleSeconds: WATCH_SETTLE_SECONDS,
            promoted,
          },
        ],
      );
    });
    return this.stepOf(b, from, { watch: this.watchTimes(b) });
  }

  /**
   * One poll of the watch, over the SLO alarms the state machine read (domain decideWatchPoll:
   * no judge, no experiment alarms; there is no experiment arm after promotion). FIRED is
   * recorded, with the alarm and its numbers, before Revert runs, so a retried Revert knows why.
   */
  private async watchPoll(bakeId: string, rawAlarms: DescribedAlarm[], from?: number): Promise<BakeStep> {
    const alarms = rawAlarms.map(alarmSnapshotOf);
    const b = await this.mustGetBake(bakeId);
    const w = b.watch;
    if (!w) throw new BakeStateError('NoCurrentPhase', `Bake ${bakeId} has no watch to poll.`);
    const times = this.watchTimes(b);
    // A retried poll whose decision is already recorded: the same decision again.
    if (w.outcome === 'PASSED' || w.outcome === 'FIRED') return this.stepOf(b, from, { watch: times, decision: w.outcome });
    if (w.outcome || b.status !== 'RUNNING') return this.stepOf(b, from, { watch: times, decision: 'ABORT' });
    const polls = w.polls + 1;
    const decision = decideWatchPoll({ polls, settings: b.settings, alarms, abortRequested: b.abortRequested });
    if (decision.action === 'ABORT') return this.stepOf(b, from, { watch: times, decision: 'ABORT' });
    const now = this.clock.now();
    // What all traffic did during the watch, for WatchPassed's numbers: best effort, as a
    // CloudWatch read failing must not fail a watch that passed.
    let traffic: ArmStats | undefined;
    if (decision.action === 'PASS') {
      try {
        const s = await this.metrics.armSeries(w.measureFromMs, now);
        traffic = sumArms(totalsOf(s.control), totalsOf(s.experiment));
      } catch {
        traffic = undefined;
      }
    }
    const recorded = await this.updateBake(bakeId, (cur) => {
      const cw = cur.watch;
      if (!cw || cw.outcome || cur.status !== 'RUNNING') return cur;
      const watch = { ...cw, polls, alarms };
      switch (decision.action) {
        case 'CONTINUE':
          return { ...cur, watch };
        case 'PASS':
          return recordTransitions({ ...cur, watch: { ...watch, outcome: 'PASSED', endedAtMs: now } }, [
            { type: 'WatchPassed', atMs: now, polls, finalBakeSeconds: cw.seconds, ...(traffic ? { traffic } : {}) },
          ]);
        case 'FIRE':
          return recordTransitions(
            { ...cur, watch: { ...watch, outcome: 'FIRED', fired: { alarm: decision.alarm, reason: decision.reason }, endedAtMs: now } },
            [{ type: 'WatchFired', atMs: now, polls, reason: decision.reason, alarm: decision.alarm }],
          );
      }
    });
    const out = recorded.watch?.outcome;
    return this.stepOf(recorded, from, {
      watch: times,
      decision: out === 'PASSED' || out === 'FIRED' ? out : out || recorded.status !== 'RUNNING' ? 'ABORT' : 'CONTINUE',
    });
  }

  /**
   * The watch fired: every phase this bake promoted goes back, last first, to the control it was
   * tested against (domain revertPhase: only while that control is still this bake's version),
   * each revert recorded on its phase (REVERTED, with the alarm in numbers) right after its
   * write; then the bake ends REVERTED and the lock is released. Last first: each state hosts
   * pass through is one the bake itself served earlier (the baseline of a later phase), and two
   * phases of one profile unwind in order. Crash-safe: a retry skips phases already recorded
   * REVERTED, finds a write whose record was lost as ALREADY_REVERTED, and an ended record
   * only has its lock released.
   */
  private async revert(bakeId: string, from?: number): Promise<BakeStep> {
    let b = await this.mustGetBake(bakeId);
    if (b.status === 'RUNNING') {
      const fired = b.watch?.fired;
      if (!fired) throw new BakeStateError('NoCurrentPhase', `Bake ${bakeId}: the watch did not fire; there is nothing to revert.`);
      for (const i of promotedPhases(b).reverse()) {
        const phase = b.phases[i]!;
        let outcome: RevertOutcome = 'SUPERSEDED';
        let controlNow = '';
        await this.updateRollout((item) => {
          const r = revertPhase(item, bakeId, phase);
          outcome = r.outcome;
          controlNow = item.state.control[phase.profile];
          return r.item;
        });
        const now = this.clock.now();
        b = await this.updateBake(bakeId, (cur) => {
          const p = cur.phases[i]!;
          if (p.verdict !== 'APPROVED' || cur.status !== 'RUNNING') return cur;
          const phases = [...cur.phases];
          if (outcome === 'REVERTED' || outcome === 'ALREADY_REVERTED') {
            const reason = `Reverted to version ${p.controlVersion} after promotion: ${fired.reason}`;
            phases[i] = { ...p, verdict: 'REVERTED', reason };
            return recordTransitions({ ...cur, phases }, [
              {
                type: 'PhaseReverted',
                atMs: now,
                phase: i,
                profile: p.profile,
                version: p.version,
                controlVersion: p.controlVersion,
                verdict: 'REVERTED',
                reason,
                alarm: fired.alarm,
              },
            ]);
          }
          // Left as it is, and said why (under the lock neither happens to a bake of this version).
          const why =
            outcome === 'NO_CONTROL'
              ? `the phase has no copy of its control's content (a record from before it was kept), so hosts could not serve a revert`
              : `${p.profile}'s control is now version ${controlNow}, not this bake's ${p.version}`;
          phases[i] = { ...p, reason: `${p.reason ?? 'Approved.'} Not reverted after the watch fired: ${why}.` };
          return { ...cur, phases };
        });
      }
      const now = this.clock.now();
      b = await this.updateBake(bakeId, (cur) =>
        cur.status !== 'RUNNING'
          ? cur
          : recordTransitions({ ...cur, status: 'REVERTED', endedAtMs: now }, [
              { type: 'BakeEnded', atMs: now, status: 'REVERTED', reason: fired.reason, verdicts: verdictsOf(cur) },
            ]),
      );
    }
    await this.updateRollout((item) => releaseLock(item, bakeId));
    return this.stepOf(b, from, { status: b.status });
  }

  private async finish(bakeId: string, from?: number): Promise<BakeStep> {
    const b = await this.updateBake(bakeId, (cur) => {
      if (cur.status !== 'RUNNING') return cur;
      const now = this.clock.now();
      return recordTransitions({ ...cur, status: 'SUCCEEDED', endedAtMs: now }, [
        { type: 'BakeEnded', atMs: now, status: 'SUCCEEDED', verdicts: verdictsOf(cur) },
      ]);
    });
    await this.updateRollout((item) => releaseLock(item, bakeId));
    return this.stepOf(b, from, { status: 'SUCCEEDED' });
  }

  /**
   * The end of every path that is not a normal finish or a revert (abort, a task failure, a
   * timeout caught by the machine): clear this bake's experiment, release its lock, close its
   * phase and its watch, and record the status. Safe to run twice and when the bake never took
   * the lock. An abort during the watch ends it here: nothing is reverted, the promoted versions
   * stay control (the operator stopped the bake, including its power to revert).
   *
   * One exception: a watch that fired and whose Revert failed past its retries (a Lambda
   * throttle for two minutes) is reverted here, with Cleanup's longer retries, before anything
   * else; only if that fails too does the bake end FAILED, with the versions not yet reverted
   * still control and the error saying so.
   */
  async cleanup(bakeId: string, error?: TaskError, from?: number): Promise<BakeStep> {
    const before = await this.control.getBake(bakeId);
    if (before?.status === 'RUNNING' && before.watch?.outcome === 'FIRED') {
      try {
        return await this.revert(bakeId, from);
      } catch (e) {
        error = { Error: 'RevertFailed', Cause: `The watch fired, and reverting the promoted versions failed: ${(e as Error).message}` };
      }
    }
    await this.updateRollout((item) => releaseLock(item, bakeId));
    let status: BakeStatus = 'FAILED';
    const now = this.clock.now();
    const existing = await this.control.getBake(bakeId);
    if (!existing) return { bakeId, status, events: [], historyLength: 0 };
    const done = await this.updateBake(bakeId, (b) => {
      if (b.status !== 'RUNNING') return b;
      const aborted = b.abortRequested && !error;
      const why = aborted
        ? 'Aborted by an operator'
        : `The bake failed: ${error?.Error ?? 'unknown error'}${error?.Cause ? ` (${error.Cause.slice(0, 500)})` : ''}`;
      const ended: NewTransition[] = [];
      const phases = b.phases.map((p, i) => {
        if (p.verdict !== 'BAKING') return p;
        const reason = `${why}; the experiment was cleared.`;
        ended.push({
          type: 'PhaseRejected',
          atMs: now,
          phase: i,
          profile: p.profile,
          version: p.version,
          verdict: 'REJECTED',
          reason,
          polls: p.polls,
        });
        return { ...p, verdict: 'REJECTED' as const, reason, endedAtMs: now };
      });
      const next: BakeRecord = {
        ...b,
        phases,
        status: aborted ? 'ABORTED' : 'FAILED',
        endedAtMs: now,
        ...(b.watch && !b.watch.outcome ? { watch: { ...b.watch, outcome: aborted ? 'ABORTED' : 'FAILED', endedAtMs: now } } : {}),
        ...(aborted ? {} : { error: why }),
      };
      ended.push({ type: 'BakeEnded', atMs: now, status: next.status, ...(aborted ? {} : { reason: why }), verdicts: verdictsOf(next) });
      return recordTransitions(next, ended);
    });
    status = done.status;
    const live = done.phases.find((p) => p.startedAtMs !== undefined && p.endedAtMs === now);
    if (live) this.gauge(live.profile, 0, Number(live.version));
    return this.stepOf(done, from, { status });
  }

  // ---- Storage helpers ------------------------------------------------------------------------

  private async mustGetBake(bakeId: string): Promise<BakeRecord> {
    const b = await this.control.getBake(bakeId);
    if (!b) throw bakeNotFound(bakeId);
    return b;
  }

  private async updateRollout(change: (item: RolloutItem) => RolloutItem | Promise<RolloutItem>): Promise<RolloutItem> {
    return (await updateRollout(this.control, change)).item;
  }

  private async updateBake(bakeId: string, change: (b: BakeRecord) => BakeRecord): Promise<BakeRecord> {
    for (let attempt = 0; ; attempt++) {
      const b = await this.mustGetBake(bakeId);
      const next = change(b);
      if (next === b) return b;
      try {
        return await this.control.putBake(next);
      } catch (e) {
        if (!(e instanceof ConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw e;
      }
    }
  }
}

// ---- The rollout item's storage, and the contents of versions it names ----------------------------

/**
 * Read, change, conditional write; again on a lost race. Writes nothing when `change` returns the
 * item unchanged (`wrote` false). The write is conditional on the `rev` that was read, so it
 * never overwrites a state someone else wrote in between: that state is read and changed anew.
 */
export async function updateRollout(
  control: Pick<ControlStore, 'getRollout' | 'putRollout'>,
  change: (item: RolloutItem) => RolloutItem | Promise<RolloutItem>,
): Promise<{ item: RolloutItem; wrote: boolean }> {
  for (let attempt = 0; ; attempt++) {
    const item = await control.getRollout(true);
    const next = await change(item);
    if (next === item || JSON.stringify(next) === JSON.stringify(item)) return { item, wrote: false };
    try {
      return { item: await control.putRollout(next), wrote: true };
    } catch (e) {
      if (!(e instanceof ConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw e;
    }
  }
}

/**
 * A version's content as the JSON text hosts will serve, read from AppConfig; undefined when
 * the version does not exist, `problem` when it cannot be served (not JSON, or too big to be
 * a valid version: every content that fits a profile's schema is far smaller).
 */
export async function servableContent(
  versions: Pick<ConfigVersions, 'get'>,
  profile: ProfileName,
  version: string,
): Promise<{ text: string } | { problem: string } | undefined> {
  let content: unknown;
  try {
    content = await versions.get(profile, version);
  } catch (e) {
    if (e instanceof SyntaxError) return { problem: 'is not JSON' };
    throw e;
  }
  if (content === undefined) return undefined;
  const text = JSON.stringify(content);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_SERVED_CONTENT_BYTES)
    return { problem: `is ${bytes} bytes of JSON, over the ${MAX_SERVED_CONTENT_BYTES} a served version may have` };
  return { text };
}

/**
 * The item with the content of every version it names that it lacks, copied from AppConfig
 * (only a rollout item written before contents were kept lacks any); the item itself when it
 * lacks none, so a caller writes nothing then. `fetched` keeps what was read across retries of
 * a lost race: versions are immutable, so a copy read once is never stale. A version AppConfig
 * no longer has (or whose content cannot be served) stays without.
 */
export async function fillMissingContents(
  item: RolloutItem,
  versions: Pick<ConfigVersions, 'get'>,
  fetched: Map<string, string | undefined>,
): Promise<RolloutItem> {
  let state = item.state;
  for (const { profile, version } of missingContents(state)) {
    const key = `${profile}:${version}`;
    if (!fetched.has(key)) {
      const content = await servableContent(versions, profile, version);
      fetched.set(key, content && 'text' in content ? content.text : undefined);
    }
    const text = fetched.get(key);
    if (text !== undefined) state = withContents(state, { profile, version, content: text });
  }
  return state === item.state ? item : { ...item, state };
}

/** What the deploy-time backfill did. */
export interface BackfillOutcome {
  /** Whether this run wrote the rollout item: false when nothing was missing (a fresh or already upgraded item, a re-run), or a concurrent writer filled it first. */
  wrote: boolean;
  /** The versions whose content this run copied in, as `profile version`. */
  filled: string[];
  /** Versions the item still names without content, none of which hosts serve now (an expired experiment's). */
  unfilled: string[];
}

/** The versions the state names without content that hosts serve now: the control versions, and the live experiment's. */
function servedWithoutContent(state: RolloutState, nowMs: number): { profile: ProfileName; version: string }[] {
  const live = liveExperiment(state, nowMs);
  return missingContents(state).filter(
    (m) => state.control[m.profile] === m.version || (live !== undefined && live.profile === m.profile && live.version === m.version),
  );
}

/**
 * The deploy-time upgrade of the rollout item (lambdas/handlers/upgrade.ts, run by a
 * CloudFormation trigger before the data routes' functions get the code that serves from
 * contents alone): copies from AppConfig the content of every version the item names without
 * one, with the same `fillMissingContents` POST /bakes uses.
 *
 * Idempotent, and safe against every writer. The write is one `rev`-conditional put of the state
 * that was read plus contents; a state someone wrote in between (a POST /bakes, a bake task, an
 * older deployment's admin function still finishing a request) makes it lose the race, read that
 * state and fill it anew, or find it complete and write nothing. Contents are copies of
 * immutable versions, so adding them changes nothing a host serves except that it can. A crash
 * or a lost response anywhere leaves either the old item (a retry redoes the same fill) or the
 * filled one (a retry finds nothing missing and writes nothing). An item with nothing missing
 * (a fresh deployment, which starts from INITIAL_ROLLOUT with its contents, or any re-run) costs
 * one consistent read and no write.
 *
 * Throws, after writing what it could, when a version hosts serve now (a control version, or
 * the live experiment's) is still without content: AppConfig no longer has it, or its content
 * cannot be served. Hosts of the new code could not serve it, so the deployment must not go on.
 */
export async function backfillRolloutContents(
  control: Pick<ControlStore, 'getRollout' | 'putRollout'>,
  versions: Pick<ConfigVersions, 'get'>,
  nowMs: number,
): Promise<BackfillOutcome> {
  const fetched = new Map<string, string | undefined>();
  const name = (v: { profile: ProfileName; version: string }) => `${v.profile} ${v.version}`;
  let filled: string[] = [];
  const { item, wrote } = await updateRollout(control, async (cur) => {
    const next = await fillMissingContents(cur, versions, fetched);
    const still = new Set(missingContents(next.state).map(name));
    filled = missingContents(cur.state)
      .map(name)
      .filter((v) => !still.has(v));
    return next;
  });
  const served = servedWithoutContent(item.state, nowMs);
  if (served.length) {
    const list = served.map((v) => `version ${v.version} of profile ${v.profile}`).join(', ');
    throw new UpgradeBlockedError(
      `The rollout item names ${list} without its content, and AppConfig has no servable copy of it (the version was deleted, or its content is not JSON or over ${MAX_SERVED_CONTENT_BYTES} bytes). ` +
        'The hosts of this version serve from the rollout item alone and could not serve it, so the upgrade stops and the deployment rolls back. ' +
        'On the running deployment, bake a version that AppConfig has (POST /bakes) until it is the control, then deploy again.',
    );
  }
  return { wrote, filled: wrote ? filled : [], unfilled: missingContents(item.state).map(name) };
}

/** The upgrade found a version hosts serve without content that it could not fill in (see backfillRolloutContents). */
export class UpgradeBlockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpgradeBlockedError';
  }
}

/** What `experimental` changes against `control` (two versions' JSON texts); undefined when either is not JSON. */
function diffOf(profile: ProfileName, control: string, experimental: string): ConfigDiff[] | undefined {
  try {
    return diffContents(profile, JSON.parse(control), JSON.parse(experimental));
  } catch {
    return undefined;
  }
}

/** Two arms' totals as one: all traffic. */
function sumArms(a: ArmStats, b: ArmStats): ArmStats {
  const p99 = [a.p99Ms, b.p99Ms].filter((x): x is number => x !== undefined);
  return {
    requests: a.requests + b.requests,
    errors4xx: a.errors4xx + b.errors4xx,
    errors5xx: a.errors5xx + b.errors5xx,
    ...(p99.length ? { p99Ms: Math.max(...p99) } : {}),
  };
}
