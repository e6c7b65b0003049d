#!/usr/bin/env node
/**
 * `npm run chaos`: the service under the faults AWS produces, checked against the contract's
 * model (shared/API.md), Jepsen-style. It starts the local runtime in this process (a fresh
 * in-memory store) with faults injected into every DynamoDB, CloudWatch and AppConfig call
 * (local/faults.ts), and for a bounded time runs, over signed HTTP with the client library:
 *
 * - producers appending small batches, half with idempotency keys (retried with the same key
 *   until answered) and half without (`idempotencyKey: false`: the client retries them only
 *   when refused);
 * - stateless workers (`consume`) on three sessions of two logs, some of them crashed (their
 *   network dies with whatever they hold) or stopped, and replaced; handlers that throw on some
 *   records (nacked), always on a few (dead letters: one session has maxDeliveries 2), and are
 *   slower than the ack timeout on a few (leases extended).
 *
 * Every request and its raw answer is recorded (the client's fetch is instrumented). After the
 * run, the workers drain the sessions, the logs are read back through fresh sessions, and the
 * history is checked: appends at their answered numbers and nowhere else, gap-free numbering,
 * every record acked or dead-lettered with a delivery count the history explains, one worker
 * at a time under a live lease, acked records never delivered again, released records handed
 * out before fresh ones, no 5xx but 503 with retry-after, and bounds on how long a key or a
 * session may stay unusable. It prints counts and one line `N passed, N failed`, and exits
 * non-zero on any violation with the seed and the command that replays the run.
 *
 *   npm run chaos -- [--seconds 60] [--seed N] [--faults SPEC]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { startLocalRuntime, type LocalRuntime } from '../local/server';
import { formatFaultSpec, parseFaultSpec, type FaultSpec } from '../local/faults';
import { RESERVATION_MARGIN_MS } from '../lambdas/services/logs';
import {
  LogrelayClient,
  LogrelayError,
  type CreateSessionInput,
  type DeliveredRecord,
  type FetchLike,
  type Session,
} from '../client/src/index';

export const DEFAULT_FAULTS = 'throttle=0.05,applied-then-error=0.02,slow=0.01:800ms';
export const DEFAULT_SECONDS = 60;
/** Longest a session or log may answer nothing but 503 (first to last of a run of 503s). */
export const MAX_503_STREAK_MS = 10_000;
/** How long the workers get to drain every session after the producers stop. */
const DRAIN_MS = 90_000;
/** How long a keyed append whose answer never came keeps being retried after the run. */
const PRODUCER_GRACE_MS = 30_000;

export interface ChaosOptions {
  /** How long producers append and workers are crashed and replaced (default 60). */
  seconds?: number;
  /** Seeds the faults and the workload (default: random, printed). */
  seed?: number;
  /** The fault spec, `--faults` syntax (default DEFAULT_FAULTS); a seed in it is used unless `seed` is given. */
  faults?: string;
  /** Progress and report lines (default console.log). */
  log?: (line: string) => void;
  /** Writes the history (every request and answer, the appends, the sessions) to this file, as JSON. */
  historyFile?: string;
}

export interface CheckResult {
  name: string;
  violations: number;
  /** A few violations, described. */
  examples: string[];
}

export interface ChaosReport {
  seed: number;
  faults: string;
  seconds: number;
  checks: CheckResult[];
  passed: number;
  failed: number;
  counts: Record<string, number>;
  /** The command that replays this run. */
  replay: string;
}

// ---- The history -----------------------------------------------------------------------------

/** One HTTP request that reached the service, with its raw answer. */
interface Exchange {
  actor: string;
  /** The logical operation it was part of (an append's id), when the actor said. */
  tag?: string;
  method: string;
  path: string;
  // biome-ignore lint/suspicious/noExplicitAny: the raw JSON as sent; the checks read it defensively (?., ?? defaults) and trust no shape
  body: any;
  start: number;
  end: number;
  status: number;
  retryAfter: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: the raw JSON as answered; the checks read it defensively (?., ?? defaults) and trust no shape
  response: any;
}

interface Actor {
  id: string;
  dead: boolean;
  tag?: string;
}

interface Delivery {
  session: string;
  seq: number;
  deliveryCount: number;
  leaseMs: number;
  data: string;
  worker: string;
  /** The receive that handed it out. */
  r: Exchange;
}

interface AppendOp {
  id: string;
  logId: string;
  producer: string;
  key?: string;
  records: { id: string; json: string }[];
  /** Calls of client.append (a keyed append is called again with its key until answered). */
  calls: number;
  result?: { firstSeq: number; lastSeq: number };
  errors: string[];
}

interface SessionPlan {
  name: string;
  logId: string;
  maxDeliveries: number;
  ackTimeoutSeconds: number;
  workers: number;
  id?: string;
}

type Rng = () => number;

