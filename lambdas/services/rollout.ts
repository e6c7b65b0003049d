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
} from '../domain/config';
import { busy } from '../domain/errors';
import type { Clock } from './logs';

/** Hosts re-read the rollout state this often (divided by the local runtime's time scale). */
export const CONFIG_CACHE_SECONDS = 10;

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
    const [delivery, limits] = await Promise.all(PROFILES.map((p) => this.content(p, versions[p])));
    return { config: { delivery, limits } as ConfigSet, arm, versions };
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
          // The service's fault, not the caller's: never let it surface as a 400.
          throw new Error(`Config version ${version} of profile ${profile} does not fit the profile's schema: ${(e as Error).message}`);
        }
      });
      // A failed read is not cached: the next request tries again.
      p.catch(() => this.contents.delete(key));
      this.contents.set(key, p);
    }
    return p;
  }
}
