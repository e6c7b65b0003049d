/**
 * Config reads on the request path. AppConfig's GetHostedConfigurationVersion is a control-plane
 * API with low request quotas; a scale-out, or the start of an experiment, makes every cold
 * container need its config at once. Hosts therefore serve each version's content from the
 * rollout item (the Control table), which the bake fills on the control path, and never call
 * AppConfig.
 *
 * On the local runtime (its local AppConfig counts the calls it answers), with a real bake
 * started by POST /bakes and driven by the stack's state machine, this starts 200 cold hosts at
 * once, each built as the runtime builds a host (fresh deps, empty caches; a host's deps hold no
 * AppConfig client at all, so an AppConfig throttle cannot reach the request path), right when
 * the experiment has gone live, and checks: no AppConfig call, one Control read per host, each
 * arm served its version's content. Then the control path: a version created straight in AppConfig is copied at bake
 * start; a rollout item from before contents were kept is filled in; unservable content is a 400.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateHostedConfigurationVersionCommand } from '@aws-sdk/client-appconfig';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { SignedHttp } from '../../local/client';
import type { GatewayContext } from '../../local/gateway';
import { callRoute } from '../support/route-call';
import { DynamoStore } from '../../lambdas/adapters/store';
import { DynamoControlStore } from '../../lambdas/adapters/control';
import { appConfigIdsFromEnv, type AppConfigIds, type ConfigVersions } from '../../lambdas/adapters/appconfig';
import { hostConfig, tableNamesFromEnv } from '../../lambdas/http/deps';
import { systemClock } from '../../lambdas/services/logs';
import { BakeService } from '../../lambdas/services/bakes';
import { refusalOf } from '../support/refusal';
import { armOf, contentOf, type Experiment } from '../../lambdas/domain/config';
import type { HttpEvent, HttpResult } from '../../lambdas/http/api';
import { makeHandler as logsHandler } from '../../lambdas/handlers/logs';
import { makeHandler as sessionsHandler } from '../../lambdas/handlers/sessions';
import type { Deps } from '../../lambdas/http/deps';

const SCALE = 5;
const HOSTS = 200;
const CALLER = { userArn: 'arn:aws:iam::123456789012:user/cold-hosts', accessKey: 'AKIDCOLD', accountId: '123456789012' };

let rt: LocalRuntime;
let admin: SignedHttp;
let control: DynamoControlStore;
let ids: AppConfigIds;
let logIds: string[];

/** The function's table names, from its environment as the stack set it. */
const tablesOf = (entry: string) => tableNamesFromEnv(Object.values(rt.system.functions).find((f) => f.entry === entry)!.environment);

/** Counts the rollout reads of the hosts built over it. */
class CountingControl {
  reads = 0;
  constructor(private readonly inner: DynamoControlStore) {}
  getRollout(consistent: boolean) {
    this.reads++;
    return this.inner.getRollout(consistent);
  }
}

/**
 * A cold host of `make`'s function, built the way local/server.ts builds one: a fresh store, a
 * fresh rollout config (empty caches) and the AppConfig versions adapter over `versions`' client.
 */
