/**
 * What handlers run on. In Lambda: DynamoDB, AppConfig, CloudWatch and Step Functions clients
 * from the environment, and the system clock. Tests and the local runtime pass their own
 * (embedded store and stand-ins, fake clock, fault-injecting store). The data routes' hosts
 * get no AppConfig client: they serve config from the rollout item alone (services/rollout.ts);
 * only the admin routes (defaultBakeDeps) read and create versions in AppConfig.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AppConfigClient } from '@aws-sdk/client-appconfig';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { SFNClient, StartExecutionCommand, ExecutionAlreadyExists } from '@aws-sdk/client-sfn';
import { MetricResolution, Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoStore, type Store } from '../adapters/store';
import { DynamoControlStore, type ControlStore } from '../adapters/control';
import { AppConfigVersions, appConfigIdsFromEnv, type AppConfigIds, type ConfigVersions } from '../adapters/appconfig';
import { CloudWatchArmMetrics, type ArmMetricsReader } from '../adapters/cloudwatch';
import type { ConfigProvider } from '../domain/config';
import { systemClock, type Clock } from '../services/logs';
import { CONFIG_CACHE_SECONDS, RolloutConfig } from '../services/rollout';
import { backfillRolloutContents, BakeService, type BakeGauge, type BakeRunner } from '../services/bakes';
import { BakeList } from '../services/bake-list';
import { logger, tracer } from './api';
import { TABLES } from '../tables';
import { BAKE_METRICS, METRIC_NAMESPACE, SERVICE_NAME } from '../metrics';

export interface Deps {
  store: Store;
  clock: Clock;
  config: ConfigProvider;
}

export interface BakeDeps {
  bakes: BakeService;
}

export function tableNamesFromEnv(env: NodeJS.ProcessEnv = process.env): { logs: string; records: string; sessions: string; control: string } {
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

export function defaultDeps(): Deps {
  const dynamo = tracer.captureAWSv3Client(new DynamoDBClient({ maxAttempts: 3 }));
  const tables = tableNamesFromEnv();
  return {
    store: new DynamoStore(dynamo, tables),
    clock: systemClock,
    config: hostConfig(new DynamoControlStore(dynamo, tables.control), systemClock),
  };
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
  new BakeService(p.control, p.versions, p.ids, p.metrics, p.runner, p.clock, { timeScale: p.timeScale ?? 1, gauge: p.gauge ?? emfGauge() });

export function defaultBakeDeps(): BakeDeps {
  const dynamo = tracer.captureAWSv3Client(new DynamoDBClient({ maxAttempts: 3 }));
  const ids = appConfigIdsFromEnv();
  return {
    bakes: bakeService({
      control: new DynamoControlStore(dynamo, tableNamesFromEnv().control),
      versions: new AppConfigVersions(tracer.captureAWSv3Client(new AppConfigClient({ maxAttempts: 3 })), ids),
      ids,
      metrics: new CloudWatchArmMetrics(tracer.captureAWSv3Client(new CloudWatchClient({ maxAttempts: 3 }))),
      runner: stepFunctionsRunner(tracer.captureAWSv3Client(new SFNClient({ maxAttempts: 3 })), process.env.BAKE_STATE_MACHINE_ARN ?? ''),
      clock: systemClock,
    }),
  };
}

/**
 * What the deploy-time upgrade (handlers/upgrade.ts) runs on: the backfill of the rollout item's
 * contents. Under `bakes` because the local runtime hands every function the same deps, whose
 * `bakes` is the whole BakeService.
 */
export interface UpgradeDeps {
  bakes: Pick<BakeService, 'backfillContents'>;
}

/** The upgrade over a Control table and AppConfig's versions, and nothing else. */
export const upgradeDeps = (control: Pick<ControlStore, 'getRollout' | 'putRollout'>, versions: Pick<ConfigVersions, 'get'>, clock: Clock): UpgradeDeps => ({
  bakes: { backfillContents: () => backfillRolloutContents(control, versions, clock.now()) },
});

/** The upgrade in Lambda: DynamoDB and AppConfig clients only (its role allows no more). */
export function defaultUpgradeDeps(): UpgradeDeps {
  const dynamo = tracer.captureAWSv3Client(new DynamoDBClient({ maxAttempts: 3 }));
  const control = new DynamoControlStore(dynamo, tableNamesFromEnv().control);
  const versions = new AppConfigVersions(tracer.captureAWSv3Client(new AppConfigClient({ maxAttempts: 3 })), appConfigIdsFromEnv());
  return upgradeDeps(control, versions, systemClock);
}

/** GET /bakes (admin): bake records, newest first, from the Control table's bakesByTime index. */
export interface BakeListDeps {
  bakeList: BakeList;
}

export const bakeListDeps = (control: Pick<ControlStore, 'listBakeKeys' | 'getBakes'>, clock: Clock): BakeListDeps => ({ bakeList: new BakeList(control, clock) });

export function defaultBakeListDeps(): BakeListDeps {
  const dynamo = tracer.captureAWSv3Client(new DynamoDBClient({ maxAttempts: 3 }));
  return bakeListDeps(new DynamoControlStore(dynamo, tableNamesFromEnv().control), systemClock);
}

/** Builds the real handler on first use, so importing a handler module needs no environment. */
export function lazy<A extends unknown[], R>(make: () => (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  let h: ((...args: A) => Promise<R>) | undefined;
  return (...args: A) => (h ??= make())(...args);
}
