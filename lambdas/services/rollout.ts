/**
 * What every host (each handler) serves under: the rollout state, read from the Control table
 * at most once per cache period, and each version's content, read from AppConfig once and kept
 * for the life of the process (versions are immutable). Per request it picks the arm from the
 * request's stable key and returns that arm's effective config.
 *
 * Bound: a host serves a new rollout state at most `cacheMs` (plus one in-flight refresh) after
 * it was written. When a refresh fails, the host keeps serving the state it has (logged) and
 * retries on the next request; with nothing cached yet the request gets 503.
 */
import type { ControlStore } from '../adapters/control';
import type { ConfigVersions } from '../adapters/appconfig';
import {
  armOf,
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
import type { Clock } from './logs';

/** Hosts re-read the rollout state this often (divided by the local runtime's time scale). */
export const CONFIG_CACHE_SECONDS = 10;
const RETRY_FAILED_READ_MS = 1000;

/** The config of a request's arm could not be had; carries the arm, so the failure is counted in it. */
export class ConfigUnavailableError extends Error {
  constructor(
    readonly arm: Arm,
    readonly versions: VersionSet,
    readonly cause: unknown,
  ) {
    super(`The ${arm} arm's configuration (${Object.entries(versions).map(([p, v]) => `${p} v${v}`).join(', ')}) is unavailable: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'ConfigUnavailableError';
  }
}

export class RolloutConfig implements ConfigProvider {
  private state: { value: RolloutState; fetchedMs: number } | undefined;
  private refreshing: Promise<RolloutState> | undefined;
  private readonly contents = new Map<string, Promise<ConfigSet[ProfileName]>>();

  constructor(
    private readonly control: Pick<ControlStore, 'getRollout'>,
    private readonly versions: Pick<ConfigVersions, 'get'>,
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
      const [delivery, limits] = await Promise.all(PROFILES.map((p) => this.content(p, versions[p])));
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

  private content(profile: ProfileName, version: string): Promise<ConfigSet[ProfileName]> {
    const key = `${profile}:${version}`;
    let p = this.contents.get(key);
    if (!p) {
      p = this.versions.get(profile, version).then((content) => {
        if (content === undefined) throw new Error(`Config version ${version} of profile ${profile} does not exist in AppConfig`);
        try {
          return resolveProfile(profile, content);
        } catch (e) {
          // Immutable content that does not fit is never going to: this failure stays cached.
          invalid = true;
          throw new Error(`Config version ${version} of profile ${profile} does not fit the profile's schema: ${(e as Error).message}`);
        }
      });
      let invalid = false;
      // A failed read is retried, but at most once a second per host: AppConfig's control plane
      // has low request limits, and an outage must not turn every request into a call.
      p.catch(() => {
        if (!invalid) setTimeout(() => this.contents.delete(key), RETRY_FAILED_READ_MS).unref?.();
      });
      this.contents.set(key, p);
    }
    return p;
  }
}
