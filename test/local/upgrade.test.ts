/**
 * The deploy-time upgrade (lambdas/handlers/upgrade.ts), which a CloudFormation trigger runs
 * before the data routes' functions get the code that serves from the rollout item alone. A
 * deployment from before contents were kept left a rollout item that names versions without
 * their contents; hosts of the new code answer every request 500 on it (ConfigUnavailable).
 *
 * Against the local stand-ins, read from the synthesized stack as the local runtime reads them
 * (the embedded DynamoDB with the stack's tables, the local AppConfig with the stack's profiles
 * and initial versions), the upgrade handler is built as Lambda builds it (upgradeDeps) over the
 * environment the stack gives the upgrade function, and checked: it fills in a legacy item so
 * that a host built then serves it with no AppConfig call; a re-run, a fresh deployment and an
 * item already complete cost one read and no write; it never overwrites a rollout state written
 * between its read and its write (by a POST /bakes of the new code, or an older deployment's
 * writer); a crash or a lost response at any point leaves a state a re-run completes; and it
 * fails (the deployment rolls back) when a version hosts serve cannot be had from AppConfig.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CreateHostedConfigurationVersionCommand } from '@aws-sdk/client-appconfig';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { LocalAppConfig } from '../../local/appconfig';
import { startEmbeddedDynamo, type EmbeddedDynamo } from '../../local/dynamo';
import { FaultInjector } from '../../local/faults';
import type { GatewayContext } from '../../local/gateway';
import { callRoute } from '../support/route-call';
import { resolveIntrinsics } from '../../local/stepfunctions';
import { readSystem, synthTemplate, type LocalSystem } from '../../local/template';
import { AppConfigVersions, appConfigIdsFromEnv, type AppConfigIds } from '../../lambdas/adapters/appconfig';
import { DynamoControlStore, type ControlStore } from '../../lambdas/adapters/control';
import { DynamoStore } from '../../lambdas/adapters/store';
import { ConflictError } from '../../lambdas/domain/errors';
import { contentOf, INITIAL_ROLLOUT, type RolloutState } from '../../lambdas/domain/config';
import type { RolloutItem } from '../../lambdas/domain/bake';
import { hostConfig, tableNamesFromEnv, upgradeDeps, type Deps } from '../../lambdas/http/deps';
import type { HttpEvent, HttpResult } from '../../lambdas/http/api';
import { makeHandler as upgradeHandler } from '../../lambdas/handlers/upgrade';
import { makeHandler as logsHandler } from '../../lambdas/handlers/logs';
import { makeHandler as sessionsHandler } from '../../lambdas/handlers/sessions';
import { BakeService } from '../../lambdas/services/bakes';
import { systemClock } from '../../lambdas/services/logs';

const UPGRADE_ENTRY = 'lambdas/handlers/upgrade.ts';
const CALLER = { userArn: 'arn:aws:iam::123456789012:user/upgrade-test', accessKey: 'AKIDUPGRADE', accountId: '123456789012' };

let system: LocalSystem;
let appConfig: LocalAppConfig;
let dynamo: EmbeddedDynamo;
let control: DynamoControlStore;
let ids: AppConfigIds;
let controlTable: string;

const envOf = (entry: string) => Object.values(system.functions).find((f) => f.entry === entry)!.environment;

/** The Control store with its rollout reads and writes counted; `beforePut` runs before each write is sent (a concurrent writer, a fault). */
class CountingControl implements Pick<ControlStore, 'getRollout' | 'putRollout'> {
  reads = 0;
  puts = 0;
  constructor(
    private readonly inner: ControlStore,
    private readonly beforePut: (attempt: number, next: RolloutItem) => Promise<void> = async () => {},
    private readonly afterPut: (attempt: number) => Promise<void> = async () => {},
  ) {}
  getRollout(consistent: boolean) {
    this.reads++;
    return this.inner.getRollout(consistent);
  }
  async putRollout(next: RolloutItem) {
    const attempt = this.puts++;
    await this.beforePut(attempt, next);
    const stored = await this.inner.putRollout(next);
    await this.afterPut(attempt);
    return stored;
  }
}

/** The upgrade handler as Lambda builds it (upgradeDeps), over the upgrade function's own environment. */
function upgrade(c: Pick<ControlStore, 'getRollout' | 'putRollout'>, client = appConfig.toClient()) {
  return upgradeHandler(upgradeDeps(c, new AppConfigVersions(client, appConfigIdsFromEnv(envOf(UPGRADE_ENTRY))), systemClock));
}

