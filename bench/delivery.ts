#!/usr/bin/env node
/**
 * `npm run bench`: delivery cost and speed, measured against the storage floor, side by side in
 * one run (issue 6).
 *
 * One process starts the real local runtime (the synthesized stack, the real handlers, SigV4,
 * the embedded DynamoDB). A worker thread plays the clients (a producer and N stateless workers
 * over signed HTTP). For each record size (100 B, 1 KiB, 10 KiB) and worker count (1, 4, 16),
 * several runs each:
 *
 * - append the records, then deliver them end to end (receive up to 100, ack as ranges, until
 *   every record is acked) on one session, and count every storage call the handlers make with
 *   its ConsumedCapacity, every failed conditional write, every receive's conflicts (the
 *   handler's ReceiveConflicts metric), and every request's duration and billed size;
 * - on the same store, half right before the delivery and half right after it, the floor: a
 *   bare loop of the reads delivery needs (a strongly consistent Query of the Records table per
 *   100 records, from the segment holding the page's first record), at the same concurrency;
 * - once per record size and run, the same records through a one-item-per-record design
 *   (bench/naive.ts), measured the same way.
 *
 * A warm-up pass of every path runs first and is discarded. Figures are medians over the runs
 * with the spread (min–max). `--json` prints the same figures as one JSON document on stdout
 * (progress goes to stderr); `--quick` runs a tiny matrix once (a smoke check); `--runs N`
 * overrides the number of runs.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { format } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { startLocalRuntime, type LocalRuntime } from '../local/server';
import { DEFAULT_CONFIG } from '../lambdas/domain/config';
import { TABLES } from '../lambdas/tables';
import { segmentHolding } from '../lambdas/domain/records';
import type { AckMode, AppendResult, ClientCommand, DeliverResult, ReceiveStat } from './client';
import { createNaiveTable, runNaive, type NaiveResult } from './naive';
import { measureBundles, type BundlesReport } from './bundles';
import { PRICES, lambdaUsdPerInvocation, minReadUnits, minWriteUnits, sqsUsdPerMillion } from './prices';
import { fmt, fmtSpread, fmtUsd, percentile, spread, sum, type Spread } from './stats';

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes('--json');
const QUICK = argv.includes('--quick');
const runsAt = argv.indexOf('--runs');
const RUNS = runsAt >= 0 ? Math.max(1, Number(argv[runsAt + 1])) : QUICK ? 1 : 3;
/** `--sizes 100,1024` and `--workers 4` narrow the matrix (for investigating one cell). */
const listArg = (name: string): number[] | undefined => {
  const at = argv.indexOf(name);
  return at >= 0 ? String(argv[at + 1]).split(',').map(Number).filter((n) => n > 0) : undefined;
};
const SIZES = (listArg('--sizes') ?? [100, 1024, 10240]).filter((s) => [100, 1024, 10240].includes(s));
const WORKERS = listArg('--workers') ?? (QUICK ? [1, 4] : [1, 4, 16]);
/**
 * Records per run: enough that delivering them at four workers lasts about as long as the floor
 * (2 s), so one garbage collection or one slow second of the shared machine is a small part of
 * either (12,000 small records were delivered in about 1 s, and their runs spread widely); and
 * at 10 KiB enough batches (120) that 16 workers measure delivery more than the race for the
 * log's last batches, which costs about one refused claim per worker whatever the run's length
 * (at 6,000 records, 15 of 76 receives).
 */
const RECORDS: Record<number, number> = QUICK ? { 100: 400, 1024: 400, 10240: 150 } : { 100: 36000, 1024: 24000, 10240: 12000 };
/**
 * The discarded warm-up: enough receives (about 120 at 100 B) that the JIT has compiled the hot
 * paths before the first measured run. With 10 receives a worker, the first run was measured
 * 15 to 25% slower than the next two, every time.
 */
const WARMUP_RECORDS: Record<number, number> = QUICK ? { 100: 200, 1024: 200, 10240: 50 } : { 100: 12000, 1024: 6000, 10240: 600 };
const BUNDLE_RUNS = QUICK ? 2 : 7;
/**
 * How workers ack (see AckMode): every worker count with the acks carried on the next receive
 * (what the client library does), and 4 workers acking with requests of their own beside it.
 * `--ack receive` or `--ack separate` runs only that mode.
 */
const ackAt = argv.indexOf('--ack');
const ACK_ONLY = ackAt >= 0 ? (argv[ackAt + 1] as AckMode) : undefined;
if (ACK_ONLY && ACK_ONLY !== 'receive' && ACK_ONLY !== 'separate') throw new Error(`--ack takes "receive" or "separate", not ${ACK_ONLY}`);
const VARIANTS: { workers: number; ack: AckMode }[] = [
  ...(ACK_ONLY === 'separate' ? [] : WORKERS.map((workers) => ({ workers, ack: 'receive' as const }))),
  ...(ACK_ONLY === 'receive' ? [] : (ACK_ONLY === 'separate' ? WORKERS : WORKERS.filter((w) => w === 4)).map((workers) => ({ workers, ack: 'separate' as const }))),
];
/** Records per receive: the delivery profile's default, what users get. */
const PAGE = DEFAULT_CONFIG.delivery.maxBatchRecords;
/**
 * In-flight limit of the benchmark's sessions: twice what 16 workers asking for 100 each hold.
 * A worker that acks on its next receive holds its batch until that receive's claim, so 16 of
 * them keep about 1,600 records in flight, and claims computed from a read a few claims old need
 * room beyond that or they are refused and retried (at 2,000, about 20% of receives retried at
 * 16 workers). The default (1,000) would cap 16 such workers at 10 batches; a user running 16
 * workers raises it the same way.
 */
const MAX_IN_FLIGHT = 4000;
const DELIVER_TIMEOUT_MS = 180_000;
/** The floor repeats its pass over the records until this long has passed (see runFloor). */
const FLOOR_MIN_MS = QUICK ? 200 : 2000;
/** `--profile DIR`: write a CPU profile of this process for every measured delivery phase. */
const profileAt = argv.indexOf('--profile');
const PROFILE_DIR = profileAt >= 0 ? resolve(argv[profileAt + 1] ?? '.') : undefined;

const progress = (line: string): void => {
  process.stderr.write(`[bench] ${line}\n`);
};

// ---------------------------------------------------------------------------------------------
// What is counted while a phase runs

interface OpStat {
  calls: number;
  units: number;
}

interface PhaseData {
  name: string;
  /** Per DynamoStore instance (one per function), per storage operation. */
  byStore: Map<number, Map<string, OpStat>>;
  /** Conditional writes DynamoDB rejected (they consume write units but report none), by table. */
  conditionalFailures: Map<string, number>;
  /** ReceiveConflicts values, one per completed receive (from the handler's EMF metrics). */
  receiveConflicts: number[];
  /** EMF documents whose ReceiveConflicts carried a Function dimension other than receive. */
  misattributedMetrics: number;
  /** One per request, from the runtime's request log: route, status, milliseconds. */
  requests: { route: string; status: number; ms: number }[];
}

const newPhase = (name: string): PhaseData => ({
  name,
  byStore: new Map(),
  conditionalFailures: new Map(),
  receiveConflicts: [],
  misattributedMetrics: 0,
  requests: [],
});

let current: PhaseData | undefined;
const storeIds = new WeakMap<object, number>();
let nextStoreId = 0;

const READ_OPS = new Set(['getHead', 'segmentsBetween', 'segmentAtOrBefore', 'firstLiveSegment', 'getIdem', 'getSession', 'getSessionWithHead', 'getDeadPages']);
const RECEIVE_ONLY_OPS = new Set(['getSessionWithHead', 'segmentsBetween', 'segmentAtOrBefore', 'firstLiveSegment', 'getHead']);

