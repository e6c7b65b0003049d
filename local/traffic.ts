/**
 * Steady synthetic traffic over signed HTTP, for watching a bake (the demo's bake half, the
 * end-to-end bake test, and `npm run traffic` against a running `npm start`): one producer and
 * several workers per log. Producers append fixed-size batches with idempotency keys and retry a
 * refused batch until the service takes it, so a bad `limits` version delays records but never
 * loses them; workers receive, ack (retrying until acked) and stop only once everything appended
 * is acked. With `requestsPerSecond`, every request waits for its slot, so the whole traffic
 * keeps to that rate. Each request is counted under the key that picks its arm (the session id
 * on session routes, else the log id), so a caller that knows the live experiment can tell how
 * many requests each arm got.
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
  /** At most this many requests a second, all of them together. @default unlimited */
  requestsPerSecond?: number;
}

export interface TrafficTally {
  appended: number;
  acked: number;
  /** Appends refused, by error code. */
  refused: Record<string, number>;
  /** Log ids whose appends were refused at least once. */
  refusedLogs: Set<string>;
  /** Requests sent (every attempt), POST /logs and session creation included. */
  requests: number;
}

export class Traffic {
  readonly logIds: string[];
  readonly sessions = new Map<string, string>();
  private readonly appended = new Map<string, number>();
  private readonly acked = new Map<string, Set<number>>();
  private readonly refused: Record<string, number> = {};
  private readonly refusedLogs = new Set<string>();
  /** Requests sent by arm key (session id, else log id; '' for POST /logs, which has neither). */
  private readonly byKey = new Map<string, number>();
  private nextSlotMs = 0;
  private error: unknown;
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
      const log = await this.call('', 'POST', '/logs', { logId });
      if (log.status !== 201) throw new Error(`create log ${logId}: ${log.status} ${JSON.stringify(log.body)}`);
      const s = await this.call(logId, 'POST', `/logs/${logId}/sessions`, { ackTimeoutSeconds: this.opts.ackTimeoutSeconds ?? 5 });
      if (s.status !== 201) throw new Error(`open session on ${logId}: ${s.status} ${JSON.stringify(s.body)}`);
      this.sessions.set(logId, s.body.sessionId);
      this.acked.set(logId, new Set());
    }
    // A loop that throws (the service went away) ends; the first error is kept for stop().
    const keep = (p: Promise<void>) =>
      p.catch((e: unknown) => {
        this.error ??= e;
      });
    this.producers = this.logIds.map((l) => keep(this.produce(l)));
    this.workers = this.logIds.flatMap((l) => Array.from({ length: this.opts.workersPerLog ?? 2 }, () => keep(this.work(l))));
  }

  /** Stops producing, then waits until every appended record is acked; throws the first error a producer or worker met. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.producers);
    this.producersDone = true;
    await Promise.all(this.workers);
    if (this.error !== undefined) throw this.error;
  }

  /** The first error a producer or worker met (each loop that meets one ends), if any. */
  failure(): unknown {
    return this.error;
  }

  /** Requests sent so far by arm key: session ids and log ids ('' for POST /logs). */
  requestsByKey(): ReadonlyMap<string, number> {
    return new Map(this.byKey);
  }

  tally(): TrafficTally {
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    return {
      appended: sum(this.appended),
      acked: [...this.acked.values()].reduce((a, s) => a + s.size, 0),
      refused: { ...this.refused },
      refusedLogs: new Set(this.refusedLogs),
      requests: [...this.byKey.values()].reduce((a, b) => a + b, 0),
    };
  }

  /** One request, in its slot when a rate is set, counted under `key`. */
  private async call(key: string, method: string, path: string, body?: unknown) {
    const rps = this.opts.requestsPerSecond;
    if (rps !== undefined && rps > 0) {
      // Slots 1/rps apart, handed out in the order requests ask: the traffic as a whole keeps to the rate.
      const now = Date.now();
      const slot = Math.max(now, this.nextSlotMs);
      this.nextSlotMs = slot + 1000 / rps;
      if (slot > now) await sleep(slot - now);
    }
    this.byKey.set(key, (this.byKey.get(key) ?? 0) + 1);
    return this.http.call(method, path, body);
  }

  private async produce(logId: string): Promise<void> {
    const size = this.opts.recordsPerBatch ?? 5;
    for (let n = 0; !this.stopping; n++) {
      const records = Array.from({ length: size }, (_, i) => ({ data: { logId, batch: n, i } }));
      for (;;) {
        const r = await this.call(logId, 'POST', `/logs/${logId}/records`, { records, idempotencyKey: `${logId}-${n}` });
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
      const r = await this.call(sessionId, 'POST', `/sessions/${sessionId}/receive`, { maxRecords: 20 });
      const recs: { seq: number }[] = r.status === 200 ? r.body.records : [];
      if (recs.length) {
        // Acks are retried until the service answers 200: an unacked record would be redelivered.
        while ((await this.call(sessionId, 'POST', `/sessions/${sessionId}/ack`, { seqs: recs.map((x) => x.seq) })).status !== 200)
          await sleep(50);
        for (const x of recs) seen.add(x.seq);
        continue;
      }
      if (this.producersDone) {
        const d = await this.call(sessionId, 'GET', `/sessions/${sessionId}`);
        if (d.status === 200 && d.body.inFlight === 0 && d.body.lag === 0) return;
      }
      await sleep(80);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