function mulberry32(seed: number): Rng {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmt = (n: number) => n.toLocaleString('en-US');

/** The data a record carries: who wrote it, in which append, and what its handlers do. */
interface RecordData {
  id: string;
  /** 'always': every handler throws (a poison record); 'once': the first delivery's throws. */
  fail?: 'always' | 'once';
  /** The handler takes longer than the ack timeout (consume extends the lease). */
  slow?: true;
}

export async function runChaos(opts: ChaosOptions = {}): Promise<ChaosReport> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const seconds = opts.seconds ?? DEFAULT_SECONDS;
  if (!(seconds > 0 && seconds <= 3600)) throw new Error(`--seconds must be from 1 to 3600; it is ${seconds}.`);
  const parsed = parseFaultSpec(opts.faults ?? DEFAULT_FAULTS, '--faults');
  const seed = opts.seed ?? (parsed?.seedGiven ? parsed.seed : randomInt(0, 2 ** 32 - 1));
  const spec: FaultSpec | undefined = parsed ? { ...parsed, seed, seedGiven: true } : undefined;
  const faultsText = spec ? formatFaultSpec(spec) : 'off';
  const replay = `npm run chaos -- --seconds ${seconds} --seed ${seed} --faults '${spec ? formatFaultSpec(spec, false) : 'off'}'`;
  const rng = mulberry32(seed ^ 0x9e3779b9);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
  const between = (a: number, b: number) => a + Math.floor(rng() * (b - a + 1));

  log(`chaos: ${seconds} s of producers and workers, seed ${seed}, faults ${faultsText}`);
  process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
  const dir = mkdtempSync(join(tmpdir(), 'logrelay-chaos-'));
  const credentialsPath = join(dir, 'credentials.json');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [
        { name: 'chaos', accessKeyId: 'LRCHAOS000000000', secretAccessKey: 'chaos-secret-000000000000000000000000', admin: true },
      ],
    }),
  );
  const rt: LocalRuntime = await startLocalRuntime({ port: 0, credentialsPath, log: () => {}, faults: spec ?? null, storageLatencyMs: 0 });
  const principal = rt.principals[0]!;

  const history: Exchange[] = [];
  const counts: Record<string, number> = {};
  const bump = (k: string, n = 1): void => {
    counts[k] = (counts[k] ?? 0) + n;
  };
  const clientFor = (actor: Actor): LogrelayClient =>
    new LogrelayClient({
      endpoint: rt.url,
      credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey },
      fetch: recordingFetch(actor, history),
      // A crashed worker's calls fail before they leave; its retries are not the service's doing.
      onRetry: (e) =>
        bump(actor.dead ? 'crashed workers: retries of calls that never left' : `client retries after ${e.error.status || e.error.code}`),
    });
  const checker: Actor = { id: 'checker', dead: false };
  const api = clientFor(checker);

  let report: ChaosReport;
  try {
    // ---- Setup: two logs, three sessions (one with a small maxDeliveries). -------------------
    const runId = seed.toString(36);
    const logs = [`chaos-a-${runId}`, `chaos-b-${runId}`];
    for (const logId of logs) await createLog(api, logId);
    const plans: SessionPlan[] = [
      { name: 'a1', logId: logs[0]!, maxDeliveries: 5, ackTimeoutSeconds: 3, workers: 3 },
      { name: 'a2', logId: logs[0]!, maxDeliveries: 2, ackTimeoutSeconds: 2, workers: 2 },
      { name: 'b1', logId: logs[1]!, maxDeliveries: 3, ackTimeoutSeconds: 3, workers: 3 },
    ];
    for (const p of plans)
      p.id = (
        await openSession(api, p.logId, { ackTimeoutSeconds: p.ackTimeoutSeconds, maxDeliveries: p.maxDeliveries, maxInFlight: 2000 })
      ).id;

    // ---- Producers -------------------------------------------------------------------------
    const ops: AppendOp[] = [];
    const runStart = Date.now();
    const runEnd = runStart + seconds * 1000;
    const producers = [
      ...[0, 1, 2, 3].map((i) => ({ id: `pa${i}`, logId: logs[0]! })),
      ...[0, 1, 2].map((i) => ({ id: `pb${i}`, logId: logs[1]! })),
    ].map(async ({ id, logId }) => {
      const actor: Actor = { id, dead: false };
      const client = clientFor(actor);
      for (let n = 1; Date.now() < runEnd; n++) {
        const size = between(1, 8);
        const keyed = rng() < 0.5;
        const op: AppendOp = { id: `${id}.${n}`, logId, producer: id, records: [], calls: 0, errors: [] };
        if (keyed) op.key = `k-${runId}-${id}-${n}`;
        for (let i = 0; i < size; i++) {
          const d: RecordData = { id: `${op.id}.${i}` };
          const r = rng();
          if (r < 0.01) d.fail = 'always';
          else if (r < 0.04) d.fail = 'once';
          else if (r < 0.045) d.slow = true;
          op.records.push({ id: d.id, json: JSON.stringify(d) });
        }
        ops.push(op);
        actor.tag = op.id;
        for (;;) {
          op.calls++;
          try {
            op.result = await client.append(
              logId,
              op.records.map((r) => ({ data: JSON.parse(r.json) as RecordData })),
              { idempotencyKey: op.key ?? false },
            );
            break;
          } catch (e) {
            op.errors.push(errorName(e));
            // Without a key the outcome stays unknown; with one, the same key until answered.
            if (!op.key || Date.now() > runEnd + PRODUCER_GRACE_MS) break;
            await sleep(200);
          }
        }
        await sleep(between(5, 40));
      }
    });

    // ---- Workers ---------------------------------------------------------------------------
    interface Worker {
      actor: Actor;
      plan: SessionPlan;
      stop: AbortController;
      done: Promise<unknown>;
    }
    const workers: Worker[] = [];
    let workerN = 0;
    const handlerErrors = { thrown: 0 };
    const startWorker = (plan: SessionPlan): Worker => {
      const actor: Actor = { id: `w${++workerN}-${plan.name}`, dead: false };
      const client = clientFor(actor);
      const stop = new AbortController();
      const session: Session<RecordData> = client.session<RecordData>(plan.id!, { ackTimeoutSeconds: plan.ackTimeoutSeconds });
      const done = session
        .consume(
          async (r: DeliveredRecord<RecordData>) => {
            if (actor.dead) throw new Error('crashed');
            if (r.data.fail === 'always' || (r.data.fail === 'once' && r.deliveryCount === 1)) {
              handlerErrors.thrown++;
              throw new Error(`record ${r.data.id} fails here`);
            }
            await sleep(r.data.slow ? plan.ackTimeoutSeconds * 1200 : between(0, 3));
          },
          {
            concurrency: between(2, 4),
            maxRecords: between(10, 50),
            waitSeconds: 1,
            nackDelaySeconds: 0,
            signal: stop.signal,
            onError: (e, info) => {
              // A crashed worker's calls fail by design; a live one's only if the service kept failing.
              if (info.during !== 'handler' && !actor.dead) bump(`worker ${info.during} failed after retries (${errorName(e)})`);
            },
          },
        )
        .catch((e: unknown) => {
          if (!actor.dead) bump(`worker stopped on a fatal error (${errorName(e)})`);
          return undefined;
        });
      const w = { actor, plan, stop, done };
      workers.push(w);
      return w;
    };
    for (const p of plans) for (let i = 0; i < p.workers; i++) startWorker(p);

    // Crash or stop a worker now and then, and start another in its place.
    const killer = (async () => {
      const every = Math.max(2000, (seconds * 1000) / 8);
      while (Date.now() + every < runEnd) {
        await sleep(every);
        const live = workers.filter((w) => !w.stop.signal.aborted);
        const w = pick(live);
        if (rng() < 0.5) {
          w.actor.dead = true; // its network dies: nothing it holds is acked or released
          bump('workers crashed');
        } else bump('workers stopped');
        w.stop.abort();
        await sleep(300);
        startWorker(w.plan);
      }
    })();

    const progress = setInterval(() => {
      const t = Math.round((Date.now() - runStart) / 1000);
      const f = rt.faults?.counts();
      log(
        `  ${t} s: ${fmt(history.length)} requests, ${fmt(ops.length)} appends, ${fmt(history.filter((x) => x.path.endsWith('/receive')).length)} receives` +
          (f ? `; faults ${f.throttle} throttle, ${f['applied-then-error']} applied-then-error, ${f.slow} slow` : ''),
      );
    }, 10_000);
    progress.unref();

    await Promise.all([...producers, killer]);
    clearInterval(progress);
    log(`  producers stopped after ${((Date.now() - runStart) / 1000).toFixed(0)} s; draining the sessions`);

    // ---- Drain: every record of every session acked or dead-lettered. ---------------------------
    const lastSeqOf = new Map<string, number>();
    for (const logId of logs) lastSeqOf.set(logId, (await api.describeLog(logId)).lastSeq);
    const drained = new Map<string, boolean>();
    const drainStart = Date.now();
    for (;;) {
      for (const p of plans) {
        if (drained.get(p.name)) continue;
        const info = await api.describeSession(p.id!).catch(() => undefined);
        if (info && info.ackFloor === lastSeqOf.get(p.logId) && info.inFlight === 0) drained.set(p.name, true);
      }
      if (plans.every((p) => drained.get(p.name)) || Date.now() - drainStart > DRAIN_MS) break;
      await sleep(500);
    }
    const drainMs = Date.now() - drainStart;
    for (const w of workers) w.stop.abort();
    await Promise.all(workers.map((w) => w.done));
    log(`  drained in ${(drainMs / 1000).toFixed(1)} s; reading the logs back`);

    // ---- Read back: every log through a fresh session; dead letters and final state. ----------
    const logContent = new Map<string, Map<number, string>>();
    const readBackProblems: string[] = [];
    for (const logId of logs) {
      const content = await readBack(api, logId, lastSeqOf.get(logId)!, readBackProblems);
      logContent.set(logId, content);
    }
    const dead = new Map<string, Map<number, number>>();
    const finalInfo = new Map<string, { ackFloor: number; inFlight: number }>();
    for (const p of plans) {
      const m = new Map<number, number>();
      for (const [from, to, count] of await api.deadLetters(p.id!)) for (let s = from; s <= to; s++) m.set(s, count);
      dead.set(p.name, m);
      const info = await api.describeSession(p.id!);
      finalInfo.set(p.name, { ackFloor: info.ackFloor, inFlight: info.inFlight });
    }

    // ---- Check ------------------------------------------------------------------------------
    const appendTimeoutMs = (Object.values(rt.system.functions).find((f) => f.entry.includes('append'))?.timeoutSeconds ?? 15) * 1000;
    const checks = checkHistory({
      history,
      ops,
      plans,
      logs,
      lastSeqOf,
      logContent,
      readBackProblems,
      dead,
      finalInfo,
      drained,
      appendInProgressBoundMs: appendTimeoutMs + RESERVATION_MARGIN_MS + 2000,
      counts,
    });

    if (opts.historyFile) {
      writeFileSync(
        opts.historyFile,
        JSON.stringify({ seed, faults: faultsText, plans, lastSeq: Object.fromEntries(lastSeqOf), ops, history }),
      );
      log(`  history written to ${opts.historyFile}`);
    }

    // ---- Report -----------------------------------------------------------------------------
    const f = rt.faults?.snapshot();
    const byStatus = (pred: (x: Exchange) => boolean) => history.filter(pred).length;
    const clientRetries = Object.entries(counts)
      .filter(([k]) => k.startsWith('client retries'))
      .reduce((a, [, v]) => a + v, 0);
    log('');
    log(
      `requests: ${fmt(history.length)} (2xx ${fmt(byStatus((x) => x.status >= 200 && x.status < 300))}, 409 AppendInProgress ${fmt(byStatus((x) => x.status === 409 && x.response?.error?.code === 'AppendInProgress'))}, 503 ${fmt(byStatus((x) => x.status === 503))}, other ${fmt(byStatus((x) => x.status >= 300 && x.status !== 503 && !(x.status === 409 && x.response?.error?.code === 'AppendInProgress')))}); client retries ${fmt(clientRetries)}`,
    );
    if (f) {
      log(
        `faults injected: throttle ${fmt(f.total.throttle)}, applied-then-error ${fmt(f.total['applied-then-error'])}, slow ${fmt(f.total.slow)} over ${fmt(f.calls.dynamodb)} DynamoDB, ${fmt(f.calls.cloudwatch)} CloudWatch and ${fmt(f.calls.appconfig)} AppConfig calls; SDK retries ${fmt(f.sdkRetries.dynamodb + f.sdkRetries.cloudwatch + f.sdkRetries.appconfig)}`,
      );
    }
    const answered = ops.filter((o) => o.result);
    log(
      `appends: ${fmt(ops.length)} (${fmt(ops.filter((o) => o.key).length)} with a key, ${fmt(ops.filter((o) => !o.key).length)} without), ${fmt(answered.length)} answered 201, ${fmt(ops.length - answered.length)} not; ` +
        `records: ${logs.map((l) => `${fmt(lastSeqOf.get(l)!)} in ${l}`).join(', ')}; ${fmt(counts['duplicate records'] ?? 0)} extra copies of records from retried appends without a key`,
    );
    log(
      `deliveries: ${fmt(counts.deliveries ?? 0)} to ${workerN} workers (${counts['workers crashed'] ?? 0} crashed, ${counts['workers stopped'] ?? 0} stopped, each replaced), ${fmt(counts.redeliveries ?? 0)} redeliveries, ` +
        `${fmt(counts['unseen deliveries'] ?? 0)} counted deliveries no worker saw, ${fmt(counts['dead letters'] ?? 0)} dead letters, ${fmt(handlerErrors.thrown)} handler failures (nacked); drained in ${(drainMs / 1000).toFixed(1)} s`,
    );
    const other = Object.entries(counts).filter(([k]) => k.startsWith('worker '));
    if (other.length) log(`workers: ${other.map(([k, v]) => `${k}: ${v}`).join('; ')}`);
    log('');
    for (const c of checks) {
      log(
        `${c.violations === 0 ? 'pass' : 'FAIL'}  ${c.name}${c.violations ? `: ${fmt(c.violations)} violation${c.violations === 1 ? '' : 's'}` : ''}`,
      );
      for (const ex of c.examples) log(`        ${ex}`);
    }
    const failed = checks.filter((c) => c.violations > 0).length;
    const passed = checks.length - failed;
    const violations = checks.reduce((a, c) => a + c.violations, 0);
    log(`violations: ${fmt(violations)}`);
    log(`${passed} passed, ${failed} failed`);
    if (failed) log(`seed ${seed}; replay with: ${replay}`);
    counts.requests = history.length;
    counts['client retries'] = clientRetries;
    counts.violations = violations;
    if (f) for (const [k, v] of Object.entries(f.total)) counts[`faults ${k}`] = v;
    report = { seed, faults: faultsText, seconds, checks, passed, failed, counts, replay };
  } finally {
    await rt.close();
  }
  return report;
}