/** The stored rollout item as DynamoDB has it, or undefined. */
async function storedItem(): Promise<Record<string, unknown> | undefined> {
  const out = await DynamoDBDocumentClient.from(dynamo.client).send(
    new GetCommand({ TableName: controlTable, Key: { pk: 'rollout' }, ConsistentRead: true }),
  );
  return out.Item;
}

async function createVersion(profile: 'delivery' | 'limits', content: unknown): Promise<string> {
  const out = await appConfig.send(
    new CreateHostedConfigurationVersionCommand({
      ApplicationId: ids.applicationId,
      ConfigurationProfileId: ids.profiles[profile],
      Content: new TextEncoder().encode(JSON.stringify(content)),
      ContentType: 'application/json',
    }),
  );
  return String(out.VersionNumber);
}

/** Writes the rollout item as a deployment from before contents were kept left it: versions (and lock), no contents. */
async function putLegacy(state: RolloutState, lock?: RolloutItem['lock']): Promise<RolloutItem> {
  expect(state.contents).toBeUndefined();
  const cur = await control.getRollout(true);
  return control.putRollout({ state, ...(lock ? { lock } : {}), rev: cur.rev });
}

/**
 * A host of the sessions function, built as the local runtime builds one (fresh store, fresh
 * rollout config, and no AppConfig client at all); opens a session on a new log and returns the
 * answer. A 201's ackTimeoutSeconds is the limits profile's default for its arm.
 */
async function hostOpensSession(logId: string): Promise<{ status: number; body: any }> {
  const call = (
    make: (d: Deps) => (e: HttpEvent, c: GatewayContext) => Promise<HttpResult>,
    entry: string,
    method: string,
    path: string,
    body: unknown,
  ) => {
    const deps: Deps = {
      store: new DynamoStore(dynamo.client, tableNamesFromEnv(envOf(entry))),
      clock: systemClock,
      config: hostConfig(control, systemClock),
    };
    return callRoute(make(deps), CALLER, method, path, body);
  };
  const created = await call(logsHandler, 'lambdas/handlers/logs.ts', 'POST', '/logs', { logId });
  if (created.status !== 201) return created;
  return call(sessionsHandler, 'lambdas/handlers/sessions.ts', 'POST', `/logs/${logId}/sessions`, {});
}

let logCounter = 0;
const nextLogId = () => `upgrade-${++logCounter}`;

beforeAll(async () => {
  const template = synthTemplate();
  appConfig = LocalAppConfig.fromTemplate(template);
  system = readSystem(template, undefined, (v, where) =>
    String(
      resolveIntrinsics(template, v, where, {
        ref: (id) => appConfig.resolveRef(id),
        getAtt: (id, attr) => appConfig.resolveGetAtt(id, attr),
      }),
    ),
  );
  dynamo = await startEmbeddedDynamo({ tables: system.tables });
  controlTable = tableNamesFromEnv(envOf(UPGRADE_ENTRY)).control;
  control = new DynamoControlStore(dynamo.client, controlTable);
  ids = appConfigIdsFromEnv(envOf(UPGRADE_ENTRY));
}, 120_000);

afterAll(async () => {
  await dynamo?.close();
});

// Each test starts from a deployment with no rollout item stored (a fresh stack).
beforeEach(async () => {
  await DynamoDBDocumentClient.from(dynamo.client).send(new DeleteCommand({ TableName: controlTable, Key: { pk: 'rollout' } }));
});

describe('the upgrade function, as the stack deploys it', () => {
  it('has the Control table and the AppConfig ids in its environment, and no other table', () => {
    const env = envOf(UPGRADE_ENTRY);
    const tables = tableNamesFromEnv(env);
    expect(tables.control).not.toBe('');
    expect([tables.logs, tables.records, tables.sessions]).toEqual(['', '', '']);
    expect(ids.applicationId).toBe(appConfig.findProfile('Logrelay', 'delivery')!.ApplicationId);
    expect(ids.profiles.limits).toBe(appConfig.findProfile('Logrelay', 'limits')!.ConfigurationProfileId);
  });
});

