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
 */
import { randomBytes } from 'node:crypto';
import type { ControlStore } from '../adapters/control';
import type { AppConfigIds, ConfigVersions } from '../adapters/appconfig';
import { totalsOf, type ArmMetricsReader } from '../adapters/cloudwatch';
import { judge } from '../domain/judge';
import {
  approve,
  BakeStateError,
  clearExperiment,
  currentPhase,
  decidePoll,
  judgeSettingsOf,
  newBake,
  phaseBudgetSeconds,
  releaseLock,
  startExperiment,
  takeLock,
  type AlarmSnapshot,
  type BakeRecord,
  type BakeSettings,
  type BakeStatus,
  type RolloutItem,
} from '../domain/bake';
import { checkProfileContent, isProfile, liveExperiment, MAX_SERVED_CONTENT_BYTES, missingContents, PROFILES, withContents, type ProfileName, type RolloutState } from '../domain/config';
import { ApiError, busy, clip, ConflictError, validation } from '../domain/errors';
import { CONFIG_CACHE_SECONDS } from './rollout';
import type { Clock } from './logs';

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

export const profileNotFound = (profile: string): ApiError =>
  new ApiError(404, 'ProfileNotFound', `There is no config profile '${clip(profile, 200)}'. The profiles are ${PROFILES.join(' and ')}.`);
export const versionNotFound = (profile: string, version: string): ApiError =>
  new ApiError(404, 'VersionNotFound', `Profile ${profile} has no version '${clip(version, 200)}'. List the versions with GET /configs.`);
export const bakeNotFound = (bakeId: string): ApiError =>
  new ApiError(404, 'BakeNotFound', `There is no bake '${clip(bakeId, 200)}'. Start one with POST /bakes.`);
/**
 * What a bake id from a request can be (the service makes `b-` and 16 base64url characters). A
 * longer or odd one names no bake, and is answered 404 before storage sees it: DynamoDB refuses
 * a key over 2,048 bytes with an error of its own.
 */
const BAKE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Seconds a phase waits after starting its experiment before measuring: every host's cache has turned over. */
export const PICKUP_SECONDS = CONFIG_CACHE_SECONDS + 2;

/** What the state machine carries between tasks. */
export interface BakeStep {
  bakeId: string;
  /** `next`: no phase left (or abort requested). */
  done?: boolean;
  /** `judge`: CONTINUE polls again; DECIDED moves to the next phase; ABORT cleans up. */
  decision?: 'CONTINUE' | 'DECIDED' | 'ABORT';
  phase?: { index: number; profile: ProfileName; version: string; applicationId: string; profileId: string; pickupSeconds: number; pollSeconds: number };
  status?: BakeStatus;
}

