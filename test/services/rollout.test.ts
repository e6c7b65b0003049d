/**
 * RolloutConfig, the hosts' ConfigProvider, with an in-memory Control table (whose rollout item
 * carries the versions' contents) and a clock the test moves by hand: the pick-up bound,
 * caching, single flight, stale-on-error, and a bad or missing version hurting only its own arm.
 * It has no AppConfig to call: the only storage it reads is the rollout item.
 */
import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import { ConfigUnavailableError, RolloutConfig } from '../../lambdas/services/rollout';
import { ServiceError } from '../../lambdas/domain/errors';
import { refusalOf } from '../support/refusal';
import {
  armOf,
  DEFAULT_CONFIG,
  namedVersions,
  withContents,
  type EffectiveConfig,
  type Experiment,
  type ProfileName,
  type RolloutState,
} from '../../lambdas/domain/config';
import type { RolloutItem } from '../../lambdas/domain/bake';
import { prng } from '../domain/model';

const T0 = 1_700_000_000_000;
const CACHE_MS = 10_000;

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The Control table's rollout item, as the bake writes it; records when hosts read it. */
class FakeControl {
  item: RolloutItem;
  /** Clock time of each getRollout call. */
  readonly reads: number[] = [];
  /** When set, getRollout fails with it. */
  failWith: Error | undefined;
  /** When set, the next getRollout waits for this instead of answering at once. */
  gate: Deferred<void> | undefined;

  constructor(
    state: RolloutState,
    private readonly clock: { now(): number },
  ) {
    this.item = { state, rev: 1 };
  }

  write(state: RolloutState): void {
    this.item = { state, rev: this.item.rev + 1 };
  }

  async getRollout(_consistent: boolean): Promise<RolloutItem> {
    this.reads.push(this.clock.now());
    const gate = this.gate;
    this.gate = undefined;
    if (gate) await gate.promise;
    if (this.failWith) throw this.failWith;
    return structuredClone(this.item);
  }
}

/** The versions' contents, as the bake copies them from AppConfig into the rollout state. */
const CONTENTS: Record<string, unknown> = {
  'delivery:1': {},
  'limits:1': {},
  'limits:2': { maxRecordsPerAppend: 1 },
  'delivery:2': { maxBatchRecords: 7 },
  'limits:3': { maxRecordsPerAppend: 0 }, // does not fit the schema
};

/** A rollout state as the bake writes it: the content of every version it names beside it. */
function rollout(control: Record<ProfileName, string>, experiment?: Experiment): RolloutState {
  let state: RolloutState = { control, ...(experiment ? { experiment } : {}) };
  for (const n of namedVersions(state))
    state = withContents(state, { ...n, content: JSON.stringify(CONTENTS[`${n.profile}:${n.version}`]) });
  return state;
}

const BASE: RolloutState = rollout({ delivery: '1', limits: '1' });

function setup(opts: { state?: RolloutState } = {}) {
  const clock = {
    t: T0,
    now() {
      return this.t;
    },
  };
  const control = new FakeControl(opts.state ?? BASE, clock);
  const stale: unknown[] = [];
  const rc = new RolloutConfig(control, clock, CACHE_MS, (e) => stale.push(e));
  return { clock, control, stale, rc };
}

const experiment = (over: Partial<Experiment> = {}): Experiment => ({
  profile: 'limits',
  version: '2',
  weightPercent: 50,
  bakeId: 'bake-1',
  expiresAtMs: T0 + 3_600_000,
  ...over,
});

/** `n` keys in each arm of `e`. */
function keysByArm(e: Experiment, n: number): { control: string[]; experiment: string[] } {
  const out = { control: [] as string[], experiment: [] as string[] };
  for (let i = 0; out.control.length < n || out.experiment.length < n; i++) {
    const k = `session-${i}`;
    const list = out[armOf(e, k)];
    if (list.length < n) list.push(k);
  }
  return out;
}

