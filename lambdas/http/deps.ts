/**
 * What each function runs on, built in one place for Lambda, the local runtime and the tests.
 * Flow: a host reads the function's environment once, checked (function-env.ts: a missing
 * variable is an error naming it, before any storage call), and hands it with its clients to
 * `buildDeps(fn, env, clients)`, which returns exactly the deps that function's makeHandler
 * takes (FunctionDeps). In Lambda, `lambdaDeps(fn)` does both on the first invocation, over
 * process.env and AWS SDK clients made on first use (`awsClients`). The local runtime passes the
 * embedded store, its AppConfig and CloudWatch stand-ins and its own state machine runner; the
 * test harness passes a crash-injecting store and a static config. The data routes' hosts get
 * no AppConfig client: they serve config from the rollout item alone (services/rollout.ts);
 * only the admin routes read and create versions in AppConfig.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AppConfigClient } from '@aws-sdk/client-appconfig';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { SFNClient, StartExecutionCommand, ExecutionAlreadyExists } from '@aws-sdk/client-sfn';
import { MetricResolution, Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoStore, type CallObserver, type Store } from '../adapters/store';
import { DynamoControlStore, type ControlStore } from '../adapters/control';
import { AppConfigVersions, type AppConfigIds, type ConfigVersions } from '../adapters/appconfig';
import { CloudWatchArmMetrics, type ArmMetricsReader } from '../adapters/cloudwatch';
import type { ConfigProvider } from '../domain/config';
import { systemClock, type Clock } from '../services/logs';
import { CONFIG_CACHE_SECONDS, RolloutConfig } from '../services/rollout';
import { backfillRolloutContents, BakeService, type BakeGauge, type BakeRunner } from '../services/bakes';
import { BakeList } from '../services/bake-list';
import { logger, tracer, type HttpDeps } from './api';
import { TABLES } from '../tables';
import { BAKE_METRICS, METRIC_NAMESPACE, SERVICE_NAME } from '../metrics';
import { functionEnv, type AdminEnv, type AnyFunctionName, type AppConfigEnv, type BaseEnv, type FunctionEnvs } from '../function-env';

/** A data route's function: its store, clock and config. */
export interface Deps {
  store: Store;
  clock: Clock;
  config: ConfigProvider;
}

export interface BakeDeps {
  bakes: BakeService;
}

/** GET /bakes (admin): bake records, newest first, from the Control table's bakesByTime index. */
export interface BakeListDeps {
  bakeList: BakeList;
}

/** The admin routes: configs and bakes, with no data store (they touch the Control table only). */
export interface AdminDeps extends HttpDeps, BakeDeps, BakeListDeps {
  /**
   * What the bake service divides its durations by, reported on GET /bakes/{bakeId} as
   * `timeScale` so that a client can show durations as they really pass (the local runtime
   * passes its LOGRELAY_TIME_SCALE).
   * @default 1
   */
  timeScale?: number;
}

/**
 * What the deploy-time upgrade (handlers/upgrade.ts) runs on: the backfill of the rollout item's
 * contents, and nothing else.
 */
export interface UpgradeDeps {
  bakes: Pick<BakeService, 'backfillContents'>;
}

/** Each function's deps, by function: what its makeHandler takes. */
export interface FunctionDeps {
  logs: Deps;
  append: Deps;
  sessions: Deps;
  receive: Deps;
  leases: Deps;
  admin: AdminDeps;
  bake: BakeDeps;
  upgrade: UpgradeDeps;
}

/** What a data route's host is built over. */
export interface HostClients {
  /** DynamoDB: every store is built over it. */
  dynamo: DynamoDBClient;
  clock: Clock;
  /**
   * Divides the rollout config's cache time and the bake's durations (the local runtime's
   * LOGRELAY_TIME_SCALE).
   * @default 1
   */
  timeScale?: number;
  /**
   * Sees every storage call of the data store with its consumed capacity (benchmarks).
   * @default none
   */
  observeStorage?: CallObserver;
  /**
   * The data routes' store, instead of a DynamoStore over `dynamo` (the test harness's store,
   * which records calls and crashes on demand).
   * @default a DynamoStore over `dynamo` and the function's tables
   */
  store?: Store;
  /**
   * The config the handlers serve, instead of the rollout item's (the test harness's static one).
   * @default hostConfig over the function's Control table
   */
  config?: ConfigProvider;
}

/** What the control path's functions (admin, bake) are built over, besides a host's. */
export interface Clients extends HostClients {
  appConfig: Pick<AppConfigClient, 'send'>;
  cloudwatch: Pick<CloudWatchClient, 'send'>;
  /** Starts a bake on the state machine the admin function's environment names (Step Functions in AWS). */
  bakeRunner(stateMachineArn: string): BakeRunner;
  /**
   * Publishes what a bake has under test.
   * @default emfGauge()
   */
  gauge?: BakeGauge;
}