describe('a rollout item from before contents were kept', () => {
  it('is filled in from AppConfig (an approved delivery v2 and a live limits experiment), and a host built then serves it without any AppConfig call', async () => {
    const delivery = await createVersion('delivery', { maxBatchRecords: 7 });
    const limits = await createVersion('limits', { defaultAckTimeoutSeconds: 44 });
    expect(delivery).not.toBe('1');
    const now = Date.now();
    const legacy: RolloutState = {
      control: { delivery, limits: '1' },
      // Weight 100: every keyed request is in the experiment arm.
      experiment: { profile: 'limits', version: limits, weightPercent: 100, bakeId: 'b-older', expiresAtMs: now + 3_600_000 },
    };
    const lock = { bakeId: 'b-older', expiresAtMs: now + 3_600_000, takenAtMs: now };
    const written = await putLegacy(legacy, lock);

    // What the upgrade prevents: on this item a host of the new code answers 500.
    const before = await hostOpensSession(nextLogId());
    expect(before.status).toBe(500);

    const calls = appConfig.calls.GetHostedConfigurationVersion ?? 0;
    const counting = new CountingControl(control);
    const out = await upgrade(counting)();
    expect(out).toEqual({ wrote: true, filled: [`delivery ${delivery}`, 'limits 1', `limits ${limits}`], unfilled: [] });
    expect({ reads: counting.reads, puts: counting.puts }).toEqual({ reads: 1, puts: 1 });
    expect(appConfig.calls.GetHostedConfigurationVersion).toBe(calls + 3);

    // The same state, lock and experiment untouched, plus the contents: one write (rev + 1).
    const item = await control.getRollout(true);
    expect(item.rev).toBe(written.rev + 1);
    expect(item.lock).toEqual(lock);
    expect(item.state).toEqual({
      ...legacy,
      contents: {
        delivery: { [delivery]: JSON.stringify({ maxBatchRecords: 7 }) },
        limits: { '1': contentOf(INITIAL_ROLLOUT, 'limits', '1'), [limits]: JSON.stringify({ defaultAckTimeoutSeconds: 44 }) },
      },
    });

    // A host built now serves both versions from the item alone.
    const served = { ...appConfig.calls };
    const host = await hostOpensSession(nextLogId());
    expect(host.status, JSON.stringify(host.body)).toBe(201);
    expect(host.body.ackTimeoutSeconds).toBe(44); // the experiment's limits version
    const cfg = await hostConfig(control, systemClock).forKey(undefined); // no key: control arm
    expect(cfg.config.delivery.maxBatchRecords).toBe(7);
    expect(cfg.config.limits.defaultAckTimeoutSeconds).toBe(30);
    expect(appConfig.calls).toEqual(served);
  });

  it('re-run (a retried trigger, a later deployment): one read, no write and no AppConfig call', async () => {
    const delivery = await createVersion('delivery', { longPollIntervalMs: 400 });
    await putLegacy({ control: { delivery, limits: '1' } });
    expect((await upgrade(control)()).wrote).toBe(true);
    const after = await storedItem();
    const calls = { ...appConfig.calls };

    for (let run = 0; run < 2; run++) {
      const counting = new CountingControl(control);
      expect(await upgrade(counting)()).toEqual({ wrote: false, filled: [], unfilled: [] });
      expect({ reads: counting.reads, puts: counting.puts }).toEqual({ reads: 1, puts: 0 });
    }
    expect(await storedItem()).toEqual(after);
    expect(appConfig.calls).toEqual(calls);
  });
});

describe('nothing to fill', () => {
  it('a fresh deployment (no rollout item yet: the initial state, with its contents): no write, no item created, no AppConfig call', async () => {
    expect(await storedItem()).toBeUndefined();
    const calls = { ...appConfig.calls };
    const counting = new CountingControl(control);
    expect(await upgrade(counting)()).toEqual({ wrote: false, filled: [], unfilled: [] });
    expect({ reads: counting.reads, puts: counting.puts }).toEqual({ reads: 1, puts: 0 });
    expect(await storedItem()).toBeUndefined();
    expect(appConfig.calls).toEqual(calls);
    // And hosts serve the initial state.
    expect((await hostOpensSession(nextLogId())).status).toBe(201);
  });

  it('an item whose contents are complete (written by this version): no write, no AppConfig call', async () => {
    await control.putRollout({ state: structuredClone(INITIAL_ROLLOUT), rev: 0 });
    const stored = await storedItem();
    const calls = { ...appConfig.calls };
    const counting = new CountingControl(control);
    expect(await upgrade(counting)()).toEqual({ wrote: false, filled: [], unfilled: [] });
    expect(counting.puts).toBe(0);
    expect(await storedItem()).toEqual(stored);
    expect(appConfig.calls).toEqual(calls);
  });
});

