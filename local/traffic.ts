/**
 * Steady synthetic traffic over signed HTTP, for watching a bake (the demo's bake half and the
 * end-to-end bake test): one producer and several workers per log. Producers append fixed-size
 * batches with idempotency keys and retry a refused batch until the service takes it, so a bad
 * `limits` version delays records but never loses them; workers receive, ack (retrying until
 * acked) and stop only once everything appended is acked.
 */
import type { SignedHttp } from './client';

export interface TrafficOptions {
  logs: number;
  workersPerLog?: number;
  recordsPerBatch?: number;
  /** Pause between a producer's batches, ms. */
  producerPauseMs?: number;
  ackTimeoutSeconds?: number;
  prefix?: string;
}

export interface TrafficTally {
  appended: number;
  acked: number;
  /** Appends refused, by error code. */
  refused: Record<string, number>;
  /** Log ids whose appends were refused at least once. */
  refusedLogs: Set<string>;
}

export class Traffic {
  readonly logIds: string[];
  readonly sessions = new Map<string, string>();
  private readonly appended = new Map<string, number>();
  private readonly acked = new Map<string, Set<number>>();
  private readonly refused: Record<string, number> = {};
  private readonly refusedLogs = new Set<string>();
  private stopping = false;
  private producersDone = false;
  private producers: Promise<void>[] = [];
  private workers: Promise<void>[] = [];

  constructor(
    private readonly http: SignedHttp,
    private readonly opts: TrafficOptions,
  ) {
    const prefix = opts.prefix ?? `traffic-${Date.now().toString(36)}`;
    this.logIds = Array.from({ length: opts.logs }, (_, i) => `${prefix}-${i}`);
  }

  async start(): Promise<void> {
    for (const logId of this.logIds) {
      const log = await this.http.call('POST', '/logs', { logId });
      if (log.status !== 201) throw new Error(`create log ${logId}: ${log.status} ${JSON.stringify(log.body)}`);
      const s = await this.http.call('POST', `/logs/${logId}/sessions`, { ackTimeoutSeconds: this.opts.ackTimeoutSeconds ?? 5 });
      if (s.status !== 201) throw new Error(`open session on ${logId}: ${s.status} ${JSON.stringify(s.body)}`);
      this.sessions.set(logId, s.body.sessionId);
      this.acked.set(logId, new Set());
    }
    this.producers = this.logIds.map((l) => this.produce(l));
    this.workers = this.logIds.flatMap((l) => Array.from({ length: this.opts.workersPerLog ?? 2 }, () => this.work(l)));
  }

  /** Stops producing, then waits until every appended record is acked. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.producers);
    this.producersDone = true;
    await Promise.all(this.workers);
  }

  tally(): TrafficTally {
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    return {
      appended: sum(this.appended),
      acked: [...this.acked.values()].reduce((a, s) => a + s.size, 0),
      refused: { ...this.refused },
      refusedLogs: new Set(this.refusedLogs),
    };
  }

  private async produce(logId: string): Promise<void> {
    const size = this.opts.recordsPerBatch ?? 5;
    for (let n = 0; !this.stopping; n++) {
      const records = Array.from({ length: size }, (_, i) => ({ data: { logId, batch: n, i } }));
      for (;;) {
        const r = await this.http.call('POST', `/logs/${logId}/records`, { records, idempotencyKey: `${logId}-${n}` });
        if (r.status === 201) break;
        const code = r.body?.error?.code ?? String(r.status);
        this.refused[code] = (this.refused[code] ?? 0) + 1;
        this.refusedLogs.add(logId);
        await sleep(100);
      }
      this.appended.set(logId, (this.appended.get(logId) ?? 0) + size);
      await sleep(this.opts.producerPauseMs ?? 60);
    }
  }

  private async work(logId: string): Promise<void> {
    const sessionId = this.sessions.get(logId)!;
    const seen = this.acked.get(logId)!;
    for (;;) {
      const r = await this.http.call('POST', `/sessions/${sessionId}/receive`, { maxRecords: 20 });
      const recs: { seq: number }[] = r.status === 200 ? r.body.records : [];
      if (recs.length) {
        // Acks are retried until the service answers 200: an unacked record would be redelivered.
        while ((await this.http.call('POST', `/sessions/${sessionId}/ack`, { seqs: recs.map((x) => x.seq) })).status !== 200) await sleep(50);
        for (const x of recs) seen.add(x.seq);
        continue;
      }
      if (this.producersDone) {
        const d = await this.http.call('GET', `/sessions/${sessionId}`);
        if (d.status === 200 && d.body.inFlight === 0 && d.body.lag === 0) return;
      }
      await sleep(80);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