const capacityOf = (cc: ConsumedCapacity[] | undefined): number => (cc ?? []).reduce((a, c) => a + (c.CapacityUnits ?? 0), 0);

/**
 * The runtime's storage observer. DynamoStore calls it as a method (`this.observe(...)`), so
 * `this` names the store instance, i.e. the function (each function has its own store): that
 * is how a receive's calls are told from an ack's when both run concurrently.
 */
function observeStorage(this: unknown, op: string, cc: ConsumedCapacity[] | undefined): void {
  const p = current;
  if (!p) return;
  let id = -1;
  if (this && typeof this === 'object') {
    id = storeIds.get(this) ?? nextStoreId++;
    storeIds.set(this, id);
  }
  let ops = p.byStore.get(id);
  if (!ops) p.byStore.set(id, (ops = new Map()));
  const s = ops.get(op) ?? { calls: 0, units: 0 };
  s.calls++;
  s.units += capacityOf(cc);
  ops.set(op, s);
}

const REQUEST_LINE = /^(GET|POST|PUT|DELETE|PATCH) (\S+) (\d{3}) (\d+)ms$/;

function instrument(rt: LocalRuntime): void {
  // Conditional writes that fail: the observer sees successful calls only.
  rt.dynamo.client.middlewareStack.add(
    (next) => async (args) => {
      const p = current;
      try {
        return await next(args);
      } catch (e) {
        if (p && (e as { name?: string }).name === 'ConditionalCheckFailedException') {
          const table = String((args.input as { TableName?: string }).TableName ?? '?');
          p.conditionalFailures.set(table, (p.conditionalFailures.get(table) ?? 0) + 1);
        }
        throw e;
      }
    },
    { step: 'initialize', name: 'logrelayBenchConditionalFailures' },
  );
  // The handlers' EMF lines go through the local CloudWatch; read ReceiveConflicts on the way.
  const ingest = rt.cloudwatch.ingestEmf.bind(rt.cloudwatch);
  rt.cloudwatch.ingestEmf = (line: string): boolean => {
    const p = current;
    if (p && line.includes('ReceiveConflicts')) {
      try {
        const doc = JSON.parse(line.slice(line.indexOf('{'))) as { ReceiveConflicts?: number | number[]; Function?: string };
        const v = doc.ReceiveConflicts;
        const values = typeof v === 'number' ? [v] : Array.isArray(v) ? v : [];
        p.receiveConflicts.push(...values);
        if (doc.Function !== undefined && doc.Function !== 'receive') p.misattributedMetrics++;
      } catch {
        // not a metrics document after all
      }
    }
    return ingest(line);
  };
}

// ---------------------------------------------------------------------------------------------
// The client thread

class ClientThread {
  private readonly worker: Worker;
  private seq = 0;
  private readonly waiting = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();

  constructor(setup: { url: string; credentials: { accessKeyId: string; secretAccessKey: string } }) {
    const tsxCjs = require.resolve('tsx/cjs', { paths: [resolve(__dirname, '..')] });
    const entry = join(__dirname, 'client.ts');
    this.worker = new Worker(`require(${JSON.stringify(tsxCjs)}); require(${JSON.stringify(entry)});`, {
      eval: true,
      workerData: { benchClient: setup },
    });
    this.worker.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (!w) return;
      if (m.ok) w.ok(m.result);
      else w.fail(new Error(`client thread: ${m.error}`));
    });
    this.worker.on('error', (e) => {
      for (const w of this.waiting.values()) w.fail(e);
      this.waiting.clear();
    });
  }

  run<T>(cmd: ClientCommand): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((ok, fail) => {
      this.waiting.set(id, { ok: ok as (v: unknown) => void, fail });
      this.worker.postMessage({ id, cmd });
    });
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// One configuration, one run

interface Units {
  read: number;
  write: number;
  calls: number;
}

interface RunResult {
  recordBytes: number;
  workers: number;
  ack: AckMode;
  records: number;
  dataBytes: number;
  append: {
    requests: number;
    wallMs: number;
    units: Units;
    lambdaUsd: number;
    httpMetered: number;
    meanMs: number;
  };
  deliver: {
    wallMs: number;
    recordsPerSecond: number;
    /** Milliseconds the service's thread (handlers, local gateway, embedded store) was busy per 1,000 records. */
    serviceCpuMsPer1k: number;
    receives: number;
    emptyReceives: number;
    busyReplies: number;
    acks: number;
    redelivered: number;
    duplicates: number;
    receiveUnits: Units;
    ackUnits: Units;
    failedWrites: { receive: number; ack: number; unitsEstimate: number };
    conflictShare: number;
    conflictsPerReceive: number;
    /** Sum of the ReceiveConflicts metric (receives that answered 503 publish none). */
    conflictsFromMetric: number;
    latencyP50: number;
    latencyP99: number;
    lambdaUsd: number;
    httpMetered: number;
    meanReceiveMs: number;
    meanAckMs: number;
    misattributedMetrics: number;
    /** Storage calls and units by function and operation (rejected conditional writes estimated). */
    ops: Record<string, OpStat>;
  };
  /** cpuMsPer1k: milliseconds this thread (the store's and the service's) was busy per 1,000 records read. */
  floor: { wallMs: number; recordsPerSecond: number; cpuMsPer1k: number; calls: number; readUnits: number; passes: number };
}

function unitsOf(ops: Map<string, OpStat> | undefined): Units {
  const u: Units = { read: 0, write: 0, calls: 0 };
  for (const [op, s] of ops ?? []) {
    u.calls += s.calls;
    if (READ_OPS.has(op)) u.read += s.units;
    else u.write += s.units;
  }
  return u;
}

const addUnits = (a: Units, b: Units): Units => ({ read: a.read + b.read, write: a.write + b.write, calls: a.calls + b.calls });