describe('a rollout state written between the upgrade’s read and its write is never overwritten', () => {
  it('a POST /bakes (of the new code) takes the lock and fills the item first: the upgrade’s put is refused, it reads the new state, finds it complete and writes nothing', async () => {
    const delivery = await createVersion('delivery', { maxBatchRecords: 11 });
    const made = await createVersion('delivery', { maxBatchRecords: 12 });
    const legacy = await putLegacy({ control: { delivery, limits: '1' } });
    const bakes = new BakeService(
      control,
      new AppConfigVersions(appConfig.toClient(), ids),
      ids,
      { armSeries: async () => ({ control: [], experiment: [] }) },
      { start: async () => {} },
      systemClock,
    );
    let bakeId = '';
    const racing = new CountingControl(control, async (attempt) => {
      if (attempt === 0)
        bakeId = (
          await bakes.startBake([{ profile: 'delivery', version: made }], {
            weightPercent: 10,
            bakeSeconds: 60,
            pollSeconds: 10,
            minExperimentRequests: 200,
          })
        ).bakeId;
    });
    const out = await upgrade(racing)();
    expect(out).toEqual({ wrote: false, filled: [], unfilled: [] });
    expect({ reads: racing.reads, puts: racing.puts }).toEqual({ reads: 2, puts: 1 });

    const item = await control.getRollout(true);
    expect(item.rev).toBe(legacy.rev + 1); // the bake's write only
    expect(item.lock?.bakeId).toBe(bakeId);
    expect(contentOf(item.state, 'delivery', delivery)).toBe(JSON.stringify({ maxBatchRecords: 11 }));
    expect(contentOf(item.state, 'limits', '1')).toBeDefined();
  });

  it("an older deployment's admin function still finishing a request (it approves a version, writing no content): the upgrade reads that state and fills it in, keeping the change", async () => {
    const v2 = await createVersion('delivery', { maxBatchRecords: 21 });
    const v3 = await createVersion('delivery', { maxBatchRecords: 22 });
    const legacy = await putLegacy({ control: { delivery: v2, limits: '1' } });
    const racing = new CountingControl(control, async (attempt) => {
      // As the older code wrote: versions only, the same `rev` condition.
      if (attempt === 0) await control.putRollout({ state: { control: { delivery: v3, limits: '1' } }, rev: legacy.rev });
    });
    const out = await upgrade(racing)();
    expect(out).toEqual({ wrote: true, filled: [`delivery ${v3}`, 'limits 1'], unfilled: [] });
    expect({ reads: racing.reads, puts: racing.puts }).toEqual({ reads: 2, puts: 2 });
    const item = await control.getRollout(true);
    expect(item.rev).toBe(legacy.rev + 2);
    expect(item.state.control.delivery).toBe(v3);
    // Only the contents of versions the state names: v2's went with it.
    expect(item.state.contents).toEqual({
      delivery: { [v3]: JSON.stringify({ maxBatchRecords: 22 }) },
      limits: { '1': contentOf(INITIAL_ROLLOUT, 'limits', '1') },
    });
  });
});