/**
 * Creates a log (its name is this run's: nobody else creates it). A 409 LogExists means an
 * earlier attempt created it: after an attempt that failed that is expected, and otherwise
 * (the service's own retry refused by its own write) a violation the checks report.
 */
async function createLog(api: LogrelayClient, logId: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await api.createLog({ logId });
      return;
    } catch (e) {
      if (e instanceof LogrelayError && e.code === 'LogExists') return;
      if (i >= 5 || !(e instanceof LogrelayError) || e.status < 500) throw e;
    }
  }
}

/** Opens a session at the log's oldest record. A failed create is in the history (and checked); an orphan session it may leave is harmless. */
async function openSession(api: LogrelayClient, logId: string, input: CreateSessionInput): Promise<Session> {
  for (let i = 0; ; i++) {
    try {
      return await api.createSession(logId, { start: 'oldest', ...input });
    } catch (e) {
      if (i >= 5) throw e;
      await sleep(200);
    }
  }
}

/** Every record of a log, 1..lastSeq, by reading it through a fresh session (faults still on). */
async function readBack(api: LogrelayClient, logId: string, lastSeq: number, problems: string[]): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  const session = await openSession(api, logId, { ackTimeoutSeconds: 2, maxInFlight: 10_000, maxDeliveries: 100 });
  const until = Date.now() + 120_000;
  let ack: number[] = [];
  while (out.size < lastSeq && Date.now() < until) {
    let got: Awaited<ReturnType<typeof session.receiveAndAck>>;
    try {
      got = await session.receiveAndAck({ maxRecords: 1000, waitSeconds: 1, ...(ack.length ? { ack } : {}) });
    } catch {
      continue; // faults outlasted the client's retries: the acks go again with the next receive
    }
    ack = [];
    for (const r of got.records) {
      const json = JSON.stringify(r.data);
      const was = out.get(r.seq);
      if (was !== undefined && was !== json) problems.push(`${logId} seq ${r.seq} read back as ${was} and then as ${json}`);
      out.set(r.seq, json);
      ack.push(r.seq);
    }
  }
  if (ack.length) await session.ack(ack).catch(() => undefined);
  return out;
}

