/**
 * The two config profiles that drive the service (shared/API.md), their schemas and defaults,
 * the rollout state hosts serve from, and the per-request choice of arm. No AWS client here.
 *
 * A profile version's content is a JSON object with any subset of the profile's fields; a
 * field it leaves out takes the default. The zod schemas below are the single statement of
 * fields and ranges: the stack's AppConfig JSON Schema validators are generated from them
 * (`profileJsonSchema`), so AppConfig, the admin route and the hosts can never disagree.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

const int = (min: number, max: number, description: string) => z.number().int().min(min).max(max).describe(description);

export const PROFILE_SCHEMAS = {
  delivery: z
    .strictObject({
      maxBatchRecords: int(1, 1000, 'most records one receive returns').optional(),
      maxBatchBytes: int(1024, 6_291_456, 'most bytes of record data one receive returns').optional(),
      longPollIntervalMs: int(50, 5000, 'how often a waiting receive looks for new records').optional(),
    })
    .describe('Logrelay delivery profile: how receive hands out records'),
  limits: z
    .strictObject({
      maxRecordsPerAppend: int(1, 500, 'most records one append may carry').optional(),
      maxRecordBytes: int(1, 262_144, "most bytes of one record's serialized data").optional(),
      maxRequestBytes: int(1024, 6_291_456, 'most bytes of one append request body').optional(),
      defaultAckTimeoutSeconds: int(1, 43_200, 'ack timeout of a session created without one').optional(),
    })
    .describe('Logrelay limits profile: what one request may carry'),
} as const;

export type ProfileName = keyof typeof PROFILE_SCHEMAS;
export const PROFILES = Object.keys(PROFILE_SCHEMAS) as ProfileName[];
export const isProfile = (p: string): p is ProfileName => Object.hasOwn(PROFILE_SCHEMAS, p);

export type DeliveryConfig = Required<z.infer<(typeof PROFILE_SCHEMAS)['delivery']>>;
export type LimitsConfig = Required<z.infer<(typeof PROFILE_SCHEMAS)['limits']>>;

export interface ConfigSet {
  delivery: DeliveryConfig;
  limits: LimitsConfig;
}

export const DEFAULT_CONFIG: ConfigSet = {
  delivery: { maxBatchRecords: 100, maxBatchBytes: 1_048_576, longPollIntervalMs: 250 },
  limits: { maxRecordsPerAppend: 500, maxRecordBytes: 262_144, maxRequestBytes: 1_048_576, defaultAckTimeoutSeconds: 30 },
};

/** The JSON Schema (draft-04, the dialect AppConfig documents for inline validators) of a profile. */
export function profileJsonSchema(profile: ProfileName): Record<string, unknown> {
  return z.toJSONSchema(PROFILE_SCHEMAS[profile], { target: 'draft-04' }) as Record<string, unknown>;
}