/** Splits a delivery phase's calls into the receive function's and the ack (leases) function's. */
function splitDelivery(p: PhaseData): { receive: Map<string, OpStat>; ack: Map<string, OpStat> } {
  const receive = new Map<string, OpStat>();
  const ack = new Map<string, OpStat>();
  for (const ops of p.byStore.values()) {
    const target = [...ops.keys()].some((op) => RECEIVE_ONLY_OPS.has(op)) ? receive : ack;
    for (const [op, s] of ops) {
      const t = target.get(op) ?? { calls: 0, units: 0 };
      t.calls += s.calls;
      t.units += s.units;
      target.set(op, t);
    }
  }
  return { receive, ack };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Bench {
  rt: LocalRuntime;
  clients: ClientThread;
  doc: DynamoDBDocumentClient;
  tables: { logs: string; records: string; sessions: string };
}

/** Records per append request: the most that fit the default 1 MiB request limit, at most 500. */
function appendBatch(recordBytes: number): number {
  const limits = DEFAULT_CONFIG.limits;
  const perRecord = recordBytes + '{"data":},'.length;
  return Math.min(limits.maxRecordsPerAppend, Math.floor((limits.maxRequestBytes - 64) / perRecord));
}

async function logKeyOf(b: Bench, logId: string): Promise<string> {
  const out = await b.doc.send(
    new ScanCommand({ TableName: b.tables.logs, FilterExpression: 'lid = :l', ExpressionAttributeValues: { ':l': logId }, ProjectionExpression: 'pk' }),
  );
  const pk = out.Items?.find((it) => !String(it.pk).includes('#idem#'))?.pk;
  if (typeof pk !== 'string') throw new Error(`log ${logId} not found in ${b.tables.logs}`);
  return pk;
}

async function segmentFirsts(b: Bench, logKey: string): Promise<number[]> {
  const firsts: number[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await b.doc.send(
      new QueryCommand({
        TableName: b.tables.records,
        KeyConditionExpression: 'pk = :p',
        ExpressionAttributeValues: { ':p': logKey },
        ProjectionExpression: 'sk',
        ExclusiveStartKey: start,
      }),
    );
    for (const it of out.Items ?? []) firsts.push(it.sk as number);
    start = out.LastEvaluatedKey;
  } while (start);
  return firsts.sort((x, y) => x - y);
}

/**
 * The floor: the reads the delivery path needs for these records and nothing else, in a bare
 * loop at the same concurrency as the workers. Each page is what a receive of 100 fresh records
 * reads: a strongly consistent Query from the segment holding its first record to its last.
 */
/** One stretch of the floor: records read, time taken, this thread's busy time; units and calls of its first pass. */
interface FloorStretch {
  records: number;
  wallMs: number;
  cpuMs: number;
  calls: number;
  readUnits: number;
  passes: number;
}

async function runFloor(b: Bench, logKey: string, total: number, concurrency: number, minMs: number): Promise<FloorStretch> {
  const firsts = await segmentFirsts(b, logKey);
  const pages: [number, number][] = [];
  for (let from = 1; from <= total; from += PAGE) pages.push([segmentHolding(firsts, from), Math.min(total, from + PAGE - 1)]);
  // Whole passes over the pages until minMs has passed: a single pass of small records
  // takes a fraction of a second, too short to measure on a shared machine. Units and calls
  // are those of the first pass (the records once).
  let calls = 0;
  let readUnits = 0;
  let items = 0;
  let passes = 0;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  do {
    let next = 0;
    const first = passes === 0;
    const loop = async (): Promise<void> => {
      while (next < pages.length) {
        const [a, z] = pages[next++]!;
        let start: Record<string, unknown> | undefined;
        do {
          const out = await b.doc.send(
            new QueryCommand({
              TableName: b.tables.records,
              KeyConditionExpression: 'pk = :p AND sk BETWEEN :a AND :b',
              ExpressionAttributeValues: { ':p': logKey, ':a': a, ':b': z },
              ConsistentRead: true,
              ExclusiveStartKey: start,
              ReturnConsumedCapacity: 'TOTAL',
            }),
          );
          if (first) {
            calls++;
            readUnits += out.ConsumedCapacity?.CapacityUnits ?? 0;
            items += out.Items?.length ?? 0;
          }
          start = out.LastEvaluatedKey;
        } while (start);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    passes++;
  } while (performance.now() - t0 < minMs);
  const wallMs = performance.now() - t0;
  const cpuMs = performance.eventLoopUtilization(elu0).active;
  if (items < pages.length) throw new Error(`floor read ${items} segments for ${pages.length} pages`);
  return { records: total * passes, wallMs, cpuMs, calls, readUnits, passes };
}

/** The floor over both of its stretches: every record read over their time together; units of one pass. */
function floorOf(a: FloorStretch, b: FloorStretch): RunResult['floor'] {
  const records = a.records + b.records;
  const wallMs = a.wallMs + b.wallMs;
  return {
    wallMs,
    recordsPerSecond: records / (wallMs / 1000),
    cpuMsPer1k: ((a.cpuMs + b.cpuMs) / records) * 1000,
    calls: a.calls,
    readUnits: a.readUnits,
    passes: a.passes + b.passes,
  };
}

/** Deletes a run's segments so the store does not grow from run to run (not measured). */
async function dropSegments(b: Bench, logKey: string): Promise<void> {
  const firsts = await segmentFirsts(b, logKey);
  for (let i = 0; i < firsts.length; i += 25) {
    let pending: Record<string, unknown>[] = firsts.slice(i, i + 25).map((sk) => ({ DeleteRequest: { Key: { pk: logKey, sk } } }));
    while (pending.length) {
      const out = await b.doc.send(new BatchWriteCommand({ RequestItems: { [b.tables.records]: pending as never } }));
      pending = (out.UnprocessedItems?.[b.tables.records] as Record<string, unknown>[] | undefined) ?? [];
    }
  }
}

const lambdaUsd = (reqs: readonly { ms: number }[]): number => sum(reqs.map((r) => lambdaUsdPerInvocation(r.ms)));
const mean = (xs: readonly number[]): number => (xs.length ? sum(xs) / xs.length : NaN);

/** Starts the inspector's CPU profiler; the returned function stops it and writes the profile. */
async function startProfile(): Promise<(file: string) => Promise<void>> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((ok, fail) => session.post(method, params ?? {}, (e, r) => (e ? fail(e) : ok(r))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async (file) => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    session.disconnect();
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(profile));
  };
}

async function runOne(b: Bench, recordBytes: number, workers: number, ack: AckMode, total: number, tag: string): Promise<{ run: RunResult; logKey: string }> {
  const logId = `bench-${recordBytes}b-${workers}w-${ack}-${tag}-${Date.now().toString(36)}`;
  const batch = appendBatch(recordBytes);

  current = newPhase('setup');
  await b.clients.run({ type: 'createLog', logId });

  const appendPhase = (current = newPhase('append'));
  const app = await b.clients.run<AppendResult>({ type: 'append', logId, recordBytes, total, batch });
  await tick();

  current = newPhase('setup');
  const session = await b.clients.run<{ sessionId: string }>({
    type: 'createSession',
    logId,
    body: { start: 'oldest', maxInFlight: MAX_IN_FLIGHT },
  });

  // The floor runs half before the delivery and half after it, so that a change in the shared
  // machine's speed while a run lasts (seen here: 15% within a minute) falls on both sides of
  // the ratio instead of on one.
  const logKey = await logKeyOf(b, logId);
  const floorBefore = await runFloor(b, logKey, total, workers, FLOOR_MIN_MS / 2);

  const profiling = PROFILE_DIR && tag !== 'warmup' ? await startProfile() : undefined;
  const deliverPhase = (current = newPhase('deliver'));
  const elu0 = performance.eventLoopUtilization();
  const del = await b.clients.run<DeliverResult>({
    type: 'deliver',
    sessionId: session.sessionId,
    total,
    workers,
    maxRecords: PAGE,
    timeoutMs: DELIVER_TIMEOUT_MS,
    ack,
  });
  await tick();
  // This thread runs the service and the store; the clients run in their own.
  const serviceCpuMs = performance.eventLoopUtilization(elu0).active;
  current = undefined;
  if (profiling) await profiling(join(PROFILE_DIR!, `${logId}.cpuprofile`));

  const view = await b.clients.run<{ ackFloor: number; inFlight: number; lag: number }>({ type: 'describe', sessionId: session.sessionId });
  if (del.ackedRecords !== total || del.distinctDelivered !== total || view.ackFloor !== total || view.inFlight !== 0) {
    throw new Error(
      `run ${logId}: acked ${del.ackedRecords}, delivered ${del.distinctDelivered} of ${total}; session ackFloor ${view.ackFloor}, inFlight ${view.inFlight}`,
    );
  }
  const floorAfter = await runFloor(b, logKey, total, workers, FLOOR_MIN_MS / 2);
  const floor = floorOf(floorBefore, floorAfter);

  if ([appendPhase, deliverPhase].some((ph) => ph.byStore.has(-1))) {
    throw new Error('the storage observer was called without its store as `this`; receive and ack calls cannot be told apart');
  }
  const completedReceives = del.receives.filter((x) => x.status === 200).length;
  if (deliverPhase.receiveConflicts.length !== completedReceives) {
    progress(`warning: ${deliverPhase.receiveConflicts.length} ReceiveConflicts values for ${completedReceives} completed receives in ${logId}`);
  }

  // Storage calls and units.
  let appendUnits: Units = { read: 0, write: 0, calls: 0 };
  for (const ops of appendPhase.byStore.values()) appendUnits = addUnits(appendUnits, unitsOf(ops));
  const split = splitDelivery(deliverPhase);
  const receiveUnits = unitsOf(split.receive);
  const ackUnits = unitsOf(split.ack);
  const sessionFailures = deliverPhase.conditionalFailures.get(b.tables.sessions) ?? 0;
  const otherFailures = [...deliverPhase.conditionalFailures].filter(([t]) => t !== b.tables.sessions).reduce((a, [, n]) => a + n, 0);
  if (otherFailures) throw new Error(`unexpected conditional failures outside the Sessions table during delivery: ${otherFailures}`);
  // Rejected conditional writes are counted per table by the observer. The receive handler's
  // ReceiveConflicts metric counts its own (claims and compactions; not those of receives that
  // gave up with 503, which publish no metric); the rest are the acks' (an ack's update is
  // refused only for a session that expired or records never sent, so none are expected).
  const receiveFailuresByMetric = sum(deliverPhase.receiveConflicts);
  const ackFailures = Math.max(0, sessionFailures - receiveFailuresByMetric);
  const receiveFailures = sessionFailures - ackFailures;
  const busyReceives = del.receives.filter((x) => x.status === 503 || x.status === 429).length;
  // A rejected conditional write consumes write units for the item's size and reports none:
  // count each at the mean units of the session writes that succeeded in this run.
  const sessionWrites = new Set(['claimSession', 'compactSession', 'ackSession']);
  const saves = [...split.receive, ...split.ack].filter(([op]) => sessionWrites.has(op)).map(([, s]) => s);
  const saveUnits = sum(saves.map((s) => s.units)) / Math.max(1, sum(saves.map((s) => s.calls)));
  const failedUnits = sessionFailures * Math.max(1, saveUnits);

  const ops: Record<string, OpStat> = {};
  const addOp = (key: string, st: OpStat): void => {
    const o = (ops[key] ??= { calls: 0, units: 0 });
    o.calls += st.calls;
    o.units += st.units;
  };
  for (const [op, st] of split.receive) addOp(`receive ${op}`, st);
  for (const [op, st] of split.ack) addOp(`ack ${op}`, st);
  addOp('receive rejected', { calls: receiveFailures, units: receiveFailures * Math.max(1, saveUnits) });
  addOp('ack rejected', { calls: ackFailures, units: ackFailures * Math.max(1, saveUnits) });

  const receiveReqs = deliverPhase.requests.filter((r) => r.route.endsWith('/receive'));
  const ackReqs = deliverPhase.requests.filter((r) => r.route.endsWith('/ack'));
  const appendReqs = appendPhase.requests.filter((r) => r.route.endsWith('/records'));
  const nonEmpty = del.receives.filter((r: ReceiveStat) => r.records > 0);
  const completedConflicts = deliverPhase.receiveConflicts;

  const run: RunResult = {
    recordBytes,
    workers,
    ack,
    records: total,
    dataBytes: app.totalDataBytes,
    append: {
      requests: app.requests.length,
      wallMs: app.wallMs,
      units: appendUnits,
      lambdaUsd: lambdaUsd(appendReqs),
      httpMetered: sum(app.requests.map((r) => r.metered)),
      meanMs: mean(appendReqs.map((r) => r.ms)),
    },
    deliver: {
      wallMs: del.wallMs,
      recordsPerSecond: total / (del.wallMs / 1000),
      serviceCpuMsPer1k: (serviceCpuMs / total) * 1000,
      receives: del.receives.length,
      emptyReceives: del.receives.filter((r) => r.records === 0 && r.status === 200).length,
      busyReplies: del.busyReplies,
      acks: del.acks.length,
      redelivered: sum(del.receives.map((r) => r.redelivered)),
      duplicates: del.duplicates,
      receiveUnits: { ...receiveUnits, calls: receiveUnits.calls + receiveFailures },
      ackUnits: { ...ackUnits, calls: ackUnits.calls + ackFailures },
      failedWrites: { receive: receiveFailures, ack: ackFailures, unitsEstimate: failedUnits },
      // A receive that answered 503 retried its conditional write until it gave up.
      conflictShare: (completedConflicts.filter((c) => c > 0).length + busyReceives) / (completedConflicts.length + busyReceives),
      conflictsPerReceive: receiveFailures / (completedConflicts.length + busyReceives),
      conflictsFromMetric: sum(completedConflicts),
      latencyP50: percentile(nonEmpty.map((r) => r.ms), 50),
      latencyP99: percentile(nonEmpty.map((r) => r.ms), 99),
      lambdaUsd: lambdaUsd(receiveReqs) + lambdaUsd(ackReqs),
      httpMetered: sum(del.receives.map((r) => r.metered)) + sum(del.acks.map((r) => r.metered)),
      meanReceiveMs: mean(receiveReqs.map((r) => r.ms)),
      meanAckMs: mean(ackReqs.map((r) => r.ms)),
      misattributedMetrics: deliverPhase.misattributedMetrics,
      ops,
    },
    floor,
  };
  return { run, logKey };
}

// ---------------------------------------------------------------------------------------------
// Figures derived from a run (per 1,000 records, per million records)

interface Derived {
  e2eRecordsPerSecond: number;
  floorRecordsPerSecond: number;
  e2eOverFloor: number;
  /** Busy milliseconds of the thread that runs the service and the store, per 1,000 records. */
  deliverCpuMsPer1k: number;
  floorCpuMsPer1k: number;
  /** floorCpuMsPer1k / deliverCpuMsPer1k: the end-to-end / floor ratio in CPU, without idle time. */
  cpuFloorOverDeliver: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  conflictShare: number;
  conflictsPerReceive: number;
  ackConflictShare: number;
  callsPerReceive: number;
  callsPerAck: number;
  receivesPer1k: number;
  emptyReceives: number;
  busyReplies: number;
  appendUnitsPer1k: number;
  appendWritePer1k: number;
  appendReadPer1k: number;
  appendMinWritePer1k: number;
  appendOverMin: number;
  naiveAppendPer1k: number;
  naiveAppendOverLogrelay: number;
  receiveReadPer1k: number;
  receiveWritePer1k: number;
  ackReadPer1k: number;
  ackWritePer1k: number;
  failedWritePer1k: number;
  deliveryUnitsPer1k: number;
  deliveryMinReadPer1k: number;
  deliveryOverMin: number;
  floorReadPer1k: number;
  naiveDeliveryPer1k: number;
  naiveDeliveryOverLogrelay: number;
  totalUnitsPer1k: number;
  naiveTotalPer1k: number;
  naiveTotalOverLogrelay: number;
  usdDynamoPerM: number;
  usdLambdaPerM: number;
  usdHttpApiPerM: number;
  usdTotalPerM: number;
  usdNaiveDynamoPerM: number;
  usdSqsPerM: number;
  lambdaMsAppend: number;
  lambdaMsReceive: number;
  lambdaMsAck: number;
}

function derive(r: RunResult, naive: NaiveResult): Derived {
  const k = 1000 / r.records;
  const d = r.deliver;
  const a = r.append;
  const appendUnitsPer1k = (a.units.read + a.units.write) * k;
  const appendMinWritePer1k = minWriteUnits(r.dataBytes) * k;
  const naiveAppendPer1k = (naive.append.writeUnits + naive.append.readUnits) * (1000 / naive.records);
  const deliveryUnits = d.receiveUnits.read + d.receiveUnits.write + d.ackUnits.read + d.ackUnits.write + d.failedWrites.unitsEstimate;
  const deliveryUnitsPer1k = deliveryUnits * k;
  const deliveryMinReadPer1k = minReadUnits(r.dataBytes) * k;
  const naiveDeliveryPer1k = (naive.deliver.readUnits + naive.deliver.writeUnits + naive.ack.readUnits + naive.ack.writeUnits) * (1000 / naive.records);
  const completed = d.receives - d.busyReplies;
  const writeUnits = a.units.write + d.receiveUnits.write + d.ackUnits.write + d.failedWrites.unitsEstimate;
  const readUnits = a.units.read + d.receiveUnits.read + d.ackUnits.read;
  const perM = 1e6 / r.records;
  const usdDynamoPerM =
    ((writeUnits * PRICES.dynamodb.usdPerMillionWriteRequestUnits + readUnits * PRICES.dynamodb.usdPerMillionReadRequestUnits) / 1e6) * perM;
  const usdLambdaPerM = (a.lambdaUsd + d.lambdaUsd) * perM;
  const usdHttpApiPerM = ((a.httpMetered + d.httpMetered) * PRICES.httpApi.usdPerMillionRequests * perM) / 1e6;
  const naiveWrite = naive.append.writeUnits + naive.deliver.writeUnits + naive.ack.writeUnits;
  const naiveRead = naive.append.readUnits + naive.deliver.readUnits + naive.ack.readUnits;
  const usdNaiveDynamoPerM =
    ((naiveWrite * PRICES.dynamodb.usdPerMillionWriteRequestUnits + naiveRead * PRICES.dynamodb.usdPerMillionReadRequestUnits) / 1e6) *
    (1e6 / naive.records);
  return {
    e2eRecordsPerSecond: d.recordsPerSecond,
    floorRecordsPerSecond: r.floor.recordsPerSecond,
    e2eOverFloor: d.recordsPerSecond / r.floor.recordsPerSecond,
    deliverCpuMsPer1k: d.serviceCpuMsPer1k,
    floorCpuMsPer1k: r.floor.cpuMsPer1k,
    cpuFloorOverDeliver: r.floor.cpuMsPer1k / d.serviceCpuMsPer1k,
    latencyP50Ms: d.latencyP50,
    latencyP99Ms: d.latencyP99,
    conflictShare: d.conflictShare,
    conflictsPerReceive: d.conflictsPerReceive,
    ackConflictShare: d.acks ? d.failedWrites.ack / d.acks : NaN,
    callsPerReceive: d.receiveUnits.calls / d.receives,
    callsPerAck: d.ackUnits.calls / d.acks,
    receivesPer1k: completed * k,
    emptyReceives: d.emptyReceives,
    busyReplies: d.busyReplies,
    appendUnitsPer1k,
    appendWritePer1k: a.units.write * k,
    appendReadPer1k: a.units.read * k,
    appendMinWritePer1k,
    appendOverMin: appendUnitsPer1k / appendMinWritePer1k,
    naiveAppendPer1k,
    naiveAppendOverLogrelay: naiveAppendPer1k / appendUnitsPer1k,
    receiveReadPer1k: d.receiveUnits.read * k,
    receiveWritePer1k: d.receiveUnits.write * k,
    ackReadPer1k: d.ackUnits.read * k,
    ackWritePer1k: d.ackUnits.write * k,
    failedWritePer1k: d.failedWrites.unitsEstimate * k,
    deliveryUnitsPer1k,
    deliveryMinReadPer1k,
    deliveryOverMin: deliveryUnitsPer1k / deliveryMinReadPer1k,
    floorReadPer1k: r.floor.readUnits * k,
    naiveDeliveryPer1k,
    naiveDeliveryOverLogrelay: naiveDeliveryPer1k / deliveryUnitsPer1k,
    totalUnitsPer1k: appendUnitsPer1k + deliveryUnitsPer1k,
    naiveTotalPer1k: naiveAppendPer1k + naiveDeliveryPer1k,
    naiveTotalOverLogrelay: (naiveAppendPer1k + naiveDeliveryPer1k) / (appendUnitsPer1k + deliveryUnitsPer1k),
    usdDynamoPerM,
    usdLambdaPerM,
    usdHttpApiPerM,
    usdTotalPerM: usdDynamoPerM + usdLambdaPerM + usdHttpApiPerM,
    usdNaiveDynamoPerM,
    usdSqsPerM: sqsUsdPerMillion(r.recordBytes).usdPerMillionRecords,
    lambdaMsAppend: a.meanMs,
    lambdaMsReceive: d.meanReceiveMs,
    lambdaMsAck: d.meanAckMs,
  };
}

type DerivedKey = keyof Derived;
/** Groups of storage operations shown in the breakdown table, by function. */
const BREAKDOWN: { label: string; ops: string[] }[] = [
  { label: 'receive: BatchGetItem session + head', ops: ['receive getSessionWithHead'] },
  { label: 'receive: Query segments', ops: ['receive segmentsBetween', 'receive segmentAtOrBefore', 'receive firstLiveSegment'] },
  { label: 'receive: UpdateItem claim (with the carried acks, if any)', ops: ['receive claimSession'] },
  { label: 'receive: UpdateItem compaction (folds, redeliveries)', ops: ['receive compactSession'] },
  { label: 'receive: rejected conditional writes (est.)', ops: ['receive rejected'] },
  { label: 'receive: GetItem session, head (a host\'s first call; folds)', ops: ['receive getSession', 'receive getHead'] },
  { label: 'ack: UpdateItem ack', ops: ['ack ackSession'] },
  { label: 'ack: rejected conditional writes (est.)', ops: ['ack rejected'] },
];

type ConfigSummary = { recordBytes: number; workers: number; ack: AckMode; records: number; breakdown: Record<string, { calls: Spread; units: Spread }> } & {
  [K in DerivedKey]: Spread;
};

function summarize(recordBytes: number, workers: number, ack: AckMode, records: number, runs: Derived[], raw: RunResult[]): ConfigSummary {
  const out = { recordBytes, workers, ack, records, breakdown: {} } as ConfigSummary;
  for (const key of Object.keys(runs[0]!) as DerivedKey[]) out[key] = spread(runs.map((d) => d[key]));
  const known = new Set(BREAKDOWN.flatMap((g) => g.ops));
  const other = [...new Set(raw.flatMap((r) => Object.keys(r.deliver.ops)))].filter((k) => !known.has(k));
  for (const g of [...BREAKDOWN, ...(other.length ? [{ label: `other: ${other.join(', ')}`, ops: other }] : [])]) {
    const per1k = (r: RunResult, f: (o: OpStat) => number): number => (sum(g.ops.map((k) => (r.deliver.ops[k] ? f(r.deliver.ops[k]!) : 0))) * 1000) / r.records;
    out.breakdown[g.label] = { calls: spread(raw.map((r) => per1k(r, (o) => o.calls))), units: spread(raw.map((r) => per1k(r, (o) => o.units))) };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Targets

interface Target {
  name: string;
  value: number;
  target: string;
  met: boolean;
  spread: Spread;
}

function targets(configs: ConfigSummary[]): Target[] {
  const out: Target[] = [];
  // The targets are read from the way the client library works: acks carried on the next receive.
  const find = (bytes: number, w: number): ConfigSummary | undefined => configs.find((c) => c.recordBytes === bytes && c.workers === w && c.ack === 'receive');
  for (const w of WORKERS) {
    const c = find(1024, w);
    if (c) {
      out.push({
        name: `capacity units per 1,000 delivered+acked records / read-unit minimum, 1 KiB records, ${w} worker${w > 1 ? 's' : ''}`,
        value: c.deliveryOverMin.median,
        target: '<= 1.3',
        met: c.deliveryOverMin.median <= 1.3,
        spread: c.deliveryOverMin,
      });
    }
  }
  for (const w of WORKERS) {
    const c = find(100, w);
    if (c) {
      out.push({
        name: `one-item-per-record units / Logrelay units (append + delivery + ack), 100 B records, ${w} worker${w > 1 ? 's' : ''}`,
        value: c.naiveTotalOverLogrelay.median,
        target: '>= 5',
        met: c.naiveTotalOverLogrelay.median >= 5,
        spread: c.naiveTotalOverLogrelay,
      });
    }
  }
  for (const bytes of SIZES) {
    const c = find(bytes, 4);
    if (c) {
      out.push({
        name: `end-to-end records/s / storage-read floor records/s, 4 workers, ${label(bytes)} records`,
        value: c.e2eOverFloor.median,
        target: '>= 0.3',
        met: c.e2eOverFloor.median >= 0.3,
        spread: c.e2eOverFloor,
      });
    }
  }
  const most = Math.max(...WORKERS);
  for (const bytes of SIZES) {
    const c = find(bytes, most);
    if (c) {
      out.push({
        name: `share of receives that retried a conditional write, ${most} workers, ${label(bytes)} records`,
        value: c.conflictShare.median,
        target: most === 16 ? '< 0.2' : '< 0.2 (at 16 workers; this run has at most ' + most + ')',
        met: c.conflictShare.median < 0.2,
        spread: c.conflictShare,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output

const label = (bytes: number): string => (bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`);
const ackLabel = (ack: AckMode): string => (ack === 'receive' ? 'on next receive' : 'own request');

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

interface Report {
  generatedAt: string;
  command: string;
  wallSeconds: number;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; platform: string; loadAverageStart: number[]; loadAverageEnd: number[] };
  method: Record<string, unknown>;
  prices: typeof PRICES & { sqsChunkRule: string; httpApiMeteringRule: string; failedConditionalWriteRule: string };
  configs: ConfigSummary[];
  naive: { recordBytes: number; runs: NaiveResult[] }[];
  bundles: BundlesReport;
  targets: Target[];
  runs: RunResult[];
}

function markdown(rep: Report): string {
  const c = rep.configs;
  const lines: string[] = [];
  lines.push('# Logrelay delivery benchmark');
  lines.push('');
  lines.push(
    `${rep.generatedAt} · \`${rep.command}\` · ${fmt(rep.wallSeconds)} s · ${rep.machine.cpus} × ${rep.machine.cpuModel}, ${rep.machine.memoryGiB} GiB, ` +
      `Node.js ${rep.machine.node} · load average ${rep.machine.loadAverageStart.map((x) => x.toFixed(2)).join('/')} at start, ` +
      `${rep.machine.loadAverageEnd.map((x) => x.toFixed(2)).join('/')} at end`,
  );
  lines.push('');
  lines.push(
    `Local runtime (synthesized stack, real handlers, SigV4 over HTTP, embedded DynamoDB: dynalite) in one process; the clients in a worker thread. ` +
      `${rep.method.runs} run(s) per configuration after a discarded warm-up; each cell is the median with the spread (min–max) over the runs. ` +
      `Records per run: ${SIZES.map((s) => `${RECORDS[s]} × ${label(s)}`).join(', ')}. Every receive asks for ${PAGE} records (the default \`maxBatchRecords\`), ` +
      `workers ack what they got as ranges right away, with no processing time between (the most contended pattern for the session item): "on next receive" carries each batch's acks on the worker's next receive (the \`ack\` field; what the client library's consume() does), "own request" sends them as a \`POST /ack\` of their own; sessions use the default ack timeout and \`maxInFlight\` ${MAX_IN_FLIGHT}. ` +
      `"Floor" is a bare loop of the reads delivery needs for the same records on the same store (one strongly consistent Query per ${PAGE} records, from the segment holding the page's first record), at the same concurrency, in whole passes over the records for at least ${FLOOR_MIN_MS / 1000} s, half right before the delivery and half right after it (so a change in the shared machine's speed falls on both sides of the ratio); its units are those of one pass. ` +
        `"Service-thread CPU" is the time the thread that runs the local gateway, the handlers and the embedded store was busy (event-loop utilization) per 1,000 records, during the delivery and during the floor: their ratio is the end-to-end / floor ratio without idle time.`,
  );
  lines.push('');

  lines.push('## Speed: end to end against the storage-read floor');
  lines.push('');
  lines.push(
    table(
      ['record', 'workers', 'acks', 'delivered+acked rec/s', 'vs 1 worker', 'floor rec/s', 'end-to-end / floor', 'service-thread CPU ms per 1,000: delivery / floor (ratio)', 'receive p50 ms', 'receive p99 ms', 'receives that retried a cond. write', 'cond. write retries per receive', 'empty receives', '503s'],
      c.map((x) => [
        label(x.recordBytes),
        String(x.workers),
        ackLabel(x.ack),
        fmtSpread(x.e2eRecordsPerSecond),
        ((one) => (one ? `${fmt(x.e2eRecordsPerSecond.median / one.e2eRecordsPerSecond.median, 2)}×` : '—'))(
          c.find((y) => y.recordBytes === x.recordBytes && y.workers === 1 && y.ack === x.ack),
        ),
        fmtSpread(x.floorRecordsPerSecond),
        fmtSpread(x.e2eOverFloor, 2),
        `${fmt(x.deliverCpuMsPer1k.median)} / ${fmt(x.floorCpuMsPer1k.median)} (${fmtSpread(x.cpuFloorOverDeliver, 2)})`,
        fmtSpread(x.latencyP50Ms),
        fmtSpread(x.latencyP99Ms),
        fmtSpread({ ...x.conflictShare, median: x.conflictShare.median * 100, min: x.conflictShare.min * 100, max: x.conflictShare.max * 100 }, 2, '%'),
        fmtSpread(x.conflictsPerReceive, 2),
        fmtSpread(x.emptyReceives),
        fmtSpread(x.busyReplies),
      ]),
    ),
  );
  lines.push('');
  lines.push(
    'Latency: client-observed, receives that returned records. Receives that retried: the receive handler\'s `ReceiveConflicts` metric (one value per receive) > 0, plus receives answered 503 (they gave up after retrying); retries per receive: the session writes DynamoDB rejected during receives, per receive request. ' +
      '"vs 1 worker": end-to-end records/s relative to one worker with the same records. Empty receives: receives that found nothing to hand out (every remaining record leased to another worker), per run. 503s: receives or acks answered 503 (too many workers changing the session), retried after retry-after.',
  );
  lines.push('');

  const allRuns = rep.runs;
  lines.push(
    `Checks over all ${allRuns.length} measured runs: every record was delivered and acked (session ackFloor = last record, nothing in flight); ` +
      `records delivered more than once: ${sum(allRuns.map((r) => r.deliver.duplicates))}; deliveries with deliveryCount > 1: ${sum(allRuns.map((r) => r.deliver.redelivered))}; ` +
      `rejected session writes during receives: ${sum(allRuns.map((r) => r.deliver.failedWrites.receive))} counted at the store, ${sum(allRuns.map((r) => r.deliver.conflictsFromMetric))} in the ReceiveConflicts metric (receives that answered 503 publish none); ` +
      `EMF documents carrying ReceiveConflicts under another function's dimension: ${sum(allRuns.map((r) => r.deliver.misattributedMetrics))}.`,
  );
  lines.push('');

  lines.push('## Storage calls and capacity units per 1,000 records');
  lines.push('');
  lines.push(
    'Appending (one producer, one request at a time, batches as large as the 1 MiB request limit allows, at most 500; no `idempotencyKey`, which would add one PutItem and two UpdateItems of a small item per append request):',
  );
  lines.push('');
  const bySize = SIZES.map((s) => c.find((x) => x.recordBytes === s)).filter((x): x is ConfigSummary => !!x);
  lines.push(
    table(
      ['record', 'records per append', 'Logrelay units (WCU + RCU)', 'minimum WCU (bytes / 1 KB)', 'Logrelay / minimum', 'one item per record', 'one item per record / Logrelay'],
      bySize.map((x) => {
        const all = c.filter((y) => y.recordBytes === x.recordBytes);
        const pool = (k: DerivedKey): Spread => spread(all.flatMap((y) => y[k].runs));
        return [
          label(x.recordBytes),
          String(appendBatch(x.recordBytes)),
          `${fmtSpread(pool('appendUnitsPer1k'))} (${fmt(pool('appendWritePer1k').median)} + ${fmt(pool('appendReadPer1k').median)})`,
          fmt(x.appendMinWritePer1k.median),
          fmtSpread(pool('appendOverMin'), 3, '×'),
          fmtSpread(pool('naiveAppendPer1k')),
          fmtSpread(pool('naiveAppendOverLogrelay'), 3, '×'),
        ];
      }),
    ),
  );
  lines.push('');
  lines.push('Delivering and acking (receive + ack, including the estimated units of rejected conditional writes):');
  lines.push('');
  lines.push(
    table(
      [
        'record',
        'workers',
        'acks',
        'DynamoDB calls per receive request',
        'per ack request',
        'receive RCU + WCU',
        'ack RCU + WCU',
        'rejected cond. writes WCU (est.)',
        'total units',
        'minimum RCU (bytes / 4 KB)',
        'total / minimum',
        'floor RCU',
        'one item per record',
        'one item per record / Logrelay',
        'append + delivery + ack: one item per record / Logrelay',
      ],
      c.map((x) => [
        label(x.recordBytes),
        String(x.workers),
        ackLabel(x.ack),
        fmtSpread(x.callsPerReceive),
        fmtSpread(x.callsPerAck),
        `${fmt(x.receiveReadPer1k.median)} + ${fmt(x.receiveWritePer1k.median)}`,
        `${fmt(x.ackReadPer1k.median)} + ${fmt(x.ackWritePer1k.median)}`,
        fmtSpread(x.failedWritePer1k),
        fmtSpread(x.deliveryUnitsPer1k),
        fmt(x.deliveryMinReadPer1k.median),
        fmtSpread(x.deliveryOverMin, 3, '×'),
        fmtSpread(x.floorReadPer1k),
        fmtSpread(x.naiveDeliveryPer1k),
        fmtSpread(x.naiveDeliveryOverLogrelay, 3, '×'),
        fmtSpread(x.naiveTotalOverLogrelay, 3, '×'),
      ]),
    ),
  );
  lines.push('');
  lines.push(
    'One item per record: measured on the same store in the same run (bench/naive.ts): an `UpdateItem` on a per-log counter per append request plus one item per record; ' +
      `a strongly consistent Query per ${PAGE} records; one delete per record at ack. It is the charitable design: it writes NO per-record lease (a real one needs at least one more write unit per record to keep two workers off a record), so its delivery figure counts only the reads and the ack deletes. ` +
      'Rejected conditional writes: DynamoDB charges them write units for the item\'s size but returns no ConsumedCapacity, so each is counted at the mean units of the session writes that succeeded in the same run.',
  );
  lines.push('');

  lines.push('Where the delivery units go: storage calls / capacity units per 1,000 records delivered and acked (medians):');
  lines.push('');
  const groups = [...new Set(c.flatMap((x) => Object.keys(x.breakdown)))];
  lines.push(
    table(
      ['record', 'workers', 'acks', ...groups, 'floor: Query segments'],
      c.map((x) => [
        label(x.recordBytes),
        String(x.workers),
        ackLabel(x.ack),
        ...groups.map((g) => {
          const v = x.breakdown[g];
          return v ? `${fmt(v.calls.median)} / ${fmt(v.units.median)}` : '0 / 0';
        }),
        fmt(x.floorReadPer1k.median),
      ]),
    ),
  );
  lines.push('');

  lines.push('## Cost per million records (append + deliver + ack)');
  lines.push('');
  lines.push(
    table(
      ['record', 'workers', 'acks', 'DynamoDB', 'Lambda', 'HTTP API', 'Logrelay total', 'DynamoDB, one item per record', 'SQS requests (batches of 10)', 'Logrelay / SQS', 'mean Lambda ms: append / receive / ack'],
      c.map((x) => [
        label(x.recordBytes),
        String(x.workers),
        ackLabel(x.ack),
        fmtUsd(x.usdDynamoPerM.median),
        fmtUsd(x.usdLambdaPerM.median),
        fmtUsd(x.usdHttpApiPerM.median),
        `${fmtUsd(x.usdTotalPerM.median)} (${fmtUsd(x.usdTotalPerM.min)}–${fmtUsd(x.usdTotalPerM.max)})`,
        fmtUsd(x.usdNaiveDynamoPerM.median),
        fmtUsd(x.usdSqsPerM.median),
        `${fmt(x.usdTotalPerM.median / x.usdSqsPerM.median, 3)}×`,
        `${fmt(x.lambdaMsAppend.median)} / ${fmt(x.lambdaMsReceive.median)} / ${fmt(x.lambdaMsAck.median)}`,
      ]),
    ),
  );
  lines.push('');
  const p = rep.prices;
  lines.push(
    `Prices (${p.region}, ${p.note}): DynamoDB on-demand $${p.dynamodb.usdPerMillionWriteRequestUnits} per million write request units and $${p.dynamodb.usdPerMillionReadRequestUnits} per million read request units (${p.dynamodb.source}); ` +
      `Lambda arm64 $${p.lambda.usdPerGbSecond} per GB-second and $${p.lambda.usdPerMillionRequests} per million requests at ${p.lambda.memoryGb * 1024} MB (${p.lambda.source}); ` +
      `HTTP API $${p.httpApi.usdPerMillionRequests.toFixed(2)} per million requests, first 300 million (${p.httpApi.source}); SQS standard $${p.sqs.usdPerMillionRequests} per million requests (${p.sqs.source}). ` +
      `${p.httpApiMeteringRule} ${p.sqsChunkRule} ${p.failedConditionalWriteRule} ` +
      'Lambda durations are the local runtime\'s per-request times (request arrival to response, including local SigV4 verification), billed per started millisecond; with more workers than cores they include queueing behind other requests on the one thread, which a Lambda instance would not see. ' +
      'SQS counts requests only (no compute), one ReceiveMessage per 10 records (no empty receives), and ignores the free tier.',
  );
  lines.push('');

  lines.push('## Handler bundles and module initialization (cold-start proxy)');
  lines.push('');
  lines.push(
    table(
      ['function', 'bundle KiB', 'gzip KiB', 'source map KiB', 'require() ms, --enable-source-maps (as deployed)', 'require() ms, no source maps'],
      rep.bundles.bundles.map((b) => [
        b.fn,
        fmt(b.bytes / 1024),
        fmt(b.gzipBytes / 1024),
        fmt(b.sourceMapBytes / 1024),
        `${fmt(b.initMs)} (${fmt(Math.min(...b.initMsRuns))}–${fmt(Math.max(...b.initMsRuns))})`,
        fmt(b.initMsNoSourceMaps),
      ]),
    ),
  );
  lines.push('');
  lines.push(
    `Bundled like the stack (esbuild, minify, CommonJS, target node24, \`@aws-sdk/*\` external); median of ${rep.bundles.runs} fresh \`node -e "require(bundle)"\` processes on Node.js ${rep.bundles.nodeVersion} (Lambda runs Node.js 24), the external AWS SDK from the project's node_modules. ` +
      `For scale: requiring only @aws-sdk/client-dynamodb + lib-dynamodb takes ${fmt(rep.bundles.sdkOnlyInitMs)} ms. The handlers build their DynamoDB client on the first request (lazy), which this does not time.`,
  );
  lines.push('');

  lines.push('## Targets');
  lines.push('');
  lines.push(table(['target', 'value (median; min–max)', 'target', 'met'], rep.targets.map((t) => [t.name, fmtSpread(t.spread, 3), t.target, t.met ? 'yes' : '**no**'])));
  lines.push('');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const started = performance.now();
  const loadStart = loadavg();
  progress(`${QUICK ? 'quick' : 'full'} matrix: sizes ${SIZES.map(label).join(', ')}; workers ${WORKERS.join(', ')}; ${RUNS} run(s)`);

  progress('bundling the handlers and timing their module initialization');
  const bundles = await measureBundles(BUNDLE_RUNS, progress);

  const credDir = mkdtempSync(join(tmpdir(), 'logrelay-bench-'));
  progress('starting the local runtime');
  const rt = await startLocalRuntime({
    port: 0,
    credentialsPath: join(credDir, 'credentials.json'),
    log: (line: string) => {
      const m = REQUEST_LINE.exec(line);
      if (m && current) current.requests.push({ route: `${m[1]} ${m[2]}`, status: Number(m[3]), ms: Number(m[4]) });
      else if (!m) process.stderr.write(`${line}\n`);
    },
    observeStorage,
  });
  // Keep stdout for the report: anything else the handlers print goes to stderr; the EMF lines
  // still reach the local CloudWatch through the runtime's console hook.
  const runtimeConsoleLog = console.log;
  console.log = (...args: unknown[]) => {
    const [first] = args;
    if (args.length === 1 && typeof first === 'string' && first.startsWith('{') && first.includes('"_aws"')) runtimeConsoleLog(...args);
    else process.stderr.write(`${format(...args)}\n`);
  };
  console.info = console.debug = (...args: unknown[]) => process.stderr.write(`${format(...args)}\n`);
  instrument(rt);

  const names: Record<string, string> = {};
  for (const fn of Object.values(rt.system.functions)) {
    for (const def of TABLES) if (!names[def.id] && fn.environment[def.envVar]) names[def.id] = fn.environment[def.envVar]!;
  }
  if (!names.Logs || !names.Records || !names.Sessions) throw new Error(`table names not found in the functions' environments: ${JSON.stringify(names)}`);
  const tables = { logs: names.Logs!, records: names.Records!, sessions: names.Sessions! };
  const principal = rt.principals[0]!;
  const clients = new ClientThread({ url: rt.url, credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey } });
  const b: Bench = { rt, clients, doc: DynamoDBDocumentClient.from(rt.dynamo.client), tables };
  await createNaiveTable(rt.dynamo.client);

  const runs: RunResult[] = [];
  const naiveRuns = new Map<number, NaiveResult[]>();
  const derived = new Map<string, Derived[]>();
  try {
    progress('warm-up (discarded)');
    for (const size of SIZES) {
      let logKey = '';
      for (const ack of new Set(VARIANTS.map((v) => v.ack))) {
        ({ logKey } = await runOne(b, size, 4, ack, WARMUP_RECORDS[size]!, 'warmup'));
        await dropSegments(b, logKey);
      }
      await runNaive(rt.dynamo.client, { logKey: `${logKey}#warmup`, recordBytes: size, total: WARMUP_RECORDS[size]!, appendBatch: appendBatch(size), page: PAGE });
    }
    for (let r = 1; r <= RUNS; r++) {
      for (const size of SIZES) {
        const total = RECORDS[size]!;
        let naive: NaiveResult | undefined;
        for (const { workers: w, ack } of VARIANTS) {
          const { run, logKey } = await runOne(b, size, w, ack, total, `r${r}`);
          await dropSegments(b, logKey);
          // The same records through one item per record, once per size and run.
          naive ??= await runNaive(rt.dynamo.client, { logKey, recordBytes: size, total, appendBatch: appendBatch(size), page: PAGE });
          runs.push(run);
          const d = derive(run, naive);
          const key = `${size}/${w}/${ack}`;
          derived.set(key, [...(derived.get(key) ?? []), d]);
          progress(
            `run ${r}/${RUNS} ${label(size)} × ${w}, acks ${ackLabel(ack)}: ${fmt(d.e2eRecordsPerSecond)} rec/s (floor ${fmt(d.floorRecordsPerSecond)}, ${fmt(d.e2eOverFloor, 2)}×), ` +
              `p50 ${fmt(d.latencyP50Ms)} ms, retried ${fmt(d.conflictShare * 100, 2)}%, delivery ${fmt(d.deliveryUnitsPer1k)} units/1k (${fmt(d.deliveryOverMin)}× min), ` +
              `one-item-per-record ${fmt(d.naiveTotalOverLogrelay)}×`,
          );
        }
        naiveRuns.set(size, [...(naiveRuns.get(size) ?? []), naive!]);
      }
    }
  } finally {
    current = undefined;
    await clients.close();
    await rt.close();
    rmSync(credDir, { recursive: true, force: true });
  }

  const configs: ConfigSummary[] = [];
  for (const size of SIZES) {
    for (const { workers: w, ack } of VARIANTS) {
      const raw = runs.filter((r) => r.recordBytes === size && r.workers === w && r.ack === ack);
      configs.push(summarize(size, w, ack, RECORDS[size]!, derived.get(`${size}/${w}/${ack}`)!, raw));
    }
  }
  const cpu = cpus();
  const report: Report = {
    generatedAt: new Date().toISOString(),
    command:
      process.env.npm_lifecycle_event === 'bench'
        ? ['npm run bench', ...(argv.length ? ['--', ...argv] : [])].join(' ')
        : ['npx tsx bench/delivery.ts', ...argv].join(' '),
    wallSeconds: (performance.now() - started) / 1000,
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      loadAverageStart: loadStart,
      loadAverageEnd: loadavg(),
    },
    method: {
      runs: RUNS,
      warmup: `one discarded delivery per ack mode and one naive pass per record size (4 workers; ${SIZES.map((s) => `${WARMUP_RECORDS[s]} × ${label(s)}`).join(', ')}) before the measured runs`,
      recordsPerRun: RECORDS,
      recordSizes: 'bytes of each record\'s serialized `data` (JSON), the bytes both designs store',
      workers: WORKERS,
      maxRecordsPerReceive: PAGE,
      maxInFlight: MAX_IN_FLIGHT,
      appendBatch: Object.fromEntries(SIZES.map((s) => [s, appendBatch(s)])),
      clients: 'a worker thread (signed HTTP over loopback); the runtime, its handlers and dynalite on the main thread',
      floor: `one strongly consistent Query per ${PAGE} records of the Records table, from the segment holding the page's first record, at the same concurrency as the workers, on the same store, half right before and half right after the end-to-end run, in whole passes repeated for at least ${FLOOR_MIN_MS} ms in all (units: one pass)`,
      oneItemPerRecord:
        'per append request one UpdateItem on a counter, one item per record (BatchWriteItem); a strongly consistent Query per 100 records; one delete per record at ack; no per-record lease write (charitable)',
      theoreticalMinimum: 'write: record bytes / 1 KB (1 WCU per 1 KB); read: record bytes / 4 KB, strongly consistent (1 RCU per 4 KB)',
      capacity: 'ConsumedCapacity (ReturnConsumedCapacity TOTAL) of every storage call the handlers made, as dynalite computes it with DynamoDB\'s rules',
    },
    prices: {
      ...PRICES,
      sqsChunkRule:
        'SQS bills each 64 KB chunk of a request\'s payload as one request: a SendMessageBatch or ReceiveMessage of 10 records is ceil(10 × record bytes / 64 KiB) requests (1 for 100 B and 1 KiB records, 2 for 10 KiB), a DeleteMessageBatch 1.',
      httpApiMeteringRule:
        'HTTP API requests are metered in 512 KB increments; a call is counted as ceil(max(request, response) payload bytes / 512 KiB) requests (a 100-record receive of 10 KiB records is 2 or 3).',
      failedConditionalWriteRule:
        'A conditional write DynamoDB rejects still consumes write units for the item\'s size (it reports none), counted here at the run\'s mean units per successful session write.',
    },
    configs,
    naive: SIZES.map((s) => ({ recordBytes: s, runs: naiveRuns.get(s) ?? [] })),
    bundles,
    targets: targets(configs),
    runs,
  };
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${markdown(report)}\n`);
  progress(`done in ${fmt(report.wallSeconds)} s`);
}

main().then(
  // Exit only once stdout has taken everything: a pipe takes 64 KiB at a time, and exiting
  // earlier cut `--json` short when piped.
  () => process.stdout.write('', () => process.exit(0)),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