function errorName(e: unknown): string {
  if (e instanceof LogrelayError) return e.status ? `${e.status} ${e.code}` : e.code;
  return (e as Error)?.name ?? String(e);
}

/** fetch, recording every request that reached the service and its raw answer; a crashed actor's network is down. */
function recordingFetch(actor: Actor, history: Exchange[]): FetchLike {
  return async (url, init) => {
    if (actor.dead)
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('connect ECONNREFUSED (the worker crashed)'), { code: 'ECONNREFUSED' }),
      });
    const start = Date.now();
    const res = await fetch(url, init);
    const text = await res.text();
    const path = new URL(url).pathname;
    let response: unknown;
    try {
      response = text ? JSON.parse(text) : undefined;
    } catch {
      response = text;
    }
    history.push({
      actor: actor.id,
      ...(actor.tag !== undefined ? { tag: actor.tag } : {}),
      method: init.method,
      path,
      body: init.body ? JSON.parse(init.body) : undefined,
      start,
      end: Date.now(),
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      response,
    });
    // A crash loses the answers still on their way.
    if (actor.dead)
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('socket hang up (the worker crashed)'), { code: 'ECONNRESET' }),
      });
    return { status: res.status, headers: res.headers, text: async () => text };
  };
}

// ---- The checks ------------------------------------------------------------------------------