/** Which control version of `limits` a request was served: tells the old state from the new. */
const limitsVersion = (e: EffectiveConfig): string => e.versions.limits;

describe('RolloutConfig: picking up a new rollout state', () => {
  it('serves the old state until the cache expires, and the new one from then on', async () => {
    const { clock, control, rc } = setup();
    expect(limitsVersion(await rc.forKey('k'))).toBe('1');
    expect(control.reads).toEqual([T0]);
    // Worst case: the state changes right after this host refreshed.
    control.write(rollout({ delivery: '1', limits: '2' }));
    for (const dt of [0, 1, CACHE_MS / 2, CACHE_MS - 1]) {
      clock.t = T0 + dt;
      expect({ dt, v: limitsVersion(await rc.forKey('k')) }).toEqual({ dt, v: '1' });
    }
    expect(control.reads).toEqual([T0]);
    for (const dt of [CACHE_MS, CACHE_MS + 1, 3 * CACHE_MS]) {
      clock.t = T0 + dt;
      expect({ dt, v: limitsVersion(await rc.forKey('k')) }).toEqual({ dt, v: '2' });
    }
  });

  it('over random request times and write times, every request at or after the last refresh + cacheMs sees the new state, none before', async () => {
    const rnd = prng(20240611);
    for (let run = 0; run < 40; run++) {
      const { clock, control, rc } = setup();
      const times: number[] = [];
      let t = T0;
      for (let i = 0; i < 60; i++) {
        t += rnd.int(0, 3) === 0 ? 0 : rnd.int(1, 4000);
        times.push(t);
      }
      const writeAt = rnd.int(T0, t);
      let written = false;
      let lastReadBeforeWrite = -Infinity;
      const served: { at: number; v: string }[] = [];
      for (const at of times) {
        if (!written && at >= writeAt) {
          lastReadBeforeWrite = control.reads.at(-1) ?? -Infinity;
          control.write(rollout({ delivery: '1', limits: '2' }));
          written = true;
        }
        clock.t = at;
        served.push({ at, v: limitsVersion(await rc.forKey(`k${at % 7}`)) });
      }
      for (const s of served) {
        if (s.at < writeAt) expect(s.v).toBe('1');
        // Pick-up bound: a request a full cache period after the last read that preceded the write sees it.
        else if (s.at >= lastReadBeforeWrite + CACHE_MS) expect({ run, ...s, v: s.v }).toEqual({ run, ...s, v: '2' });
        // Inside the cache period the host does not re-read: still the old state.
        else expect({ run, ...s, v: s.v }).toEqual({ run, ...s, v: '1' });
      }
      // Reads are at least a cache period apart.
      for (let i = 1; i < control.reads.length; i++) expect(control.reads[i]! - control.reads[i - 1]!).toBeGreaterThanOrEqual(CACHE_MS);
    }
  });
});

describe('RolloutConfig: caching', () => {
  it('serves every request from the rollout item alone: one read per cache period however many requests, each arm its content', async () => {
    const state: RolloutState = rollout(BASE.control, experiment());
    const { clock, control, rc } = setup({ state });
    const keys = keysByArm(state.experiment!, 50);
    // Sequential requests across many cache periods (the rollout state is re-read, with its contents).
    for (let i = 0; i < 200; i++) {
      clock.t = T0 + i * 1_000;
      const inExperiment = i % 2 === 0;
      const got = await rc.forKey(inExperiment ? keys.experiment[i % 50] : keys.control[i % 50]);
      expect(got.config.limits.maxRecordsPerAppend).toBe(inExperiment ? 1 : 500);
    }
    // And a burst of concurrent ones.
    await Promise.all([...keys.control, ...keys.experiment].map((k) => rc.forKey(k)));
    expect(control.reads).toHaveLength(200 / (CACHE_MS / 1_000));
  });

  it('a cold host under concurrent requests reads the rollout state once, and nothing else', async () => {
    const { control, rc } = setup();
    const gate = deferred<void>();
    control.gate = gate;
    const all = Promise.all(Array.from({ length: 30 }, (_, i) => rc.forKey(`k${i}`)));
    await Promise.resolve();
    gate.resolve();
    const got = await all;
    expect(control.reads).toHaveLength(1);
    expect(got.every((g) => g.versions.limits === '1')).toBe(true);
    expect(got.every((g) => JSON.stringify(g.config) === JSON.stringify(DEFAULT_CONFIG))).toBe(true);
  });

  it('concurrent requests at a cache expiry do one refresh (single flight)', async () => {
    const { clock, control, rc } = setup();
    await rc.forKey('k');
    control.write(rollout({ delivery: '1', limits: '2' }));
    clock.t = T0 + CACHE_MS;
    const gate = deferred<void>();
    control.gate = gate;
    const pending = Array.from({ length: 25 }, (_, i) => rc.forKey(`k${i}`));
    // Let every request reach the refresh before it answers.
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(control.reads).toEqual([T0, T0 + CACHE_MS]);
    gate.resolve();
    const got = await Promise.all(pending);
    expect(got.map(limitsVersion)).toEqual(Array(25).fill('2'));
    expect(control.reads).toHaveLength(2);
  });
});

