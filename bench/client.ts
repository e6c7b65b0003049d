/**
 * The benchmark's clients: a producer and N stateless workers speaking signed HTTP to the local
 * runtime. This module runs in a worker thread (see bench/delivery.ts), so the clients' own CPU
 * (signing, JSON, fetch) is not taken from the thread that runs the service and its store, the
 * way real worker hosts are other machines.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { SignedHttp, type Reply } from '../local/client';
import { httpApiMeteredRequests } from './prices';

export interface ClientSetup {
  url: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export type ClientCommand =
  | { type: 'createLog'; logId: string }
  | { type: 'append'; logId: string; recordBytes: number; total: number; batch: number }
  | { type: 'createSession'; logId: string; body: Record<string, unknown> }
  | { type: 'deliver'; sessionId: string; total: number; workers: number; maxRecords: number; timeoutMs: number; ack: AckMode }
  | { type: 'describe'; sessionId: string }
  | { type: 'describeLog'; logId: string }
  | { type: 'appendScale'; logId: string; producers: number; durationMs: number; recordBytes: number };

/**
 * How workers ack: `receive` carries the acks of each batch on the worker's next receive (what
 * the client library's consume() does; the last batch's acks go on a receive that finds the
 * log drained), `separate` sends each batch's acks as their own request right away.
 */
export type AckMode = 'receive' | 'separate';

export interface CallStat {
  ms: number;
  status: number;
  /** HTTP API requests this call is billed as (512 KB increments). */
  metered: number;
}

export interface AppendResult {
  requests: CallStat[];
  wallMs: number;
  recordBytes: number;
  totalDataBytes: number;
}

export interface ReceiveStat extends CallStat {
  records: number;
  redelivered: number;
}

export interface DeliverResult {
  /** From the first receive to the ack that completed the set. */
  wallMs: number;
  receives: ReceiveStat[];
  acks: CallStat[];
  ackedRecords: number;
  distinctDelivered: number;
  duplicates: number;
  busyReplies: number;
}

/** One append of the append-scale section: its round trip as the producer saw it, and its answer. */
export interface ScaleCall {
  ms: number;
  /** The HTTP status (0: no answer, the request failed). */
  status: number;
  /** The error code of a refused append (`error.code`, or the failure's name when there was no answer). */
  code?: string;
  /** The sequence numbers a 201 gave the record. */
  firstSeq?: number;
  lastSeq?: number;
}

export interface AppendScaleResult {
  /** From the first request to the last answer (requests stop being started after durationMs). */
  wallMs: number;
  /** Every call, producer after producer. */
  calls: ScaleCall[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const bytes = (v: unknown): number => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v), 'utf8'));

/** A record whose serialized `data` is exactly `size` bytes (ASCII). */
export function recordData(seq: number, size: number): { i: number; p: string } {
  const empty = JSON.stringify({ i: seq, p: '' }).length;
  const pad = size - empty;
  if (pad < 0) throw new Error(`record size ${size} is below the ${empty} bytes of its envelope`);
  // A varied but deterministic payload (no run of one character a store could compress).
  let p = '';
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  for (let k = 0; p.length < pad; k++) p += alphabet[(seq * 31 + k * 7) % alphabet.length];
  return { i: seq, p };
}

/** Contiguous runs of sorted sequence numbers, as the `ranges` an ack takes. */
export function toRanges(seqs: readonly number[]): [number, number][] {
  const s = [...seqs].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const n of s) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}

export class Clients {
  private readonly api: SignedHttp;

  constructor(setup: ClientSetup) {
    this.api = new SignedHttp(setup.url, setup.credentials);
  }

  private async timed<T = any>(method: string, path: string, body?: unknown): Promise<{ r: Reply<T>; stat: CallStat }> {
    const t = performance.now();
    const r = await this.api.call<T>(method, path, body);
    const ms = performance.now() - t;
    return { r, stat: { ms, status: r.status, metered: httpApiMeteredRequests(bytes(body), bytes(r.body)) } };
  }

