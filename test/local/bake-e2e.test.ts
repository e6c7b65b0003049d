/**
 * End to end on the local runtime: producers and workers keep traffic flowing over HTTP while a
 * bake, started with POST /bakes, runs a good `delivery` change and then a bad `limits` change
 * (maxRecordsPerAppend = 1, so valid 5-record appends are refused in the experiment arm). The
 * stack's own alarms, evaluated on the metrics the handlers emit, must reject the bad change;
 * the good one must be approved; control traffic must never meet the bad limit; and every record
 * appended must be delivered and acked by the end. The bake's history must also be what the
 * runtime's EventBridge recorded, one event per transition, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../../local/server';
import type { SignedHttp } from '../../local/client';
import { startTestRuntime } from '../support/runtime';
import { synthTemplate } from '../../local/template';
import { Traffic } from '../../local/traffic';
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
  // The stack as deployed, but for the absolute experiment-p99 alarm (2 s by default): the test
  // is about approval and the 4xx alarm path, and with the whole suite on two cores (load
  // average about 10) the experiment arm's p99 over a 2-second period of a few dozen requests
  // once passed 2 s and rejected the good change. The alarm's definition (2 s) is asserted in
  // test/stack.test.ts, and p99 alarm evaluation in test/local/cloudwatch-alarms.test.ts.
  ({ rt, admin, worker } = await startTestRuntime('E2E', {
    timeScale: SCALE,
    template: synthTemplate({ bakeAlarms: { experimentP99Ms: 15_000 } }),
  }));
}, 120_000);

afterAll(async () => {
  await rt?.close();
});

describe('a bake on the local runtime under live traffic', () => {
  it('approves a good delivery change, rejects a bad limits change within one poll of its alarm, and loses nothing', async () => {
    const good = await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 50, longPollIntervalMs: 100 } });
    const bad = await admin.call('POST', '/configs/limits/versions', { content: { maxRecordsPerAppend: 1 } });
    expect([good.status, bad.status]).toEqual([201, 201]);

    const traffic = new Traffic(worker, { logs: LOGS, workersPerLog: 2, recordsPerBatch: BATCH, prefix: 'e2e' });
    await traffic.start();

    // Alarm transitions, as CloudWatch would report them.
    const changes: AlarmStateChange[] = [];
    rt.cloudwatch.onStateChange((c) => changes.push(c));

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
      // On a shared test machine the p99 of a few dozen requests in a 2-second period swings by
      // tens of percent between arms; the test is about the 4xx path, so the p99 margin is wide.
      // 50% was not wide enough with the suite's other files (Chromium among them) on two cores:
      // the good phase once ended Inconclusive with p99 bounds [-22%, 76%]. The watch test uses
      // 300% for the same reason; the judge's latency test is in test/domain/judge.test.ts.
      latencyMarginPercent: 300,
    });
    expect(started.status).toBe(202);
    const bakeId: string = started.body.bakeId;
    await rt.bakeExecutions.get(bakeId);
    const record = (await admin.call('GET', `/bakes/${bakeId}`)).body;
    // Let hosts drop the rejected experiment (one cache period), then stop producing and drain.
    await sleep(3000);
    await traffic.stop();
    const tally = traffic.tally();

    console.log(`[bake-e2e] phase 1: ${record.phases[0].reason}`);
    // Verdicts.
    expect(record.status).toBe('SUCCEEDED');
    expect(record.phases.map((p: { verdict: string }) => p.verdict)).toEqual(['APPROVED', 'REJECTED']);
    expect(record.phases[1].reason).toMatch(/experiment-4xx-vs-control.* in ALARM/);
    const configs = (await admin.call('GET', '/configs')).body.profiles;
    expect(configs.delivery.control).toBe(good.body.version);
    expect(configs.limits.control).toBe('1');
    expect(configs.limits.experiment).toBeUndefined();

    // Its transitions, published as EventBridge events in order, say what the history says.
    expect(record.history.map((t: { type: string }) => t.type).filter((t: string) => t !== 'PhaseExtended')).toEqual([
      'BakeStarted',
      'PhaseBaking',
      'PhaseApproved',
      'PhaseBaking',
      'PhaseRejected',
      'BakeEnded',
    ]);
    expect(rt.events.list().map((e) => e.detail)).toEqual(record.history);
    expect(rt.events.list().map((e) => e.detailType)).toEqual(record.history.map((t: { type: string }) => t.type));

    // Rejected within one poll interval of the alarm firing (plus the tasks' own run time).
    const fired = changes.find((c) => c.alarmName.endsWith('-bake-experiment-4xx-vs-control') && c.newState === 'ALARM');
    expect(fired).toBeDefined();
    const rejectedAt = Date.parse(record.phases[1].endedAt);
    const pollMs = (POLL_SECONDS * 1000) / SCALE;
    console.log(
      `[bake-e2e] 4xx alarm fired -> phase rejected: ${rejectedAt - fired!.timestampMs} ms (poll interval ${pollMs} ms); refused appends: ${JSON.stringify(tally.refused)}`,
    );
    expect(rejectedAt - fired!.timestampMs).toBeLessThanOrEqual(pollMs + 1000);
    expect(rejectedAt).toBeGreaterThanOrEqual(fired!.timestampMs);

    // The bad limit hurt only its arm: refusals only for logs in the experiment arm, and the
    // control arm's 4xx count (from the metrics the handlers emitted) stayed 0.
    expect(tally.refusedLogs.size).toBeGreaterThan(0);
    const experiment = { profile: 'limits' as const, version: bad.body.version, weightPercent: 50, bakeId, expiresAtMs: Infinity };
    for (const logId of tally.refusedLogs) expect(armOf(experiment, logId)).toBe('experiment');
    expect(Object.keys(tally.refused)).toEqual(['ValidationError']);
    const control4xx = rt.cloudwatch.getMetricData({
      MetricDataQueries: [
        {
          Id: 'c4',
          MetricStat: {
            Metric: {
              Namespace: 'Logrelay',
              MetricName: 'Errors4xx',
              Dimensions: [
                { Name: 'service', Value: 'logrelay' },
                { Name: 'Arm', Value: 'control' },
              ],
            },
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
    expect(tally.acked).toBe(tally.appended);
    let stored = 0;
    for (const logId of traffic.logIds) {
      const log = (await worker.call('GET', `/logs/${logId}`)).body;
      stored += log.lastSeq;
      const s = (await worker.call('GET', `/sessions/${traffic.sessions.get(logId)}`)).body;
      expect(s.ackFloor).toBe(log.lastSeq);
      expect(s.inFlight).toBe(0);
    }
    expect(stored).toBe(tally.appended);
    expect(tally.appended).toBeGreaterThan(0);
  }, 180_000);
});
