/**
 * What every host (each handler) serves under: the rollout state, read from the Control table
 * at most once per cache period, which carries each version's content beside the version
 * numbers (domain/config.ts, RolloutState.contents). Per request it picks the arm from the
 * request's stable key and returns that arm's effective config; each version's content is
 * parsed and checked once and kept for the life of the process (versions are immutable).
 *
 * Hosts never call AppConfig: its control plane (GetHostedConfigurationVersion) is a management
 * API with low request quotas, and a scale-out or the start of an experiment would make every
 * cold container call it at once. A cold host makes one DynamoDB read, the rollout item.
 *
 * Bound: a host serves a new rollout state at most `cacheMs` (plus one in-flight refresh) after
 * it was written. When a refresh fails, the host keeps serving the state it has (logged) and
 * retries on the next request; with nothing cached yet the request gets 503.
 */
import type { Clock, ControlStore } from '../ports';
import {
  armOf,
  contentOf,
  liveExperiment,
  resolveProfile,
  versionsFor,
  PROFILES,
  type ConfigProvider,
  type ConfigSet,
  type EffectiveConfig,
  type ProfileName,
  type RolloutState,
  type Arm,
  type VersionSet,
} from '../domain/config';
import { busy } from '../domain/errors';

/** Hosts re-read the rollout state this often (divided by the local runtime's time scale). */
export const CONFIG_CACHE_SECONDS = 10;

/** The config of a request's arm could not be had; carries the arm, so the failure is counted in it. */
export class ConfigUnavailableError extends Error {
  constructor(
    readonly arm: Arm,
    readonly versions: VersionSet,
    readonly cause: unknown,
  ) {
    super(
      `The ${arm} arm's configuration (${Object.entries(versions)
        .map(([p, v]) => `${p} v${v}`)
        .join(', ')}) is unavailable: ${(cause as Error)?.message ?? String(cause)}`,
    );
    this.name = 'ConfigUnavailableError';
  }
}

export class RolloutConfig implements ConfigProvider {
  private state: { value: RolloutState; fetchedMs: number } | undefined;
  private refreshing: Promise<RolloutState> | undefined;
  /** Each (profile, version) resolved once: immutable, so its value (or its schema failure) holds for good. */
  private readonly resolved = new Map<string, { value: ConfigSet[ProfileName] } | { error: Error }>();

  constructor(
    private readonly control: Pick<ControlStore, 'getRollout'>,
    private readonly clock: Clock,
    readonly cacheMs: number = CONFIG_CACHE_SECONDS * 1000,
    private readonly onStale: (e: unknown) => void = () => {},
  ) {}

  async forKey(key: string | undefined): Promise<EffectiveConfig> {
    const state = await this.rollout();
    const experiment = liveExperiment(state, this.clock.now());
    const arm = armOf(experiment, key);
    const versions = versionsFor(state, arm, experiment);
    try {
      const [delivery, limits] = PROFILES.map((p) => this.content(state, p, versions[p]));
      return { config: { delivery, limits } as ConfigSet, arm, versions };
    } catch (e) {
      // A version that cannot be served fails its own arm's requests, and is counted there.
      throw new ConfigUnavailableError(arm, versions, e);
    }
  }

  private async rollout(): Promise<RolloutState> {
    const now = this.clock.now();
    if (this.state && now - this.state.fetchedMs < this.cacheMs) return this.state.value;
    this.refreshing ??= this.control
      .getRollout(false)
      .then((item) => {
        this.state = { value: item.state, fetchedMs: this.clock.now() };
        return item.state;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    try {
      return await this.refreshing;
    } catch (e) {
      if (this.state) {
        this.onStale(e);
        return this.state.value;
      }
      throw busy('The service could not read its configuration.', 1);
    }
  }

  private content(state: RolloutState, profile: ProfileName, version: string): ConfigSet[ProfileName] {
    const key = `${profile}:${version}`;
    let r = this.resolved.get(key);
    if (!r) {
      const text = contentOf(state, profile, version);
      // Only a rollout item written before contents were kept in it lacks one; the next POST
      // /bakes copies every version it names from AppConfig (services/bakes.ts). Not cached:
      // a later state may carry it.
      if (text === undefined) {
        throw new Error(
          `The rollout state names version ${version} of profile ${profile} without its content; starting a bake (POST /bakes) copies it from AppConfig`,
        );
      }
      try {
        r = { value: resolveProfile(profile, JSON.parse(text) as unknown) };
      } catch (e) {
        // Immutable content that does not fit is never going to: this failure stays cached.
        r = {
          error: new Error(`Config version ${version} of profile ${profile} does not fit the profile's schema: ${(e as Error).message}`),
        };
      }
      this.resolved.set(key, r);
    }
    if ('error' in r) throw r.error;
    return r.value;
  }
}