interface CheckInput {
  history: Exchange[];
  ops: AppendOp[];
  plans: SessionPlan[];
  logs: string[];
  lastSeqOf: Map<string, number>;
  logContent: Map<string, Map<number, string>>;
  readBackProblems: string[];
  dead: Map<string, Map<number, number>>;
  finalInfo: Map<string, { ackFloor: number; inFlight: number }>;
  drained: Map<string, boolean>;
  appendInProgressBoundMs: number;
  counts: Record<string, number>;
}

/** The seqs a selection body (`{seqs, ranges}`) names. */
function seqsOf(sel: { seqs?: number[]; ranges?: [number, number][] } | undefined): number[] {
  if (!sel) return [];
  const out = new Set<number>(sel.seqs ?? []);
  for (const [a, b] of sel.ranges ?? []) for (let s = a; s <= b; s++) out.add(s);
  return [...out];
}

const sessionOfPath = (path: string): string | undefined => /^\/sessions\/([^/]+)/.exec(path)?.[1];

export function checkHistory(h: CheckInput): CheckResult[] {
  const checks: CheckResult[] = [];
  const check = (name: string, run: (fail: (example: string) => void) => void) => {
    const r: CheckResult = { name, violations: 0, examples: [] };
    run((ex) => {
      r.violations++;
      if (r.examples.length < 5) r.examples.push(ex);
    });
    checks.push(r);
  };
  const bump = (k: string, n = 1): void => {
    h.counts[k] = (h.counts[k] ?? 0) + n;
  };
  const planById = new Map(h.plans.map((p) => [p.id!, p]));
  const sessionIds = new Set(h.plans.map((p) => p.id!));

  // Where each record id is in its log, from the read-back.
  const positions = new Map<string, number[]>();
  const idAt = new Map<string, Map<number, string>>();
  for (const logId of h.logs) {
    const m = new Map<number, string>();
    for (const [seq, json] of h.logContent.get(logId)!) {
      const id = (JSON.parse(json) as RecordData).id;
      m.set(seq, id);
      const list = positions.get(id) ?? [];
      list.push(seq);
      positions.set(id, list);
    }
    idAt.set(logId, m);
  }
  const recordJson = new Map<string, string>();
  const opOfRecord = new Map<string, AppendOp>();
  for (const op of h.ops)
    for (const r of op.records) {
      recordJson.set(r.id, r.json);
      opOfRecord.set(r.id, op);
    }
  const attemptsOf = new Map<string, Exchange[]>();
  for (const x of h.history)
    if (x.tag !== undefined && x.path.endsWith('/records')) attemptsOf.set(x.tag, [...(attemptsOf.get(x.tag) ?? []), x]);

  check('appends answered 201 have their records at the answered sequence numbers', (fail) => {
    for (const op of h.ops) {
      if (!op.result) continue;
      const { firstSeq, lastSeq } = op.result;
      if (lastSeq - firstSeq + 1 !== op.records.length) fail(`${op.id}: answered ${firstSeq}..${lastSeq} for ${op.records.length} records`);
      const content = h.logContent.get(op.logId)!;
      op.records.forEach((r, i) => {
        const at = content.get(firstSeq + i);
        if (at !== r.json) fail(`${op.id}: seq ${firstSeq + i} holds ${at ?? 'nothing'}, not ${r.json}`);
      });
    }
  });

  check(
    'no record elsewhere: keyed appends at most once, appends without a key at most once per attempt, each copy whole and in order',
    (fail) => {
      for (const logId of h.logs) {
        for (const [seq, id] of idAt.get(logId)!) {
          const op = opOfRecord.get(id);
          if (!op || op.logId !== logId) fail(`${logId} seq ${seq}: a record no producer appended to this log (${id})`);
          else if (h.logContent.get(logId)!.get(seq) !== recordJson.get(id))
            fail(`${logId} seq ${seq}: data differs from what ${op.id} sent`);
        }
      }
      for (const op of h.ops) {
        const reached = (attemptsOf.get(op.id) ?? []).length;
        const copies = positions.get(op.records[0]!.id) ?? [];
        const allowed = op.key ? 1 : reached;
        if (copies.length > allowed)
          fail(
            `${op.id} (${op.key ? 'keyed' : 'no key'}, ${reached} attempts reached the service, answered ${op.result ? `${op.result.firstSeq}..${op.result.lastSeq}` : 'never'}) is in the log ${copies.length} times, at ${copies.join(', ')}`,
          );
        if (op.result && copies.length === 0) fail(`${op.id} was answered 201 but is not in the log`);
        if (!op.key && copies.length > 1) bump('duplicate records', (copies.length - 1) * op.records.length);
        op.records.forEach((r, i) => {
          const at = (positions.get(r.id) ?? []).slice().sort((a, b) => a - b);
          const expect = copies.map((c) => c + i).sort((a, b) => a - b);
          if (at.join() !== expect.join())
            fail(`${op.id}: record ${i} is at [${at.join(', ')}], expected [${expect.join(', ')}] (all-or-nothing, in order)`);
        });
      }
    },
  );

  check('sequence numbers are gap-free from 1 to lastSeq, and read back the same every time', (fail) => {
    for (const logId of h.logs) {
      const last = h.lastSeqOf.get(logId)!;
      const content = h.logContent.get(logId)!;
      for (let s = 1; s <= last; s++) if (!content.has(s)) fail(`${logId}: seq ${s} of 1..${last} could not be read`);
      for (const s of content.keys()) if (s < 1 || s > last) fail(`${logId}: seq ${s} read back, outside 1..${last}`);
    }
    for (const p of h.readBackProblems) fail(p);
  });

  // Deliveries, from every receive answered 200 (crashed workers' included: their leases were granted).
  const deliveries = new Map<string, Map<number, Delivery[]>>();
  const receives = h.history.filter(
    (x) => x.method === 'POST' && x.path.endsWith('/receive') && sessionIds.has(sessionOfPath(x.path)!) && x.status === 200,
  );
  for (const r of receives) {
    const sid = sessionOfPath(r.path)!;
    const bySeq = deliveries.get(sid) ?? new Map<number, Delivery[]>();
    deliveries.set(sid, bySeq);
    for (const rec of (r.response?.records ?? []) as { seq: number; data: unknown; deliveryCount: number; leaseExpiresAt: string }[]) {
      const d: Delivery = {
        session: sid,
        seq: rec.seq,
        deliveryCount: rec.deliveryCount,
        leaseMs: Date.parse(rec.leaseExpiresAt),
        data: JSON.stringify(rec.data),
        worker: r.actor,
        r,
      };
      bySeq.set(rec.seq, [...(bySeq.get(rec.seq) ?? []), d]);
      bump('deliveries');
      if (rec.deliveryCount > 1) bump('redeliveries');
    }
  }
  for (const m of deliveries.values()) for (const list of m.values()) list.sort((a, b) => a.r.end - b.r.end);

  check("every delivery carries the log's record at that sequence number", (fail) => {
    for (const [sid, m] of deliveries) {
      const content = h.logContent.get(planById.get(sid)!.logId)!;
      for (const [seq, list] of m)
        for (const d of list)
          if (content.get(seq) !== d.data)
            fail(`${planById.get(sid)!.name} seq ${seq} delivered to ${d.worker} as ${d.data}; the log has ${content.get(seq)}`);
    }
  });

  // Acks that reached the service (any answer), and those answered 200 (applied), by session.
  interface Ack {
    seqs: number[];
    x: Exchange;
    counted: number;
    ok: boolean;
  }
  const acks = new Map<string, Ack[]>();
  // Nacks that reached the service: answered 200 (applied), or otherwise (perhaps applied: a 503
  // may come after the release was written, when a later storage call kept failing).
  const releases = new Map<string, { seqs: number[]; x: Exchange; released: number; ok: boolean }[]>();
  for (const x of h.history) {
    const sid = sessionOfPath(x.path);
    if (!sid || !sessionIds.has(sid) || x.method !== 'POST') continue;
    if (x.path.endsWith('/ack') || (x.path.endsWith('/receive') && x.body?.ack)) {
      const seqs = seqsOf(x.path.endsWith('/ack') ? x.body : x.body.ack);
      acks.set(sid, [
        ...(acks.get(sid) ?? []),
        { seqs, x, counted: x.status === 200 ? Number(x.response?.acked ?? 0) : 0, ok: x.status === 200 },
      ]);
    }
    if (x.path.endsWith('/nack'))
      releases.set(sid, [
        ...(releases.get(sid) ?? []),
        { seqs: seqsOf(x.body), x, released: Number(x.response?.released ?? 0), ok: x.status === 200 },
      ]);
  }

  check('every record of every session was acked or dead-lettered (drained), and every acked one was acked by a worker', (fail) => {
    for (const p of h.plans) {
      const last = h.lastSeqOf.get(p.logId)!;
      const info = h.finalInfo.get(p.name)!;
      if (!h.drained.get(p.name) || info.ackFloor !== last || info.inFlight !== 0)
        fail(
          `${p.name}: not drained within ${DRAIN_MS / 1000} s: ackFloor ${info.ackFloor} of lastSeq ${last}, ${info.inFlight} in flight`,
        );
      const named = new Set<number>();
      for (const a of acks.get(p.id!) ?? []) for (const s of a.seqs) named.add(s);
      const dl = h.dead.get(p.name)!;
      bump('dead letters', dl.size);
      let missing = 0;
      for (let s = 1; s <= last; s++) {
        if (dl.has(s) || named.has(s)) continue;
        if (missing++ < 3)
          fail(`${p.name} seq ${s}: neither dead-lettered nor named by any ack a worker sent, yet the session counts it done`);
      }
      if (missing > 3) fail(`${p.name}: and ${missing - 3} more such records`);
    }
  });

  check('delivery counts are explained by the history (dead letters reached maxDeliveries)', (fail) => {
    for (const p of h.plans) {
      const m = deliveries.get(p.id!) ?? new Map<number, Delivery[]>();
      const dl = h.dead.get(p.name)!;
      for (const [seq, count] of dl) {
        if (count !== p.maxDeliveries)
          fail(`${p.name} seq ${seq}: dead-lettered with deliveryCount ${count}, maxDeliveries is ${p.maxDeliveries}`);
        const seen = m.get(seq)?.length ?? 0;
        if (seen > p.maxDeliveries)
          fail(`${p.name} seq ${seq}: dead-lettered after ${seen} deliveries were seen (maxDeliveries ${p.maxDeliveries})`);
      }
      for (const [seq, list] of m) {
        // Each delivery is a grant of its own, counted one higher than the one before: two
        // deliveries seen with one count would be one grant handed to two receives.
        const byCount = new Map<number, Delivery>();
        for (const d of list) {
          const twin = byCount.get(d.deliveryCount);
          if (twin) fail(`${p.name} seq ${seq}: delivered to ${twin.worker} and to ${d.worker} both with deliveryCount ${d.deliveryCount}`);
          byCount.set(d.deliveryCount, d);
          if (d.deliveryCount < 1 || d.deliveryCount > p.maxDeliveries)
            fail(`${p.name} seq ${seq}: deliveryCount ${d.deliveryCount} outside 1..maxDeliveries ${p.maxDeliveries}`);
        }
        for (let i = 0; i < list.length; i++) {
          for (let j = i + 1; j < list.length; j++) {
            const [a, b] = [list[i]!, list[j]!];
            if (a.r.end < b.r.start && b.deliveryCount <= a.deliveryCount)
              fail(`${p.name} seq ${seq}: delivered with count ${a.deliveryCount} and later with ${b.deliveryCount}`);
          }
        }
        const final = dl.get(seq) ?? Math.max(...list.map((d) => d.deliveryCount));
        bump('unseen deliveries', Math.max(0, final - list.length));
      }
    }
  });

  check('no record held by two receives under a live lease at once', (fail) => {
    for (const [sid, m] of deliveries) {
      const rel = releases.get(sid) ?? [];
      for (const [seq, list] of m) {
        for (const a of list) {
          for (const b of list) {
            if (a === b || !(a.r.end < b.r.start) || !(b.r.end < a.leaseMs)) continue;
            // b was surely handed out while a's lease ran, unless a's lease ended early: released
            // (by a nack naming it, whatever its answer) before b's receive ended.
            const released = rel.some((n) => n.x.start < b.r.end && n.x.end > a.r.start && n.seqs.includes(seq));
            if (!released)
              fail(
                `${planById.get(sid)!.name} seq ${seq}: leased to ${a.worker} until ${new Date(a.leaseMs).toISOString()} and handed to ${b.worker} by a receive that ended at ${new Date(b.r.end).toISOString()}`,
              );
          }
        }
      }
    }
  });

  check('acked records are never delivered again', (fail) => {
    for (const [sid, list] of acks) {
      const m = deliveries.get(sid);
      if (!m) continue;
      for (const a of list) {
        if (!a.ok) continue;
        for (const seq of a.seqs) {
          for (const d of m.get(seq) ?? []) {
            if (d.r.start > a.x.end)
              fail(
                `${planById.get(sid)!.name} seq ${seq}: acked by ${a.x.actor} (answered ${a.x.status} at ${new Date(a.x.end).toISOString()}), delivered again to ${d.worker} with count ${d.deliveryCount} by a receive sent after it`,
              );
          }
        }
      }
    }
  });

  check('each record counted acked at most once (ack counts add up)', (fail) => {
    for (const p of h.plans) {
      const list = acks.get(p.id!) ?? [];
      const last = h.lastSeqOf.get(p.logId)!;
      const total = list.reduce((n, a) => n + a.counted, 0);
      const ackable = last - h.dead.get(p.name)!.size;
      if (total > ackable) fail(`${p.name}: acks counted ${total} records acked; only ${ackable} records were not dead-lettered`);
      const countedBy = new Map<number, Exchange>();
      for (const a of list) {
        if (a.counted > a.seqs.length) fail(`${p.name}: an ack of ${a.seqs.length} records counted ${a.counted}`);
        if (a.counted !== a.seqs.length || !a.ok) continue;
        for (const s of a.seqs) {
          const was = countedBy.get(s);
          if (was) fail(`${p.name} seq ${s}: counted acked by ${was.actor} and again by ${a.x.actor}`);
          countedBy.set(s, a.x);
        }
      }
    }
  });

  check('records released by a nack are handed out again before fresh records', (fail) => {
    for (const p of h.plans) {
      const m = deliveries.get(p.id!) ?? new Map<number, Delivery[]>();
      // Receives that handed out fresh records (every fresh record has deliveryCount 1), by start.
      const fresh = receives.filter(
        (r) => sessionOfPath(r.path) === p.id && (r.response?.records ?? []).some((x: { deliveryCount: number }) => x.deliveryCount === 1),
      );
      fresh.sort((a, b) => a.start - b.start);
      for (const n of releases.get(p.id!) ?? []) {
        if (!n.ok || n.released !== n.seqs.length) continue; // not surely applied, or not all of them were leased
        for (const seq of n.seqs) {
          const before = (m.get(seq) ?? []).filter((d) => d.r.end <= n.x.start);
          const lastCount = before.length ? before[before.length - 1]!.deliveryCount : 0;
          if (lastCount >= p.maxDeliveries) continue; // a dead letter now, never handed out again
          const next = (m.get(seq) ?? []).find((d) => d.r.start > n.x.end);
          // Skip a record a receive handed out while the nack ran (its lease may be the one
          // released), and one granted meanwhile to a receive nobody saw the answer of (its count
          // skips one: a lost response leased it to nobody until that lease ended).
          if (!next || next.deliveryCount !== lastCount + 1 || (m.get(seq) ?? []).some((d) => d.r.start <= n.x.end && d.r.end > n.x.start))
            continue;
          for (const r of fresh) {
            if (r.start <= n.x.end) continue;
            if (r.start >= next.r.start) break;
            if (r.end < next.r.start) {
              fail(
                `${p.name} seq ${seq}: released by ${n.x.actor} (answered at ${new Date(n.x.end).toISOString()}), yet a receive sent after it handed ${r.actor} fresh records, and seq ${seq} went out only later (to ${next.worker})`,
              );
              break;
            }
          }
        }
      }
    }
  });

  check('no 5xx answer other than 503 with retry-after', (fail) => {
    for (const x of h.history) {
      if (x.status < 500) continue;
      if (x.status === 503 && x.retryAfter !== null && Number(x.retryAfter) >= 1) continue;
      fail(
        `${x.method} ${x.path} answered ${x.status}${x.retryAfter === null ? ' without retry-after' : ''}: ${JSON.stringify(x.response).slice(0, 200)}`,
      );
    }
  });

  check('no request refused except what the contract allows under faults (409 AppendInProgress)', (fail) => {
    const createsSeen = new Set<string>();
    for (const x of h.history) {
      if (x.status < 400 || x.status >= 500) {
        if (x.path === '/logs') createsSeen.add(String(x.body?.logId));
        continue;
      }
      const code = x.response?.error?.code;
      if (x.status === 409 && code === 'AppendInProgress' && x.body?.idempotencyKey) continue;
      if (x.status === 409 && code === 'LogExists' && x.path === '/logs' && createsSeen.has(String(x.body?.logId))) continue;
      if (x.path === '/logs') createsSeen.add(String(x.body?.logId));
      fail(`${x.method} ${x.path} answered ${x.status} ${code}: ${String(x.response?.error?.message ?? '').slice(0, 160)}`);
    }
  });

  check(
    `no key, log or session unusable for long (AppendInProgress within the appender's deadline + ${RESERVATION_MARGIN_MS / 1000} s; 503s in a row for at most ${MAX_503_STREAK_MS / 1000} s)`,
    (fail) => {
      const byKey = new Map<string, Exchange[]>();
      for (const x of h.history)
        if (x.body?.idempotencyKey && x.path.endsWith('/records'))
          byKey.set(x.body.idempotencyKey, [...(byKey.get(x.body.idempotencyKey) ?? []), x]);
      let longestBusy = 0;
      for (const [key, xs] of byKey) {
        const busy = (x: Exchange) => x.status === 409 && x.response?.error?.code === 'AppendInProgress';
        if (!xs.some(busy)) continue;
        bump('keys answered AppendInProgress');
        // A run of AppendInProgress answers (nothing else in between) is one attempt holding the
        // key: it must end within that attempt's deadline and margin, counted from the run's first
        // answer back to the start of the attempt before it (the one that may hold the key).
        xs.sort((a, b) => a.start - b.start);
        let holder: number | undefined;
        for (let i = 0; i < xs.length; i++) {
          const x = xs[i]!;
          if (!busy(x)) {
            holder = undefined;
            continue;
          }
          holder ??= i > 0 ? xs[i - 1]!.start : x.start;
          const span = x.end - holder;
          longestBusy = Math.max(longestBusy, span);
          if (span > h.appendInProgressBoundMs) {
            fail(
              `key ${key}: answered AppendInProgress ${(span / 1000).toFixed(1)} s after the attempt that may hold it started (bound ${(h.appendInProgressBoundMs / 1000).toFixed(0)} s)`,
            );
            holder = undefined;
          }
        }
      }
      h.counts['longest AppendInProgress ms'] = longestBusy;
      const byResource = new Map<string, Exchange[]>();
      for (const x of h.history) {
        const r = sessionOfPath(x.path) ?? /^\/logs\/([^/]+)/.exec(x.path)?.[1];
        if (r) byResource.set(r, [...(byResource.get(r) ?? []), x]);
      }
      let longest = 0;
      for (const [r, xs] of byResource) {
        xs.sort((a, b) => a.end - b.end);
        let from: number | undefined;
        for (const x of xs) {
          if (x.status !== 503) {
            from = undefined;
            continue;
          }
          // From the first 503 answer to the last of the run (one slow request is not a streak).
          from ??= x.end;
          const span = x.end - from;
          longest = Math.max(longest, span);
          if (span > MAX_503_STREAK_MS) {
            fail(`${r}: answered only 503 for ${(span / 1000).toFixed(1)} s`);
            from = undefined;
          }
        }
      }
      h.counts['longest 503 streak ms'] = longest;
    },
  );

  return checks;
}