/** Checks a version's content; returns the problems, phrased for a person, or [] when it is valid. */
export function checkProfileContent(profile: ProfileName, content: unknown): string[] {
  const r = PROFILE_SCHEMAS[profile].safeParse(content);
  if (r.success) return [];
  return r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'content'}: ${i.message}`);
}

/** A profile's effective values: the version's content over the defaults. Throws on invalid content. */
export function resolveProfile<P extends ProfileName>(profile: P, content: unknown): ConfigSet[P] {
  const parsed = PROFILE_SCHEMAS[profile].parse(content) as Partial<ConfigSet[P]>;
  return { ...DEFAULT_CONFIG[profile], ...parsed } as ConfigSet[P];
}

// ---------------------------------------------------------------------------------------------
// Rollout state and arms
// ---------------------------------------------------------------------------------------------

export type Arm = 'control' | 'experiment';

export interface Experiment {
  profile: ProfileName;
  version: string;
  weightPercent: number;
  bakeId: string;
  /**
   * Epoch ms after which hosts ignore this experiment even if nothing cleared it: the phase's
   * deadline plus a margin. A bake whose machinery dies (execution timeout, StopExecution)
   * therefore cannot leave a version live beyond its phase.
   */
  expiresAtMs: number;
}

/** Each version's content as JSON text, by profile and version number. */
export type VersionContents = Partial<Record<ProfileName, Record<string, string>>>;

/**
 * What hosts serve from: each profile's control version, at most one experiment, and the
 * content of each of those versions.
 *
 * `contents` is a copy of AppConfig's immutable versions, made on the control path (the bake
 * copies a version when it names it here), so a host needs nothing but this one item: it never
 * calls AppConfig, whose control plane is not built for request-rate reads. Invariant, kept by
 * every transition in domain/bake.ts: it holds the content of every version the state names
 * and of no other. A state written before contents were kept has none (see `missingContents`).
 */
export interface RolloutState {
  control: Record<ProfileName, string>;
  experiment?: Experiment;
  contents?: VersionContents;
}

/**
 * The versions a stack starts with: the initial hosted configuration versions (numbered 1),
 * which the stack creates from DEFAULT_CONFIG (lib/config-profiles.ts takes their content from here).
 */
export const INITIAL_ROLLOUT: RolloutState = {
  control: { delivery: '1', limits: '1' },
  contents: { delivery: { '1': JSON.stringify(DEFAULT_CONFIG.delivery) }, limits: { '1': JSON.stringify(DEFAULT_CONFIG.limits) } },
};

/** The content (JSON text) of the stack's initial version of a profile, as the stack stores it in AppConfig. */
export const initialContent = (profile: ProfileName): string => INITIAL_ROLLOUT.contents![profile]![INITIAL_ROLLOUT.control[profile]]!;

/**
 * The most bytes of JSON a version may have to be served: a bake refuses a bigger one at its
 * start (400). Every content that fits a profile's schema is under 200 bytes; the bound keeps
 * the rollout item, which every host reads every cache period, within one 4 KB read unit.
 */
export const MAX_SERVED_CONTENT_BYTES = 1024;

/** The content (JSON text) the state holds for a version, if any. */
export function contentOf(state: RolloutState, profile: ProfileName, version: string): string | undefined {
  const byVersion = state.contents?.[profile];
  return byVersion && Object.hasOwn(byVersion, version) ? byVersion[version] : undefined;
}

/** Every (profile, version) the state names: the control versions and the experiment's. */
export function namedVersions(state: RolloutState): { profile: ProfileName; version: string }[] {
  const named = PROFILES.map((profile) => ({ profile, version: state.control[profile] }));
  if (state.experiment) named.push({ profile: state.experiment.profile, version: state.experiment.version });
  return named;
}

/** The versions the state names without holding their content (a state from before contents were kept). */
export function missingContents(state: RolloutState): { profile: ProfileName; version: string }[] {
  return namedVersions(state).filter((n) => contentOf(state, n.profile, n.version) === undefined);
}

/**
 * The state with `content` as the content of `profile` `version` (when given) and with only the
 * contents of the versions it names: what every transition ends with, so the item stays small.
 * A state that holds no contents (written before they were kept) and gets none stays without.
 */
export function withContents(state: RolloutState, add?: { profile: ProfileName; version: string; content: string }): RolloutState {
  if (!state.contents && !add) return state;
  const contents: VersionContents = {};
  for (const { profile, version } of namedVersions(state)) {
    const text = add && add.profile === profile && add.version === version ? add.content : contentOf(state, profile, version);
    if (text !== undefined) contents[profile] = { ...contents[profile], [version]: text };
  }
  return { ...state, contents };
}

/** The experiment hosts should serve now, if any. */
export function liveExperiment(state: RolloutState, nowMs: number): Experiment | undefined {
  const e = state.experiment;
  return e && e.expiresAtMs > nowMs && e.weightPercent > 0 ? e : undefined;
}

/**
 * A key's bucket in [0, 10000): SHA-256 of the bake id and the key. Salting with the bake id
 * gives each bake a fresh, independent sample of keys, so one unlucky session is not in every
 * experiment; within a bake, a key's arm never changes.
 */
export function bucketOf(bakeId: string, key: string): number {
  return createHash('sha256').update(bakeId).update('\0').update(key).digest().readUInt32BE(0) % 10_000;
}

/** The arm of a request with stable key `key` (session id, else log id); no key means control. */
export function armOf(experiment: Experiment | undefined, key: string | undefined): Arm {
  if (!experiment || key === undefined) return 'control';
  return bucketOf(experiment.bakeId, key) < Math.round(experiment.weightPercent * 100) ? 'experiment' : 'control';
}

/** Versions one request is served under. */
export type VersionSet = Record<ProfileName, string>;

export function versionsFor(state: RolloutState, arm: Arm, experiment: Experiment | undefined): VersionSet {
  const versions = { ...state.control };
  if (arm === 'experiment' && experiment) versions[experiment.profile] = experiment.version;
  return versions;
}

/** The effective config of one request, with the arm and versions it came from (for metrics and logs). */
export interface EffectiveConfig {
  config: ConfigSet;
  arm: Arm;
  versions: VersionSet;
}

/** Where a handler gets the config set for a request keyed by `key` (session id or log id). */
export interface ConfigProvider {
  forKey(key: string | undefined): Promise<EffectiveConfig>;
}

export const staticConfig = (config: ConfigSet = DEFAULT_CONFIG): ConfigProvider => ({
  forKey: async () => ({ config, arm: 'control', versions: { ...INITIAL_ROLLOUT.control } }),
});