  private async must<T = any>(what: string, method: string, path: string, body?: unknown): Promise<T> {
    const { r } = await this.timed<T>(method, path, body);
    if (r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async run(cmd: ClientCommand): Promise<unknown> {
    switch (cmd.type) {
      case 'createLog':
        return this.must('create log', 'POST', '/logs', { logId: cmd.logId });
      case 'createSession':
        return this.must('create session', 'POST', `/logs/${cmd.logId}/sessions`, cmd.body);
      case 'describe':
        return this.must('describe session', 'GET', `/sessions/${cmd.sessionId}`);
      case 'describeLog':
        return this.must('describe log', 'GET', `/logs/${cmd.logId}`);
      case 'appendScale':
        return this.appendScale(cmd);
      case 'append':
        return this.append(cmd);
      case 'deliver':
        return this.deliver(cmd);
    }
  }

  /** One producer appending `total` records in batches, one request at a time. */
  private async append(cmd: Extract<ClientCommand, { type: 'append' }>): Promise<AppendResult> {
    const requests: CallStat[] = [];
    let totalDataBytes = 0;
    const t0 = performance.now();
    for (let first = 1; first <= cmd.total; first += cmd.batch) {
      const n = Math.min(cmd.batch, cmd.total - first + 1);
      const records = Array.from({ length: n }, (_, k) => ({ data: recordData(first + k, cmd.recordBytes) }));
      for (const r of records) totalDataBytes += bytes(r.data);
      for (let attempt = 0; ; attempt++) {
        const { r, stat } = await this.timed<{ firstSeq: number; lastSeq: number }>('POST', `/logs/${cmd.logId}/records`, { records });
        requests.push(stat);
        if (r.status === 201) {
          if (r.body.firstSeq !== first || r.body.lastSeq !== first + n - 1) {
            throw new Error(`append: expected ${first}..${first + n - 1}, got ${r.body.firstSeq}..${r.body.lastSeq}`);
          }
          break;
        }
        if ((r.status === 503 || r.status === 429) && attempt < 20) {
          await sleep(1000 * Number(r.headers['retry-after'] ?? 1));
          continue;
        }
        throw new Error(`append: ${r.status} ${JSON.stringify(r.body)}`);
      }
    }
    return { requests, wallMs: performance.now() - t0, recordBytes: cmd.recordBytes, totalDataBytes };
  }

  /**
   * `producers` producers appending one record per request to one log, each in a closed loop
   * (its next request right after the answer to its last) until `durationMs` have passed; no
   * request starts after that, and the ones under way are answered. A refused append (any
   * answer but 201) is counted, not retried: the producer waits its retry-after (at most until
   * the end) when it has one and goes on with the next record.
   */
  private async appendScale(cmd: Extract<ClientCommand, { type: 'appendScale' }>): Promise<AppendScaleResult> {
    const t0 = performance.now();
    const end = t0 + cmd.durationMs;
    const producer = async (p: number): Promise<ScaleCall[]> => {
      const calls: ScaleCall[] = [];
      for (let k = 1; performance.now() < end; k++) {
        const body = { records: [{ data: recordData(p * 1_000_000 + k, cmd.recordBytes) }] };
        const t = performance.now();
        let r: Reply<{ firstSeq?: number; lastSeq?: number; error?: { code?: string } }>;
        try {
          r = await this.api.call('POST', `/logs/${cmd.logId}/records`, body);
        } catch (e) {
          calls.push({ ms: performance.now() - t, status: 0, code: (e as Error).name || 'Error' });
          continue;
        }
        const ms = performance.now() - t;
        if (r.status === 201) {
          calls.push({ ms, status: 201, firstSeq: r.body.firstSeq!, lastSeq: r.body.lastSeq! });
          continue;
        }
        calls.push({ ms, status: r.status, code: r.body?.error?.code ?? 'none' });
        const wait = Math.min(1000 * Number(r.headers['retry-after'] ?? 0), end - performance.now());
        if (wait > 0) await sleep(wait);
      }
      return calls;
    };
    const all = await Promise.all(Array.from({ length: cmd.producers }, (_, p) => producer(p + 1)));
    return { wallMs: performance.now() - t0, calls: all.flat() };
  }

  /**
   * `workers` stateless workers on one session: each receives up to `maxRecords` and acks what
   * it got as ranges (carried on its next receive, or as a request of their own: see AckMode),
   * until every record is acked. A worker that gets nothing waits the service's own long-poll
   * interval (250 ms) before asking again; a 429/503 is retried after its retry-after, as a
   * well-behaved client does.
   */
  private async deliver(cmd: Extract<ClientCommand, { type: 'deliver' }>): Promise<DeliverResult> {
    const receives: ReceiveStat[] = [];
    const acks: CallStat[] = [];
    const delivered = new Uint8Array(cmd.total + 1);
    let duplicates = 0;
    let ackedRecords = 0;
    let busyReplies = 0;
    let done = false;
    let failure: Error | undefined;
    const t0 = performance.now();
    let tDone = NaN;
    const deadline = t0 + cmd.timeoutMs;
    const counted = (n: number): void => {
      ackedRecords += n;
      if (ackedRecords >= cmd.total && !done) {
        done = true;
        tDone = performance.now();
      }
    };

    const worker = async (): Promise<void> => {
      /** Acks to carry on the next receive (ack mode `receive`). */
      let carry: [number, number][] | undefined;
      while (!done) {
        if (performance.now() > deadline) throw new Error(`deliver: ${ackedRecords}/${cmd.total} acked after ${cmd.timeoutMs} ms`);
        const { r, stat } = await this.timed<{ records: { seq: number; deliveryCount: number }[]; acked?: number }>(
          'POST',
          `/sessions/${cmd.sessionId}/receive`,
          { maxRecords: cmd.maxRecords, waitSeconds: 0, ...(carry ? { ack: { ranges: carry } } : {}) },
        );
        if (r.status === 503 || r.status === 429) {
          // Carried acks are kept: the service answers 503 only before it applied them.
          busyReplies++;
          receives.push({ ...stat, records: 0, redelivered: 0 });
          await sleep(1000 * Number(r.headers['retry-after'] ?? 1));
          continue;
        }
        if (r.status !== 200) throw new Error(`receive: ${r.status} ${JSON.stringify(r.body)}`);
        if (carry) {
          if (typeof r.body.acked !== 'number') throw new Error(`receive carried acks but answered no count: ${JSON.stringify(r.body)}`);
          carry = undefined;
          counted(r.body.acked);
        }
        const recs = r.body.records;
        receives.push({ ...stat, records: recs.length, redelivered: recs.filter((x) => x.deliveryCount > 1).length });
        if (!recs.length) {
          if (!done) await sleep(250);
          continue;
        }
        for (const x of recs) {
          if (delivered[x.seq]) duplicates++;
          delivered[x.seq] = 1;
        }
        const ranges = toRanges(recs.map((x) => x.seq));
        if (cmd.ack === 'receive') {
          carry = ranges;
          continue;
        }
        for (let attempt = 0; ; attempt++) {
          const a = await this.timed<{ acked: number }>('POST', `/sessions/${cmd.sessionId}/ack`, { ranges });
          acks.push(a.stat);
          if (a.r.status === 200) {
            counted(a.r.body.acked);
            break;
          }
          if ((a.r.status === 503 || a.r.status === 429) && attempt < 20) {
            busyReplies++;
            await sleep(1000 * Number(a.r.headers['retry-after'] ?? 1));
            continue;
          }
          throw new Error(`ack: ${a.r.status} ${JSON.stringify(a.r.body)}`);
        }
      }
    };
    await Promise.all(
      Array.from({ length: cmd.workers }, () =>
        worker().catch((e: unknown) => {
          failure ??= e as Error;
          done = true;
        }),
      ),
    );
    if (failure) throw failure;
    let distinct = 0;
    for (let i = 1; i <= cmd.total; i++) distinct += delivered[i]!;
    return { wallMs: tDone - t0, receives, acks, ackedRecords, distinctDelivered: distinct, duplicates, busyReplies };
  }
}

// Worker-thread entry: one command at a time from the main thread.
if (parentPort && workerData && (workerData as { benchClient?: ClientSetup }).benchClient) {
  const clients = new Clients((workerData as { benchClient: ClientSetup }).benchClient);
  const port = parentPort;
  port.on('message', (msg: { id: number; cmd: ClientCommand }) => {
    clients.run(msg.cmd).then(
      (result) => port.postMessage({ id: msg.id, ok: true, result }),
      (e: unknown) => port.postMessage({ id: msg.id, ok: false, error: (e as Error).stack ?? String(e) }),
    );
  });
}