describe('crashes and retries', () => {
  it('a lost response (the put applied, the retry of it refused): the upgrade reads the filled item and succeeds; a re-run writes nothing', async () => {
    const delivery = await createVersion('delivery', { maxBatchRecords: 31 });
    const legacy = await putLegacy({ control: { delivery, limits: '1' } });
    const lossy = new CountingControl(control, undefined, async (attempt) => {
      // The write is stored; the answer is lost, and the SDK's retry of it fails its condition.
      if (attempt === 0) throw new ConflictError();
    });
    expect(await upgrade(lossy)()).toEqual({ wrote: false, filled: [], unfilled: [] });
    expect({ reads: lossy.reads, puts: lossy.puts }).toEqual({ reads: 2, puts: 1 });
    const item = await control.getRollout(true);
    expect(item.rev).toBe(legacy.rev + 1);
    expect(contentOf(item.state, 'delivery', delivery)).toBe(JSON.stringify({ maxBatchRecords: 31 }));
    const counting = new CountingControl(control);
    expect((await upgrade(counting)()).wrote).toBe(false);
    expect(counting.puts).toBe(0);
  });

  it('AppConfig throttling every call: the upgrade fails (the trigger fails, the deployment rolls back), writing nothing; the retried deployment fills the item', async () => {
    const delivery = await createVersion('delivery', { maxBatchRecords: 41 });
    const legacy = await putLegacy({ control: { delivery, limits: '1' } });
    const faults = new FaultInjector({ throttle: 1, appliedThenError: 0, slow: 0, slowMs: 0, seed: 7, seedGiven: true });
    const counting = new CountingControl(control);
    await expect(upgrade(counting, appConfig.toClient({ faults }))()).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(faults.calls.appconfig).toBeGreaterThan(0);
    expect({ reads: counting.reads, puts: counting.puts }).toEqual({ reads: 1, puts: 0 });
    expect((await control.getRollout(true)).rev).toBe(legacy.rev);

    expect((await upgrade(control)()).wrote).toBe(true);
    expect(contentOf((await control.getRollout(true)).state, 'delivery', delivery)).toBe(JSON.stringify({ maxBatchRecords: 41 }));
  });
});

describe('a version hosts serve that AppConfig no longer has', () => {
  it('fails the upgrade with a sentence naming it and what to do, after filling in what it could', async () => {
    const legacy = await putLegacy({ control: { delivery: '99', limits: '1' } });
    const err = await upgrade(control)().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.name).toBe('UpgradeBlockedError');
    expect(err?.message).toMatch(/names version 99 of profile delivery without its content, and AppConfig has no servable copy/);
    expect(err?.message).toMatch(/the deployment rolls back.*bake a version that AppConfig has \(POST \/bakes\)/);
    const item = await control.getRollout(true);
    expect(item.rev).toBe(legacy.rev + 1);
    expect(contentOf(item.state, 'limits', '1')).toBeDefined();
    expect(contentOf(item.state, 'delivery', '99')).toBeUndefined();
  });

  it('does not block on an expired experiment’s version, which no host serves: it stays listed as unfilled', async () => {
    const legacy = await putLegacy({
      control: { delivery: '1', limits: '1' },
      experiment: { profile: 'delivery', version: '98', weightPercent: 10, bakeId: 'b-dead', expiresAtMs: Date.now() - 1000 },
    });
    expect(await upgrade(control)()).toEqual({ wrote: true, filled: ['delivery 1', 'limits 1'], unfilled: ['delivery 98'] });
    expect((await control.getRollout(true)).rev).toBe(legacy.rev + 1);
    expect((await hostOpensSession(nextLogId())).status).toBe(201);
  });
});

describe('the local runtime runs the upgrade when it starts', () => {
  it('a --data-dir whose rollout item predates contents is filled in at start, and its hosts serve it', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { startLocalRuntime } = await import('../../local/server');
    const { SignedHttp } = await import('../../local/client');
    const dataDir = mkdtempSync(join(tmpdir(), 'logrelay-upgrade-'));
    const opts = { port: 0, dataDir, credentialsPath: join(dataDir, 'credentials.json'), log: () => {}, faults: null };
    try {
      const first = await startLocalRuntime(opts);
      const table = first.system.tables.find((t) => t.logicalId.startsWith('Control'))!.name;
      const store = new DynamoControlStore(first.dynamo.client, table);
      const item = await store.getRollout(true);
      // As a deployment of the previous version left it: versions only.
      await store.putRollout({ state: { control: { ...item.state.control } }, rev: item.rev });
      await first.close();

      const lines: string[] = [];
      const second = await startLocalRuntime({ ...opts, log: (l) => lines.push(l) });
      try {
        expect(lines.filter((l) => l.startsWith('upgraded the stored rollout state'))).toEqual([
          'upgraded the stored rollout state: copied delivery 1, limits 1 from AppConfig',
        ]);
        const state = (await new DynamoControlStore(second.dynamo.client, table).getRollout(true)).state;
        expect(contentOf(state, 'delivery', '1')).toBeDefined();
        const r = await new SignedHttp(second.url, second.principals[0]!).call('POST', '/logs', { logId: 'after-upgrade' });
        expect(r.status).toBe(201);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