describe('RolloutConfig: when the Control table fails', () => {
  it('serves the stale state and reports it through onStale, then picks up the new state once reads work again', async () => {
    const { clock, control, stale, rc } = setup();
    expect(limitsVersion(await rc.forKey('k'))).toBe('1');
    control.write(rollout({ delivery: '1', limits: '2' }));
    const boom = new Error('DynamoDB unavailable');
    control.failWith = boom;
    clock.t = T0 + CACHE_MS;
    expect(limitsVersion(await rc.forKey('k'))).toBe('1');
    expect(stale).toEqual([boom]);
    // It retries on the next request, not a cache period later.
    clock.t = T0 + CACHE_MS + 1;
    expect(limitsVersion(await rc.forKey('k'))).toBe('1');
    expect(control.reads).toEqual([T0, T0 + CACHE_MS, T0 + CACHE_MS + 1]);
    expect(stale).toEqual([boom, boom]);
    control.failWith = undefined;
    clock.t = T0 + CACHE_MS + 2;
    expect(limitsVersion(await rc.forKey('k'))).toBe('2');
    expect(stale).toHaveLength(2);
  });

  it('with nothing cached, answers 503 (ServiceError), and recovers once reads work', async () => {
    const { control, stale, rc } = setup();
    control.failWith = new Error('DynamoDB unavailable');
    const err = await rc.forKey('k').then(
      () => undefined,
      (e: unknown) => e,
    );
    const r = refusalOf(err);
    expect(r.status).toBe(503);
    expect(r.retryAfterSeconds).toBeGreaterThan(0);
    expect(stale).toEqual([]);
    control.failWith = undefined;
    expect(limitsVersion(await rc.forKey('k'))).toBe('1');
  });
});

