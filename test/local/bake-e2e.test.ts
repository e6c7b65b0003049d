/**
 * End to end on the local runtime: producers and workers keep traffic flowing over HTTP while a
 * bake, started with POST /bakes, runs a good `delivery` change and then a bad `limits` change
 * (maxRecordsPerAppend = 1, so valid 5-record appends are refused in the experiment arm). The
 * stack's own alarms, evaluated on the metrics the handlers emit, must reject the bad change;
 * the good one must be approved; control traffic must never meet the bad limit; and every record
 * appended must be delivered and acked by the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { SignedHttp } from '../../local/client';
import { armOf } from '../../lambdas/domain/config';
import type { AlarmStateChange } from '../../local/cloudwatch/alarms';

const SCALE = 5;
const LOGS = 12;
const BATCH = 5;
const POLL_SECONDS = 10;

let rt: LocalRuntime;
let worker: SignedHttp;
let admin: SignedHttp;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  const credentialsPath = join(mkdtempSync(join(tmpdir(), 'logrelay-e2e-')), 'c.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [
        { name: 'ops', accessKeyId: 'LRE2EADMIN000000', secretAccessKey: 'e2e-admin-secret-0000000000000000', admin: true },
        { name: 'workers', accessKeyId: 'LRE2EWORKER00000', secretAccessKey: 'e2e-worker-secret-000000000000000', admin: false },
      ],
    }),
  );
  rt = await startLocalRuntime({ port: 0, timeScale: SCALE, credentialsPath, log: () => {} });
  worker = new SignedHttp(rt.url, rt.principals.find((p) => !p.admin)!);
  admin = new SignedHttp(rt.url, rt.principals.find((p) => p.admin)!);
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

describe('a bake on the local runtime under live traffic', () => {
  it('approves a good delivery change, rejects a bad limits change within one poll of its alarm, and loses nothing', async () => {
    const good = await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 50, longPollIntervalMs: 100 } });
    const bad = await admin.call('POST', '/configs/limits/versions', { content: { maxRecordsPerAppend: 1 } });
    expect([good.status, bad.status]).toEqual([201, 201]);

    const logIds = Array.from({ length: LOGS }, (_, i) => `e2e-${i}`);
    const sessions: string[] = [];
    for (const logId of logIds) {
      expect((await worker.call('POST', '/logs', { logId })).status).toBe(201);
      const s = await worker.call('POST', `/logs/${logId}/sessions`, { ackTimeoutSeconds: 5 });
      sessions.push(s.body.sessionId);
    }

    // Alarm transitions, as CloudWatch would report them.
    const changes: AlarmStateChange[] = [];
    rt.cloudwatch.onStateChange((c) => changes.push(c));

    let stop = false;
    let producersDone = false;
    const appended = new Map<string, number>();
    const refused: { logId: string; code: string; atMs: number }[] = [];
    const producer = async (logId: string) => {
      let n = 0;
      while (!stop) {
        const key = `${logId}-${n}`;
        const records = Array.from({ length: BATCH }, (_, i) => ({ data: { logId, batch: n, i } }));
        // A refused batch is retried, with the same idempotency key, until the service takes it.
        for (;;) {
          const r = await worker.call('POST', `/logs/${logId}/records`, { records, idempotencyKey: key });
          if (r.status === 201) {
            break;
          }
          refused.push({ logId, code: r.body?.error?.code ?? String(r.status), atMs: Date.now() });
          await sleep(100);
        }
        appended.set(logId, (appended.get(logId) ?? 0) + BATCH);
        n++;
        await sleep(60);
      }
    };
    const acked = new Map<string, Set<number>>();
    const ackFailures: string[] = [];
    const ack = async (sessionId: string, recs: { seq: number }[]) => {
      const r = await worker.call('POST', `/sessions/${sessionId}/ack`, { seqs: recs.map((x) => x.seq) });
      if (r.status !== 200) ackFailures.push(`${r.status} ${r.body?.error?.code}`);
      return r.status;
    };
    const consumer = async (sessionId: string, logId: string, untilDrained: () => boolean) => {
      const seen = acked.get(logId) ?? new Set<number>();
      acked.set(logId, seen);
      for (;;) {
        const r = await worker.call('POST', `/sessions/${sessionId}/receive`, { maxRecords: 20 });
        if (r.status !== 200) {
          await sleep(50);
          continue;
        }
        const recs: { seq: number }[] = r.body.records;
        if (recs.length) {
          // Acks are retried until the service answers: an unacked record would be redelivered.
          for (let a = await ack(sessionId, recs); a !== 200; a = await ack(sessionId, recs)) await sleep(50);
          for (const x of recs) seen.add(x.seq);
        } else {
          if (untilDrained()) {
            const d = (await worker.call('GET', `/sessions/${sessionId}`)).body;
            if (d.inFlight === 0 && d.lag === 0) return;
          }
          await sleep(80);
        }
      }
    };

    const producers = logIds.map((l) => producer(l));
    // Two workers per session.
    const consumers = logIds.flatMap((l, i) => [consumer(sessions[i]!, l, () => producersDone), consumer(sessions[i]!, l, () => producersDone)]);

    await sleep(1500); // traffic before the bake: control only
    const started = await admin.call('POST', '/bakes', {
      changes: [
        { profile: 'delivery', version: good.body.version },
        { profile: 'limits', version: bad.body.version },
      ],
      weightPercent: 50,
      bakeSeconds: 60,
      pollSeconds: POLL_SECONDS,
      minExperimentRequests: 50,
    });
    expect(started.status).toBe(202);
    const bakeId: string = started.body.bakeId;
    await rt.bakeExecutions.get(bakeId);
    const record = (await admin.call('GET', `/bakes/${bakeId}`)).body;
    // Let hosts drop the rejected experiment (one cache period), then stop producing and drain.
    await sleep(3000);
    stop = true;
    await Promise.all(producers);
    producersDone = true;
    await Promise.all(consumers);

    // Verdicts.
    expect(record.status).toBe('SUCCEEDED');
    expect(record.phases.map((p: { verdict: string }) => p.verdict)).toEqual(['APPROVED', 'REJECTED']);
    expect(record.phases[1].reason).toMatch(/experiment-4xx-vs-control.* in ALARM/);
    const configs = (await admin.call('GET', '/configs')).body.profiles;
    expect(configs.delivery.control).toBe(good.body.version);
    expect(configs.limits.control).toBe('1');
    expect(configs.limits.experiment).toBeUndefined();

    // Rejected within one poll interval of the alarm firing (plus the tasks' own run time).
    const fired = changes.find((c) => c.alarmName.endsWith('-bake-experiment-4xx-vs-control') && c.newState === 'ALARM');
    expect(fired).toBeDefined();
    const rejectedAt = Date.parse(record.phases[1].endedAt);
    const pollMs = (POLL_SECONDS * 1000) / SCALE;
    console.log(`[bake-e2e] 4xx alarm fired -> phase rejected: ${rejectedAt - fired!.timestampMs} ms (poll interval ${pollMs} ms); refused appends: ${refused.length}; ack retries: ${ackFailures.length} ${[...new Set(ackFailures)].join(', ')}`);
    expect(rejectedAt - fired!.timestampMs).toBeLessThanOrEqual(pollMs + 1000);
    expect(rejectedAt).toBeGreaterThanOrEqual(fired!.timestampMs);

    // The bad limit hurt only its arm: refusals only for logs in the experiment arm, and the
    // control arm's 4xx count (from the metrics the handlers emitted) stayed 0.
    expect(refused.length).toBeGreaterThan(0);
    const experiment = { profile: 'limits' as const, version: bad.body.version, weightPercent: 50, bakeId, expiresAtMs: Infinity };
    for (const r of refused) expect(armOf(experiment, r.logId)).toBe('experiment');
    expect(new Set(refused.map((r) => r.code))).toEqual(new Set(['ValidationError']));
    const control4xx = rt.cloudwatch.getMetricData({
      MetricDataQueries: [
        {
          Id: 'c4',
          MetricStat: {
            Metric: { Namespace: 'Logrelay', MetricName: 'Errors4xx', Dimensions: [{ Name: 'service', Value: 'logrelay' }, { Name: 'Arm', Value: 'control' }] },
            Period: 10,
            Stat: 'Sum',
          },
        },
      ],
      StartTime: new Date(Date.now() - 3_600_000),
      EndTime: new Date(Date.now() + 60_000),
    });
    const c4 = control4xx.MetricDataResults[0]!.Values ?? [];
    expect(c4.length).toBeGreaterThan(0);
    expect(c4.reduce((a, b) => a + b, 0)).toBe(0);

    // Nothing lost, nothing left unacked.
    for (const [i, logId] of logIds.entries()) {
      const log = (await worker.call('GET', `/logs/${logId}`)).body;
      expect(log.lastSeq).toBe(appended.get(logId));
      expect(acked.get(logId)!.size).toBe(log.lastSeq);
      const s = (await worker.call('GET', `/sessions/${sessions[i]}`)).body;
      expect(s.ackFloor).toBe(log.lastSeq);
      expect(s.inFlight).toBe(0);
    }
  }, 180_000);
});