// ---- The command line ------------------------------------------------------------------------

export const CHAOS_USAGE = `Usage: npm run chaos -- [--seconds N] [--seed N] [--faults SPEC]
  --seconds N   how long producers append and workers are crashed and replaced (default ${DEFAULT_SECONDS}); draining and checking follow
  --seed N      seeds the faults and the workload (default: random, printed)
  --faults SPEC the faults, as npm start takes them (default ${DEFAULT_FAULTS}; off: none)
  --history FILE write every request and answer, the appends and the sessions to FILE as JSON`;

export function parseChaosArgs(argv: string[]): ChaosOptions & { help?: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      seed: { type: 'string' },
      faults: { type: 'string' },
      history: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return { help: true };
  const out: ChaosOptions = {};
  if (values.seconds !== undefined) {
    if (!/^\d+$/.test(values.seconds) || Number(values.seconds) < 1 || Number(values.seconds) > 3600)
      throw new Error(`--seconds must be a whole number from 1 to 3600; it is '${values.seconds}'.`);
    out.seconds = Number(values.seconds);
  }
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed) || Number(values.seed) > 0xffffffff)
      throw new Error(`--seed must be a whole number from 0 to 4294967295; it is '${values.seed}'.`);
    out.seed = Number(values.seed);
  }
  if (values.history !== undefined) out.historyFile = values.history;
  if (values.faults !== undefined) {
    parseFaultSpec(values.faults, '--faults'); // refuse a bad spec before starting anything
    out.faults = values.faults;
  }
  return out;
}

if (require.main === module) {
  // The AWS SDK warns that its 2027 releases will need Node 22; the runtime works on Node 20.
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (!w.message.includes('NodeVersionSupportWarning') && w.name !== 'NodeVersionSupportWarning') console.warn(w);
  });
  let args: ReturnType<typeof parseChaosArgs>;
  try {
    args = parseChaosArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`chaos: ${(e as Error).message}\n${CHAOS_USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(CHAOS_USAGE);
    process.exit(0);
  }
  runChaos(args).then(
    (r) => process.exit(r.failed ? 1 : 0),
    (e: unknown) => {
      console.error(`chaos: ${(e as Error)?.stack ?? String(e)}`);
      process.exit(2);
    },
  );
}