/** The upgrade reads the Control table and AppConfig's versions, and nothing else (its role allows no more). */
export type UpgradeClients = Pick<Clients, 'dynamo' | 'appConfig' | 'clock'>;

/** Each function's clients, by function: the data routes' need no AppConfig, CloudWatch or Step Functions. */
export interface FunctionClients {
  logs: HostClients;
  append: HostClients;
  sessions: HostClients;
  receive: HostClients;
  leases: HostClients;
  admin: Clients;
  bake: Clients;
  upgrade: UpgradeClients;
}

/**
 * Physical table names from an environment, '' for each one it does not name, unchecked. For
 * tools and tests that read a template's environments (the local console merges them all); a
 * function reads its own through functionEnv (function-env.ts), which refuses a missing one.
 */
export function tableNamesFromEnv(env: NodeJS.ProcessEnv = process.env): {
  logs: string;
  records: string;
  sessions: string;
  control: string;
} {
  const name = (id: string): string => {
    const def = TABLES.find((t) => t.id === id)!;
    return env[def.envVar] ?? '';
  };
  return { logs: name('Logs'), records: name('Records'), sessions: name('Sessions'), control: name('Control') };
}

/** The host's config provider over the rollout state, which carries the versions' contents; `timeScale` shortens its cache (local runtime). */
export function hostConfig(control: Pick<ControlStore, 'getRollout'>, clock: Clock, timeScale = 1): RolloutConfig {
  return new RolloutConfig(control, clock, (CONFIG_CACHE_SECONDS * 1000) / timeScale, (e: unknown) =>
    logger.warn('rollout state refresh failed; serving the cached state', e as Error),
  );
}

/** Publishes what a bake has under test as high-resolution EMF metrics (dimension Profile), for the dashboard. */
export function emfGauge(): BakeGauge {
  const m = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME });
  return (profile, weightPercent, version) => {
    m.addDimension('Profile', profile);
    m.addMetric(BAKE_METRICS.weight, MetricUnit.Percent, weightPercent, MetricResolution.High);
    m.addMetric(BAKE_METRICS.version, MetricUnit.NoUnit, version, MetricResolution.High);
    m.publishStoredMetrics();
  };
}

/** Starts the bake state machine; the execution is named after the bake, so a retry is idempotent. */
export function stepFunctionsRunner(client: Pick<SFNClient, 'send'>, stateMachineArn: string): BakeRunner {
  return {
    async start(bakeId) {
      try {
        await client.send(new StartExecutionCommand({ stateMachineArn, name: bakeId, input: JSON.stringify({ bakeId }) }));
      } catch (e) {
        if (!(e instanceof ExecutionAlreadyExists)) throw e;
      }
    },
  };
}

/**
 * The bake function's runner: its state machine runs it, it starts none (its environment names
 * no state machine). BakeService.task never starts a bake; if it ever did, this says why it fails.
 */
const NO_RUNNER: BakeRunner = {
  start: () => Promise.reject(new Error('The bake function starts no bake: only the admin function has BAKE_STATE_MACHINE_ARN.')),
};

export interface BakeParts {
  control: ControlStore;
  versions: ConfigVersions;
  ids: AppConfigIds;
  metrics: ArmMetricsReader;
  runner: BakeRunner;
  clock: Clock;
  timeScale?: number;
  gauge?: BakeGauge;
}

export const bakeService = (p: BakeParts): BakeService =>
  new BakeService(p.control, p.versions, p.ids, p.metrics, p.runner, p.clock, {
    timeScale: p.timeScale ?? 1,
    gauge: p.gauge ?? emfGauge(),
  });

/** The upgrade over a Control table and AppConfig's versions, and nothing else. */
export const upgradeDeps = (
  control: Pick<ControlStore, 'getRollout' | 'putRollout'>,
  versions: Pick<ConfigVersions, 'get'>,
  clock: Clock,
): UpgradeDeps => ({
  bakes: { backfillContents: () => backfillRolloutContents(control, versions, clock.now()) },
});

export const bakeListDeps = (control: Pick<ControlStore, 'listBakeKeys' | 'getBakes'>, clock: Clock): BakeListDeps => ({
  bakeList: new BakeList(control, clock),
});

// ---- The builder ------------------------------------------------------------------------------
// One builder per kind of function, named, so that a handler module names its own and its
// Lambda bundle leaves the others out (a data route's function carries no BakeService); the
// table BUILDERS joins them for the hosts that run every function.

/** A data route's function (logs, append, sessions, receive, leases). */
export function hostDeps(env: BaseEnv, c: HostClients): Deps {
  return {
    store: c.store ?? new DynamoStore(c.dynamo, env.tables, c.observeStorage),
    clock: c.clock,
    config: c.config ?? hostConfig(new DynamoControlStore(c.dynamo, env.tables.control), c.clock, c.timeScale),
  };
}