describe('RolloutConfig: arms', () => {
  it('a limits experiment at maxRecordsPerAppend=1 reaches the experiment arm only', async () => {
    const e = experiment({ weightPercent: 25 });
    const { rc } = setup({ state: rollout(BASE.control, e) });
    const keys = keysByArm(e, 40);
    for (const k of keys.experiment) {
      const got = await rc.forKey(k);
      expect(got.arm).toBe('experiment');
      expect(got.versions).toEqual({ delivery: '1', limits: '2' });
      expect(got.config.limits).toEqual({ ...DEFAULT_CONFIG.limits, maxRecordsPerAppend: 1 });
      expect(got.config.delivery).toEqual(DEFAULT_CONFIG.delivery);
    }
    for (const k of [...keys.control, undefined]) {
      const got = await rc.forKey(k);
      expect(got.arm).toBe('control');
      expect(got.versions).toEqual({ delivery: '1', limits: '1' });
      expect(got.config.limits.maxRecordsPerAppend).toBe(500);
      expect(got.config).toEqual(DEFAULT_CONFIG);
    }
  });

  it('stops serving the experiment once it expires, without a new rollout state', async () => {
    const e = experiment({ expiresAtMs: T0 + 5_000 });
    const { clock, rc } = setup({ state: rollout(BASE.control, e) });
    const [k] = keysByArm(e, 1).experiment;
    expect((await rc.forKey(k)).config.limits.maxRecordsPerAppend).toBe(1);
    clock.t = T0 + 5_000;
    const got = await rc.forKey(k);
    expect(got.arm).toBe('control');
    expect(got.config.limits.maxRecordsPerAppend).toBe(500);
  });

  it('a version that fails the schema fails only its own arm, with a plain Error (a 5xx, not a 400)', async () => {
    const e = experiment({ version: '3', weightPercent: 20 });
    const { rc } = setup({ state: rollout(BASE.control, e) });
    const keys = keysByArm(e, 30);
    const results = await Promise.allSettled([...keys.experiment, ...keys.control].map((k) => rc.forKey(k)));
    const failed = results.slice(0, 30);
    const ok = results.slice(30);
    for (const r of failed) {
      expect(r.status).toBe('rejected');
      const reason = (r as PromiseRejectedResult).reason as unknown;
      expect(reason).toBeInstanceOf(Error);
      expect(reason).not.toBeInstanceOf(ZodError);
      expect(reason).not.toBeInstanceOf(ServiceError);
      expect((reason as Error).message).toMatch(/version 3 of profile limits/);
      // The failure names its arm, so the handler counts the 5xx in the experiment arm's metrics.
      expect(reason).toMatchObject({ arm: 'experiment', versions: { delivery: '1', limits: '3' } });
    }
    for (const r of ok) {
      expect(r.status).toBe('fulfilled');
      expect((r as PromiseFulfilledResult<EffectiveConfig>).value.config).toEqual(DEFAULT_CONFIG);
    }
    // The control arm keeps working after the failures, too.
    expect((await rc.forKey(keys.control[0])).config).toEqual(DEFAULT_CONFIG);
    await expect(rc.forKey(keys.experiment[0])).rejects.not.toBeInstanceOf(ZodError);
  });

  it('a state that names a version without its content fails only that arm, says how to fix it, and is served once a state carries it', async () => {
    const e = experiment({ version: '2', weightPercent: 20 });
    // As a rollout item written before contents were kept would be, for the experiment only.
    const state = rollout(BASE.control, e);
    delete state.contents!.limits!['2'];
    const { clock, control, rc } = setup({ state });
    const keys = keysByArm(e, 10);
    for (const k of keys.experiment) {
      const err = await rc.forKey(k).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(ConfigUnavailableError);
      expect(err).toMatchObject({ arm: 'experiment', versions: { delivery: '1', limits: '2' } });
      expect((err as Error).message).toMatch(
        /names version 2 of profile limits without its content; starting a bake \(POST \/bakes\) copies it from AppConfig/,
      );
    }
    for (const k of keys.control) expect((await rc.forKey(k)).config).toEqual(DEFAULT_CONFIG);
    // Not cached as a failure: the next state that carries it is served.
    control.write(rollout(BASE.control, e));
    clock.t = T0 + CACHE_MS;
    expect((await rc.forKey(keys.experiment[0])).config.limits.maxRecordsPerAppend).toBe(1);
  });

  it('a delivery experiment changes delivery only', async () => {
    const e = experiment({ profile: 'delivery', version: '2' });
    const { rc } = setup({ state: rollout(BASE.control, e) });
    const keys = keysByArm(e, 5);
    for (const k of keys.experiment) {
      const got = await rc.forKey(k);
      expect(got.config).toEqual({ delivery: { ...DEFAULT_CONFIG.delivery, maxBatchRecords: 7 }, limits: DEFAULT_CONFIG.limits });
    }
    for (const k of keys.control) expect((await rc.forKey(k)).config).toEqual(DEFAULT_CONFIG);
  });
});