function coldHost(make: (d: Deps) => (e: HttpEvent, c: GatewayContext) => Promise<HttpResult>, entry: string, reads: CountingControl) {
  const deps: Deps = {
    store: new DynamoStore(rt.dynamo.client, tablesOf(entry)),
    clock: systemClock,
    config: hostConfig(reads, systemClock, SCALE),
  };
  const handler = make(deps);
  return (method: string, path: string, body: unknown): Promise<{ status: number; body: any }> =>
    callRoute(handler, CALLER, method, path, body);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a bake of `changes` through POST /bakes and waits until its experiment is live in the rollout item. */
async function startExperiment(profile: 'delivery' | 'limits', version: string): Promise<Experiment> {
  const r = await admin.call('POST', '/bakes', { changes: [{ profile, version }], weightPercent: 50, bakeSeconds: 600, pollSeconds: 1 });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  const bakeId = r.body.bakeId as string;
  for (let i = 0; i < 400; i++) {
    const e = (await control.getRollout(true)).state.experiment;
    if (e?.bakeId === bakeId) return e;
    await sleep(25);
  }
  throw new Error(`the experiment of bake ${bakeId} never went live`);
}

/** Aborts the bake and waits for its execution to clean up (experiment cleared, lock released). */
async function endBake(bakeId: string): Promise<void> {
  const r = await admin.call('POST', `/bakes/${bakeId}/abort`);
  expect([202, 409]).toContain(r.status);
  await rt.bakeExecutions.get(bakeId);
  expect((await control.getRollout(true)).lock).toBeUndefined();
}

beforeAll(async () => {
  const credentialsPath = join(mkdtempSync(join(tmpdir(), 'logrelay-config-reads-')), 'c.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [{ name: 'ops', accessKeyId: 'LRCFGADMIN000000', secretAccessKey: 'cfg-admin-secret-00000000000000000', admin: true }],
    }),
  );
  rt = await startLocalRuntime({ port: 0, timeScale: SCALE, credentialsPath, log: () => {}, faults: null });
  admin = new SignedHttp(rt.url, rt.principals[0]!);
  control = new DynamoControlStore(rt.dynamo.client, tablesOf('lambdas/handlers/admin.ts').control);
  ids = appConfigIdsFromEnv(Object.values(rt.system.functions).find((f) => f.entry === 'lambdas/handlers/admin.ts')!.environment);
  // The logs the cold hosts open sessions on (one host creates them).
  const create = coldHost(logsHandler, 'lambdas/handlers/logs.ts', new CountingControl(control));
  logIds = Array.from({ length: HOSTS }, (_, i) => `cold-${i}`);
  for (const logId of logIds) expect((await create('POST', '/logs', { logId })).status).toBe(201);
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

/** HOSTS cold hosts at once, each opening a session (no ackTimeoutSeconds: the limits profile's default applies). */
async function coldStart() {
  const reads = new CountingControl(control);
  const hosts = logIds.map(() => coldHost(sessionsHandler, 'lambdas/handlers/sessions.ts', reads));
  const replies = await Promise.all(hosts.map((open, i) => open('POST', `/logs/${logIds[i]}/sessions`, {})));
  return { replies, reads: reads.reads };
}

describe('200 cold hosts starting at once, as an experiment goes live', () => {
  it('make no AppConfig call, read the Control table once each, and serve each arm its version, copied from a version created straight in AppConfig', async () => {
    // A version made outside the service (console, CLI): the bake copies it when it starts.
    const created = await rt.appConfig.send(
      new CreateHostedConfigurationVersionCommand({
        ApplicationId: ids.applicationId,
        ConfigurationProfileId: ids.profiles.limits,
        Content: new TextEncoder().encode(JSON.stringify({ defaultAckTimeoutSeconds: 77 })),
        ContentType: 'application/json',
      }),
    );
    const version = String(created.VersionNumber);
    const callsBeforeBake = { ...rt.appConfig.calls };
    const e = await startExperiment('limits', version);
    // POST /bakes read the version once, on the control path; the state machine's tasks read none.
    expect(rt.appConfig.calls.GetHostedConfigurationVersion ?? 0).toBe((callsBeforeBake.GetHostedConfigurationVersion ?? 0) + 1);
    expect(JSON.parse(contentOf((await control.getRollout(true)).state, 'limits', version)!)).toEqual({ defaultAckTimeoutSeconds: 77 });

    const before = { ...rt.appConfig.calls };
    const { replies, reads } = await coldStart();
    expect(rt.appConfig.calls).toEqual(before);
    expect(reads).toBe(HOSTS);

    const byArm = { control: 0, experiment: 0 };
    replies.forEach((r, i) => {
      expect({ i, status: r.status }).toEqual({ i, status: 201 });
      const arm = armOf(e, logIds[i]);
      byArm[arm]++;
      expect({ i, arm, ack: r.body.ackTimeoutSeconds }).toEqual({ i, arm, ack: arm === 'experiment' ? 77 : 30 });
    });
    // Both arms were served (weight 50%: about half each).
    expect(byArm.experiment).toBeGreaterThan(HOSTS / 4);
    expect(byArm.control).toBeGreaterThan(HOSTS / 4);
    await endBake(e.bakeId);
  }, 60_000);
});

describe('POST /bakes copies, on the control path, what hosts will serve', () => {
  it('fills in a rollout item written before contents were kept: hosts fail on it until then, and serve it after', async () => {
    const item = await control.getRollout(true);
    // As a deployment of the previous version left it: versions only.
    await control.putRollout({ state: { control: { ...item.state.control } }, rev: item.rev });
    const failing = await coldStart();
    expect(failing.replies.every((r) => r.status === 500)).toBe(true);

    const made = await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 9 } });
    const e = await startExperiment('delivery', made.body.version);
    const state = (await control.getRollout(true)).state;
    expect(contentOf(state, 'limits', state.control.limits)).toBeDefined();
    expect(contentOf(state, 'delivery', state.control.delivery)).toBeDefined();
    const { replies } = await coldStart();
    expect(replies.filter((r) => r.status !== 201)).toEqual([]);
    await endBake(e.bakeId);
  }, 60_000);

  it('refuses with 400, writing nothing, a version whose content is not JSON or too big to be served', async () => {
    const versions: ConfigVersions = {
      get: async (_p, v) => {
        if (v === '7') return JSON.parse('{"maxBatchRecords": 5,') as unknown; // not JSON, as a version created outside the service could be
        if (v === '8') return { note: 'x'.repeat(2000) };
        return {};
      },
      create: async () => '9',
      list: async () => [],
    };
    const service = new BakeService(
      control,
      versions,
      ids,
      { armSeries: async () => ({ control: [], experiment: [] }) },
      { start: async () => {} },
      systemClock,
    );
    const before = await control.getRollout(true);
    for (const [version, why] of [
      ['7', /delivery version 7 is not JSON/],
      ['8', /delivery version 8 is 2\d{3} bytes of JSON, over the 1024 a served version may have/],
    ] as const) {
      const err = await service
        .startBake([{ profile: 'delivery', version }], { weightPercent: 10, bakeSeconds: 60, pollSeconds: 10, minExperimentRequests: 200 })
        .then(
          () => undefined,
          (x: unknown) => x,
        );
      const r = refusalOf(err);
      expect(r.status).toBe(400);
      expect(r.message).toMatch(why);
    }
    expect(await control.getRollout(true)).toEqual(before);
  });
});