/** The bake service over the function's Control table, AppConfig ids and clients. */
function bakesOf(env: AppConfigEnv, c: Clients, control: ControlStore, runner: BakeRunner): BakeService {
  return bakeService({
    control,
    versions: new AppConfigVersions(c.appConfig, env.appConfig),
    ids: env.appConfig,
    metrics: new CloudWatchArmMetrics(c.cloudwatch, c.timeScale),
    runner,
    clock: c.clock,
    ...(c.timeScale !== undefined ? { timeScale: c.timeScale } : {}),
    ...(c.gauge ? { gauge: c.gauge } : {}),
  });
}

/** The admin routes: the bake service over the Control table and AppConfig, starting bakes on the state machine. */
export function adminDeps(env: AdminEnv, c: Clients): AdminDeps {
  const control = new DynamoControlStore(c.dynamo, env.tables.control);
  return {
    clock: c.clock,
    config: c.config ?? hostConfig(control, c.clock, c.timeScale),
    bakes: bakesOf(env, c, control, c.bakeRunner(env.bakeStateMachineArn)),
    ...bakeListDeps(control, c.clock),
    timeScale: c.timeScale ?? 1,
  };
}

/** The bake state machine's task function: the bake service, starting no bake. */
export const bakeDeps = (env: AppConfigEnv, c: Clients): BakeDeps => ({
  bakes: bakesOf(env, c, new DynamoControlStore(c.dynamo, env.tables.control), NO_RUNNER),
});

/** The deploy-time upgrade: the Control table and AppConfig's versions. */
export const upgradeDepsOf = (env: AppConfigEnv, c: UpgradeClients): UpgradeDeps =>
  upgradeDeps(new DynamoControlStore(c.dynamo, env.tables.control), new AppConfigVersions(c.appConfig, env.appConfig), c.clock);

/** A function's builder: its checked environment and its clients in, its deps out. */
export type DepsBuilder<F extends AnyFunctionName> = (env: FunctionEnvs[F], clients: FunctionClients[F]) => FunctionDeps[F];

const BUILDERS: { [F in AnyFunctionName]: DepsBuilder<F> } = {
  logs: hostDeps,
  append: hostDeps,
  sessions: hostDeps,
  receive: hostDeps,
  leases: hostDeps,
  admin: adminDeps,
  bake: bakeDeps,
  upgrade: upgradeDepsOf,
};

/** The deps of function `fn`, from its checked environment (functionEnv) and the host's clients. */
export function buildDeps<F extends AnyFunctionName>(fn: F, env: FunctionEnvs[F], clients: FunctionClients[F]): FunctionDeps[F] {
  return BUILDERS[fn](env, clients);
}

/**
 * Lambda's clients: three attempts each, traced, each made when a builder first asks for it (a
 * data route's function makes a DynamoDB client only).
 */
export function awsClients(): Clients {
  const once = <T>(make: () => T): (() => T) => {
    let made: T | undefined;
    return () => (made ??= make());
  };
  const dynamo = once(() => tracer.captureAWSv3Client(new DynamoDBClient({ maxAttempts: 3 })));
  const appConfig = once(() => tracer.captureAWSv3Client(new AppConfigClient({ maxAttempts: 3 })));
  const cloudwatch = once(() => tracer.captureAWSv3Client(new CloudWatchClient({ maxAttempts: 3 })));
  const sfn = once(() => tracer.captureAWSv3Client(new SFNClient({ maxAttempts: 3 })));
  return {
    get dynamo() {
      return dynamo();
    },
    get appConfig() {
      return appConfig();
    },
    get cloudwatch() {
      return cloudwatch();
    },
    bakeRunner: (arn) => stepFunctionsRunner(sfn(), arn),
    clock: systemClock,
  };
}

/**
 * The deps of function `fn` in Lambda, built by `build`, its entry in BUILDERS (named by the
 * handler rather than looked up, so the bundle carries that one builder; the types refuse
 * another function's: each returns its own FunctionDeps): its environment checked first (a
 * MissingEnvironmentError naming each missing variable, before any client is made or any storage
 * call), then the AWS clients it needs.
 */
export function lambdaDeps<F extends AnyFunctionName>(fn: F, build: DepsBuilder<F>): FunctionDeps[F] {
  const env = functionEnv(fn, process.env);
  return build(env, awsClients());
}

/**
 * Builds the real handler on first use, so importing a handler module needs no environment (the
 * local runtime and the tests import them); in Lambda that first use is the cold start's first
 * invocation. A build that throws (a missing variable) throws again on every invocation.
 */
export function lazy<A extends unknown[], R>(make: () => (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  let h: ((...args: A) => Promise<R>) | undefined;
  // async: a build that throws rejects the invocation's promise, as any failure of the handler does.
  return async (...args: A) => {
    h ??= make();
    return h(...args);
  };
}