export type BakeTask =
  | { action: 'lock' | 'next' | 'start' | 'finish'; bakeId: string }
  | { action: 'judge'; bakeId: string; alarms: { AlarmName?: string; StateValue?: string; StateReason?: string }[] }
  | { action: 'invalid'; bakeId: string; error?: { Error?: string; Cause?: string } }
  /** `input` is the machine's state when it got here: with `error` when a step failed. */
  | { action: 'cleanup'; bakeId: string; error?: { Error?: string; Cause?: string }; input?: { error?: { Error?: string; Cause?: string } } };

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
      throw validation(`The content does not fit the ${profile} profile's JSON Schema: ${named.join('; ')}. Fix these fields and send it again.`);
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
    if (missing.length) throw validation(`These versions do not exist: ${missing.join(', ')}. Create them with POST /configs/{profile}/versions first.`);
    if (unservable.length) {
      throw validation(`These versions cannot be served: ${unservable.join('; ')}. Create a version that fits the profile's schema with POST /configs/{profile}/versions and bake that.`);
    }

    const bakeId = `b-${randomBytes(12).toString('base64url')}`;
    const now = this.clock.now();
    const budget = changes.length * phaseBudgetSeconds(settings, PICKUP_SECONDS);
    const lockExpiresAtMs = now + this.ms(budget) + 300_000;
    const fetched = new Map<string, string | undefined>();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.updateRollout((item) => fillMissingContents(takeLock(item, bakeId, this.clock.now(), lockExpiresAtMs), this.versions, fetched));
        break;
      } catch (e) {
        if (!(e instanceof BakeStateError)) throw e;
        // A holder that never got going (its POST /bakes died between taking the lock and
        // starting the execution), or that already ended (its execution died between recording
        // the end and releasing the lock), is cleaned up rather than blocking bakes until its
        // deadline.
        if (attempt === 0 && (await this.cleanupDeadHolder())) continue;
        throw new ApiError(409, 'BakeInProgress', e.message);
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
    await this.cleanup(holder, { Error: 'NeverStarted', Cause: 'The request that started this bake stopped before its state machine started; a later POST /bakes cleaned it up.' });
    return true;
  }

  async describe(bakeId: string): Promise<Record<string, unknown>> {
    if (!BAKE_ID.test(bakeId)) throw bakeNotFound(bakeId);
    const b = await this.control.getBake(bakeId);
    if (!b) throw bakeNotFound(bakeId);
    let status: BakeStatus = b.status;
    let error = b.error;
    // A bake whose machinery died without cleanup (execution timed out or stopped): its lock and
    // its experiment have expired, so it is over; say so.
    const deadline = b.deadlineMs;
    if (status === 'RUNNING' && deadline !== undefined && this.clock.now() > deadline) {
      status = 'FAILED';
      error ??= 'The bake passed its deadline without finishing: its execution stopped without cleanup. Its lock and experiment have expired.';
    }
    const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    return {
      bakeId: b.bakeId,
      status,
      ...(error ? { error } : {}),
      abortRequested: b.abortRequested,
      createdAt: iso(b.createdAtMs),
      ...(b.endedAtMs ? { endedAt: iso(b.endedAtMs) } : {}),
      settings: b.settings,
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
      })),
    };
  }

  async abort(bakeId: string): Promise<void> {
    if (!BAKE_ID.test(bakeId)) throw bakeNotFound(bakeId);
    await this.updateBake(bakeId, (b) => {
      if (b.status !== 'RUNNING') throw new ApiError(409, 'BakeNotRunning', `Bake ${bakeId} is ${b.status}, not running; there is nothing to abort.`);
      return { ...b, abortRequested: true };
    });
  }

  // ---- Tasks of the state machine -------------------------------------------------------------

  async task(t: BakeTask): Promise<BakeStep> {
    switch (t.action) {
      case 'lock':
        return this.lockTask(t.bakeId);
      case 'next':
        return this.next(t.bakeId);
      case 'invalid':
        return this.invalid(t.bakeId, t.error);
      case 'start':
        return this.start(t.bakeId);
      case 'judge':
        return this.judge(t.bakeId, t.alarms);
      case 'finish':
        return this.finish(t.bakeId);
      case 'cleanup':
        return this.cleanup(t.bakeId, t.error ?? t.input?.error);
    }
  }

  private async lockTask(bakeId: string): Promise<BakeStep> {
    const b = await this.mustGetBake(bakeId);
    const deadline = b.deadlineMs ?? this.clock.now() + 3_600_000;
    await this.updateRollout((item) => takeLock(item, bakeId, this.clock.now(), deadline));
    await this.updateBake(bakeId, (cur) => (cur.executionStartedAtMs === undefined ? { ...cur, executionStartedAtMs: this.clock.now() } : cur));
    return { bakeId };
  }

  private async next(bakeId: string): Promise<BakeStep> {
    const b = await this.mustGetBake(bakeId);
    if (b.abortRequested) return { bakeId, done: true, decision: 'ABORT' };
    const i = currentPhase(b);
    if (i < 0) return { bakeId, done: true };
    return this.phaseStep(b, i);
  }

  private phaseStep(b: BakeRecord, i: number): BakeStep {
    const p = b.phases[i]!;
    return {
      bakeId: b.bakeId,
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

  /** The version failed AppConfig's validators: reject the phase before anything goes live. */
  private async invalid(bakeId: string, error: { Error?: string; Cause?: string } | undefined): Promise<BakeStep> {
    await this.updateBake(bakeId, (b) => {
      const i = currentPhase(b);
      if (i < 0) return b;
      const phases = [...b.phases];
      phases[i] = {
        ...phases[i]!,
        verdict: 'REJECTED',
        reason: `Invalid: version ${phases[i]!.version} fails the ${phases[i]!.profile} profile's validators (${error?.Error ?? 'validation failed'}: ${error?.Cause ?? 'no detail'}); it never went live.`,
        endedAtMs: this.clock.now(),
      };
      return { ...b, phases };
    });
    return { bakeId };
  }

  private async start(bakeId: string): Promise<BakeStep> {
    const b = await this.mustGetBake(bakeId);
    const i = currentPhase(b);
    if (i < 0) throw new BakeStateError('NoCurrentPhase', `Bake ${bakeId} has no phase to start.`);
    const p = b.phases[i]!;
    // The bake function does not read AppConfig: a record from before phases kept their content
    // cannot start its experiment (the catch cleans up; the operator starts the bake again).
    if (p.content === undefined) {
      throw new BakeStateError('NoContent', `Bake ${bakeId} has no copy of version ${p.version} of profile ${p.profile} (it was started before bakes kept one); start the bake again.`);
    }
    const content = p.content;
    const now = this.clock.now();
    const expiresAtMs = now + this.ms(phaseBudgetSeconds(b.settings, PICKUP_SECONDS));
    await this.updateRollout((item) =>
      startExperiment(item, { profile: p.profile, version: p.version, weightPercent: b.settings.weightPercent, bakeId, expiresAtMs }, content),
    );
    await this.updateBake(bakeId, (cur) => {
      const phases = [...cur.phases];
      const ph = phases[i]!;
      if (ph.verdict === 'BAKING') return cur; // a retried start
      phases[i] = { ...ph, verdict: 'BAKING', startedAtMs: now, measureFromMs: now + this.ms(PICKUP_SECONDS), polls: 0 };
      return { ...cur, phases };
    });
    this.gauge(p.profile, b.settings.weightPercent, Number(p.version));
    // Always the phase just started, even if an abort has been requested meanwhile: the state
    // machine waits and polls on it, and its first Judge honours the abort.
    return this.phaseStep(b, i);
  }

  private async judge(bakeId: string, rawAlarms: { AlarmName?: string; StateValue?: string; StateReason?: string }[]): Promise<BakeStep> {
    const alarms: AlarmSnapshot[] = rawAlarms.map((a) => ({
      name: a.AlarmName ?? '?',
      state: a.StateValue === 'ALARM' || a.StateValue === 'OK' ? a.StateValue : 'INSUFFICIENT_DATA',
      ...(a.StateReason ? { reason: a.StateReason } : {}),
    }));
    const b = await this.mustGetBake(bakeId);
    const i = b.phases.findIndex((p) => p.verdict === 'BAKING');
    if (i < 0) return { bakeId, decision: 'DECIDED' }; // a retried judge whose verdict is already recorded
    const phase = { ...b.phases[i]!, polls: b.phases[i]!.polls + 1 };
    const now = this.clock.now();
    const series = await this.metrics.armSeries(phase.measureFromMs ?? phase.startedAtMs ?? now, now);
    const arms = { control: totalsOf(series.control), experiment: totalsOf(series.experiment) };
    const judgement = judge(series, judgeSettingsOf(b.settings));
    const decision = decidePoll({ phase, settings: b.settings, alarms, judgement, abortRequested: b.abortRequested });
    if (decision.action === 'ABORT') return { bakeId, decision: 'ABORT' };
    if (decision.action === 'APPROVE') {
      await this.updateRollout((item) => approve(item, bakeId, phase.profile, phase.version, phase.content));
      this.gauge(phase.profile, 0, Number(phase.version));
    } else if (decision.action === 'REJECT') {
      await this.updateRollout((item) => ({ ...item, state: clearExperiment(item.state, bakeId) }));
      this.gauge(phase.profile, 0, Number(phase.version));
    } else {
      this.gauge(phase.profile, b.settings.weightPercent, Number(phase.version));
    }
    await this.updateBake(bakeId, (cur) => {
      const phases = [...cur.phases];
      const base = phases[i]!;
      if (base.verdict !== 'BAKING') return cur;
      phases[i] =
        decision.action === 'CONTINUE'
          ? { ...base, polls: phase.polls, alarms, arms, ...(decision.extended ? { extended: true } : {}) }
          : { ...base, polls: phase.polls, alarms, arms, verdict: decision.action === 'APPROVE' ? 'APPROVED' : 'REJECTED', reason: decision.reason, endedAtMs: now };
      return { ...cur, phases };
    });
    return { bakeId, decision: decision.action === 'CONTINUE' ? 'CONTINUE' : 'DECIDED' };
  }

  private async finish(bakeId: string): Promise<BakeStep> {
    await this.updateBake(bakeId, (b) => (b.status === 'RUNNING' ? { ...b, status: 'SUCCEEDED', endedAtMs: this.clock.now() } : b));
    await this.updateRollout((item) => releaseLock(item, bakeId));
    return { bakeId, status: 'SUCCEEDED' };
  }

  /**
   * The end of every path that is not a normal finish (abort, a task failure, a timeout caught
   * by the machine): clear this bake's experiment, release its lock, close its phase and record
   * the status. Safe to run twice and when the bake never took the lock.
   */
  async cleanup(bakeId: string, error?: { Error?: string; Cause?: string }): Promise<BakeStep> {
    await this.updateRollout((item) => releaseLock(item, bakeId));
    let status: BakeStatus = 'FAILED';
    const now = this.clock.now();
    const existing = await this.control.getBake(bakeId);
    if (existing) {
      const done = await this.updateBake(bakeId, (b) => {
        if (b.status !== 'RUNNING') return b;
        const aborted = b.abortRequested && !error;
        const why = aborted ? 'Aborted by an operator' : `The bake failed: ${error?.Error ?? 'unknown error'}${error?.Cause ? ` (${error.Cause.slice(0, 500)})` : ''}`;
        const phases = b.phases.map((p) => (p.verdict === 'BAKING' ? { ...p, verdict: 'REJECTED' as const, reason: `${why}; the experiment was cleared.`, endedAtMs: now } : p));
        return {
          ...b,
          phases,
          status: aborted ? 'ABORTED' : 'FAILED',
          endedAtMs: now,
          ...(aborted ? {} : { error: why }),
        };
      });
      status = done.status;
      const live = done.phases.find((p) => p.startedAtMs !== undefined && p.endedAtMs === now);
      if (live) this.gauge(live.profile, 0, Number(live.version));
    }
    return { bakeId, status };
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
  if (bytes > MAX_SERVED_CONTENT_BYTES) return { problem: `is ${bytes} bytes of JSON, over the ${MAX_SERVED_CONTENT_BYTES} a served version may have` };
  return { text };
}

/**
 * The item with the content of every version it names that it lacks, copied from AppConfig
 * (only a rollout item written before contents were kept lacks any); the item itself when it
 * lacks none, so a caller writes nothing then. `fetched` keeps what was read across retries of
 * a lost race: versions are immutable, so a copy read once is never stale. A version AppConfig
 * no longer has (or whose content cannot be served) stays without.
 */
export async function fillMissingContents(item: RolloutItem, versions: Pick<ConfigVersions, 'get'>, fetched: Map<string, string | undefined>): Promise<RolloutItem> {
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
    filled = missingContents(cur.state).map(name).filter((v) => !still.has(v));
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
