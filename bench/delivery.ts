#!/usr/bin/env node
/**
 * `npm run bench`: delivery cost and speed, measured against the storage floor, side by side in
 * one run (issue 6); then how appends scale with concurrent producers (append-scale, below).
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
 *   bare loop of the reads delivery needs (per 100 records, one strongly consistent BatchGetItem
 *   of exactly the chunks that hold them, located once beforehand from the log's index), at the
 *   same concurrency;
 * - once per record size and run, the same records through a one-item-per-record design
 *   (bench/naive.ts), measured the same way.
 *
 * A warm-up pass of every path runs first and is discarded. Figures are medians over the runs
 * with the spread (min–max).
 *
 * Append-scale: the local runtime started again, with 5 ms added to every storage call
 * (`storageLatencyMs`, about a round trip to DynamoDB in a region) and with none; for 1, 8 and
 * 32 producers, one fresh log each, single-record appends over signed HTTP (the clients in a
 * worker thread), each producer in a closed loop for a fixed time. Per level: appends/s,
 * latency, refused appends by status and code, storage calls per append, how busy the
 * service's thread was, and whether the log came out gap-free (its lastSeq is the number of
 * 201 answers, its firstSeq 1, and the answered sequence numbers are distinct and cover
 * 1..lastSeq).
 *
 * `--json` prints the same figures as one JSON document on stdout (progress goes to stderr);
 * `--quick` runs a tiny matrix once and append-scale for 1 s a level (a smoke check); `--runs N`
 * overrides the number of delivery runs; `--only delivery` or `--only append-scale` runs one
 * section (the handler bundles are timed with delivery).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { format } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, BatchWriteCommand, DynamoDBDocumentClient, GetCommand, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { startLocalRuntime, type LocalRuntime } from '../local/server';
import { DEFAULT_CONFIG } from '../lambdas/domain/config';
import { TABLES } from '../lambdas/tables';
import { TAIL_PAGE, chunksIn, decodeEntry, runLast, type ChunkRef, type IndexRun } from '../lambdas/domain/log-index';
import { HEAD, namesIn, PAGE as PAGE_ITEM } from '../lambdas/adapters/items';
import { STORE_READS } from '../lambdas/ports';
import type { AckMode, AppendResult, AppendScaleResult, ClientCommand, DeliverResult, ReceiveStat } from './client';
import { createNaiveTable, runNaive, type NaiveResult } from './naive';
import { measureBundles, type BundlesReport } from './bundles';
import { PRICES, lambdaUsdPerInvocation, minReadUnits, minWriteUnits, sqsUsdPerMillion } from './prices';
import { fmt, fmtSpread, fmtUsd, percentile, spread, sum, type Spread } from './stats';
import { idleMarkdown, idleTargets, runIdle, type IdleReport } from './idle';

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
  return at >= 0
    ? String(argv[at + 1])
        .split(',')
        .map(Number)
        .filter((n) => n > 0)
    : undefined;
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
  ...(ACK_ONLY === 'receive'
    ? []
    : (ACK_ONLY === 'separate' ? WORKERS : WORKERS.filter((w) => w === 4)).map((workers) => ({ workers, ack: 'separate' as const }))),
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

/** `--only delivery`, `--only append-scale` or `--only idle` runs one section; by default all run. */
const ALL_SECTIONS = ['delivery', 'append-scale', 'idle'] as const;
type Section = (typeof ALL_SECTIONS)[number];
const onlyAt = argv.indexOf('--only');
const ONLY = onlyAt >= 0 ? argv[onlyAt + 1] : undefined;
if (ONLY !== undefined && !(ALL_SECTIONS as readonly string[]).includes(ONLY))
  throw new Error(`--only takes ${ALL_SECTIONS.map((s) => `"${s}"`).join(', ')}, not ${ONLY}`);
const SECTIONS: Section[] = ONLY ? [ONLY as Section] : [...ALL_SECTIONS];
/** Append-scale: concurrent producers per level, each level on a fresh log. */
const SCALE_PRODUCERS = [1, 8, 32];
/** Append-scale: storage latency of each runtime (local/latency.ts): about a regional round trip to DynamoDB, and none. */
const SCALE_LATENCIES_MS = [5, 0];
/** Append-scale: how long the producers append at each level. */
const SCALE_LEVEL_MS = QUICK ? 1000 : 5000;
/** Append-scale: a discarded level (8 producers) on each runtime first, so the JIT has compiled the append path. */
const SCALE_WARMUP_MS = QUICK ? 300 : 2000;
/** Append-scale: bytes of each record's serialized `data` (one record per append). */
const SCALE_RECORD_BYTES = 100;

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
  /** The same, by command, table and condition (to tell which write was refused). */
  conditionalFailuresByWrite: Map<string, number>;
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
  conditionalFailuresByWrite: new Map(),
  receiveConflicts: [],
  misattributedMetrics: 0,
  requests: [],
});

let current: PhaseData | undefined;
const storeIds = new WeakMap<object, number>();
let nextStoreId = 0;

/** Operations only the receive function makes during a delivery (a store that made one is the receive function's). */
const RECEIVE_ONLY_OPS = new Set([
  'getSessionWithHead',
  'getChunks',
  'indexPageAtOrBefore',
  'indexPagesBetween',
  'firstLiveIndexPage',
  'firstExpiryMark',
  'getHead',
]);

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
  if (!ops) {
    ops = new Map();
    p.byStore.set(id, ops);
  }
  const s = ops.get(op) ?? { calls: 0, units: 0 };
  s.calls++;
  s.units += capacityOf(cc);
  ops.set(op, s);
}

const REQUEST_LINE = /^(GET|POST|PUT|DELETE|PATCH) (\S+) (\d{3}) (\d+)ms$/;

function instrument(rt: LocalRuntime): void {
  // Conditional writes that fail: the observer sees successful calls only.
  rt.dynamo.client.middlewareStack.add(
    (next, context) => async (args) => {
      const p = current;
      try {
        return await next(args);
      } catch (e) {
        if (p && (e as { name?: string }).name === 'ConditionalCheckFailedException') {
          const input = args.input as { TableName?: string; ConditionExpression?: string };
          const table = String(input.TableName ?? '?');
          p.conditionalFailures.set(table, (p.conditionalFailures.get(table) ?? 0) + 1);
          const write = `${context.commandName ?? '?'} ${table}: ${input.ConditionExpression ?? ''}`;
          p.conditionalFailuresByWrite.set(write, (p.conditionalFailuresByWrite.get(write) ?? 0) + 1);
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
  floor: {
    wallMs: number;
    recordsPerSecond: number;
    cpuMsPer1k: number;
    calls: number;
    readUnits: number;
    passes: number;
    chunksPerPage: [number, number];
  };
}

function unitsOf(ops: Map<string, OpStat> | undefined): Units {
  const u: Units = { read: 0, write: 0, calls: 0 };
  for (const [op, s] of ops ?? []) {
    u.calls += s.calls;
    if (STORE_READS.has(op)) u.read += s.units;
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

async function logKeyOf(b: Pick<Bench, 'doc' | 'tables'>, logId: string): Promise<string> {
  const out = await b.doc.send(
    new ScanCommand({
      TableName: b.tables.logs,
      FilterExpression: '#logId = :l',
      ProjectionExpression: '#key',
      ExpressionAttributeNames: namesIn(HEAD, '#logId = :l', '#key'),
      ExpressionAttributeValues: { ':l': logId },
    }),
  );
  const pk = out.Items?.find((it) => !String(it[HEAD.key]).includes('#idem#'))?.[HEAD.key];
  if (typeof pk !== 'string') throw new Error(`log ${logId} not found in ${b.tables.logs}`);
  return pk;
}

/** A batch's chunks are stored under a partition key of their own (as lambdas/adapters/store.ts keys them). */
const chunkPk = (logKey: string, batchId: string): string => `${logKey}#${batchId}`;

/**
 * A log's whole index as the service stored it: the index pages (Records items with pk = the
 * log's key, read with a strongly consistent Query) and the head's tail (HEAD.tail, starting at
 * HEAD.tailFirst), checked to be one gap-free run of sequence numbers from the first page to the head's lastSeq.
 */
async function readIndex(
  b: Pick<Bench, 'doc' | 'tables'>,
  logKey: string,
): Promise<{ pages: IndexRun[]; tail: IndexRun; lastSeq: number }> {
  const head = (await b.doc.send(new GetCommand({ TableName: b.tables.logs, Key: { [HEAD.key]: logKey }, ConsistentRead: true }))).Item;
  if (!head) throw new Error(`no head for ${logKey} in ${b.tables.logs}`);
  const tail: IndexRun = {
    first: head[HEAD.tailFirst] as number,
    entries: ((head[HEAD.tail] as string[] | undefined) ?? []).map(decodeEntry),
  };
  const lastSeq = head[HEAD.lastSeq] as number;
  const pages: IndexRun[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await b.doc.send(
      new QueryCommand({
        TableName: b.tables.records,
        KeyConditionExpression: '#key = :p',
        ExpressionAttributeNames: namesIn(PAGE_ITEM, '#key = :p'),
        ExpressionAttributeValues: { ':p': logKey },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    for (const it of out.Items ?? [])
      pages.push({
        first: it[PAGE_ITEM.first] as number,
        entries: ((it[PAGE_ITEM.entries] as string[] | undefined) ?? []).map(decodeEntry),
      });
    start = out.LastEvaluatedKey;
  } while (start);
  pages.sort((x, y) => x.first - y.first);
  // Pages at or past the tail's start were written by a mover whose trim was refused (another
  // mover trimmed first) or has not landed yet: they must repeat the tail's entries exactly.
  const ahead = pages.filter((pg) => pg.first >= tail.first);
  for (const pg of ahead) {
    const at = chunksIn(tail, pg.first, runLast(pg));
    const want = chunksIn(pg, pg.first, runLast(pg));
    if (JSON.stringify(at) !== JSON.stringify(want)) throw new Error(`${logKey}: index page at ${pg.first} disagrees with the head's tail`);
  }
  pages.splice(pages.length - ahead.length, ahead.length);
  let next = pages[0]?.first ?? tail.first;
  for (const run of [...pages, tail]) {
    if (run.first !== next) throw new Error(`${logKey}: index run at ${run.first}, expected ${next}`);
    next = runLast(run) + 1;
  }
  if (next !== lastSeq + 1) throw new Error(`${logKey}: the index ends at ${next - 1}, the head's last is ${lastSeq}`);
  return { pages, tail, lastSeq };
}

/** The chunks that hold `from .. to`, in sequence order, checked to cover every one of them. */
function chunksHolding(runs: readonly IndexRun[], from: number, to: number): ChunkRef[] {
  const refs = runs.filter((r) => r.first <= to && runLast(r) >= from).flatMap((r) => chunksIn(r, from, to));
  let next = from;
  for (const c of refs) {
    if (c.first > next) break;
    next = Math.max(next, c.first + c.count);
  }
  if (next <= to) throw new Error(`the index holds ${from}..${next - 1} of ${from}..${to}`);
  return refs;
}

/** The most keys one BatchGetItem takes. */
const BATCH_GET_KEYS = 100;

/**
 * The floor: the reads the delivery path needs for these records and nothing else, in a bare
 * loop at the same concurrency as the workers. Each page is what a receive of 100 fresh records
 * reads once it knows where they are: one strongly consistent BatchGetItem of exactly the
 * chunks that hold them (more only when a page spans more than 100 chunks, sent together, as
 * the store does; and again for keys DynamoDB left unprocessed). Where they are is worked out
 * once, before the clock starts, from the log's index (the head's tail and the index pages);
 * a receive looks it up in its host's cache of index pages, or reads the head and pages first.
 */
/** One stretch of the floor: records read, time taken, this thread's busy time; units and calls of its first pass. */
interface FloorStretch {
  records: number;
  wallMs: number;
  cpuMs: number;
  calls: number;
  readUnits: number;
  passes: number;
  /** Chunks one full page's read names (PAGE records): the fewest and the most. */
  chunksPerPage: [number, number];
}

/** The floor's pages: the keys of the chunks holding each page of PAGE records, from the log's index. */
async function floorPages(b: Bench, logKey: string, total: number): Promise<{ pk: string; sk: number }[][]> {
  const { pages: indexPages, tail, lastSeq } = await readIndex(b, logKey);
  if (lastSeq !== total) throw new Error(`${logKey}: the head's last is ${lastSeq}, ${total} records were appended`);
  const runs = [...indexPages, tail];
  const pages: { pk: string; sk: number }[][] = [];
  for (let from = 1; from <= total; from += PAGE) {
    pages.push(chunksHolding(runs, from, Math.min(total, from + PAGE - 1)).map((c) => ({ pk: chunkPk(logKey, c.batchId), sk: c.index })));
  }
  return pages;
}

async function runFloor(b: Bench, logKey: string, total: number, concurrency: number, minMs: number): Promise<FloorStretch> {
  const pages = await floorPages(b, logKey, total);
  const keysInAll = sum(pages.map((p) => p.length));
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
    const read = async (keys: { pk: string; sk: number }[]): Promise<void> => {
      let request: Record<string, { Keys: Record<string, unknown>[]; ConsistentRead: boolean }> | undefined = {
        [b.tables.records]: { Keys: keys, ConsistentRead: true },
      };
      while (request && Object.keys(request).length) {
        const out = await b.doc.send(new BatchGetCommand({ RequestItems: request, ReturnConsumedCapacity: 'TOTAL' }));
        if (first) {
          calls++;
          readUnits += capacityOf(out.ConsumedCapacity);
          items += out.Responses?.[b.tables.records]?.length ?? 0;
        }
        request = out.UnprocessedKeys as typeof request;
      }
    };
    const loop = async (): Promise<void> => {
      while (next < pages.length) {
        const keys = pages[next++]!;
        const parts: Promise<void>[] = [];
        for (let i = 0; i < keys.length; i += BATCH_GET_KEYS) parts.push(read(keys.slice(i, i + BATCH_GET_KEYS)));
        await Promise.all(parts);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    passes++;
  } while (performance.now() - t0 < minMs);
  const wallMs = performance.now() - t0;
  const cpuMs = performance.eventLoopUtilization(elu0).active;
  if (items !== keysInAll) throw new Error(`floor read ${items} chunks of the ${keysInAll} its pages name`);
  // Chunks per page over the full pages (the last may hold fewer records), all pages when none is full.
  const full = total >= PAGE ? pages.slice(0, Math.floor(total / PAGE)) : pages;
  const perPage = full.map((p) => p.length);
  return { records: total * passes, wallMs, cpuMs, calls, readUnits, passes, chunksPerPage: [Math.min(...perPage), Math.max(...perPage)] };
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
    chunksPerPage: a.chunksPerPage,
  };
}

/** Deletes a run's chunks and index pages so the store does not grow from run to run (not measured). */
async function dropChunks(b: Bench, logKey: string): Promise<void> {
  const { pages, tail } = await readIndex(b, logKey);
  const keys: { pk: string; sk: number }[] = [];
  for (const run of [...pages, tail])
    for (const e of run.entries) for (let i = 0; i < e.counts.length; i++) keys.push({ pk: chunkPk(logKey, e.batchId), sk: i });
  for (const page of pages) keys.push({ pk: logKey, sk: page.first });
  for (let i = 0; i < keys.length; i += 25) {
    let pending: Record<string, unknown>[] = keys.slice(i, i + 25).map((Key) => ({ DeleteRequest: { Key } }));
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

async function runOne(
  b: Bench,
  recordBytes: number,
  workers: number,
  ack: AckMode,
  total: number,
  tag: string,
): Promise<{ run: RunResult; logKey: string }> {
  const logId = `bench-${recordBytes}b-${workers}w-${ack}-${tag}-${Date.now().toString(36)}`;
  const batch = appendBatch(recordBytes);

  current = newPhase('setup');
  await b.clients.run({ type: 'createLog', logId });

  const appendPhase = newPhase('append');
  current = appendPhase;
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
  const deliverPhase = newPhase('deliver');
  current = deliverPhase;
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
    progress(
      `warning: ${deliverPhase.receiveConflicts.length} ReceiveConflicts values for ${completedReceives} completed receives in ${logId}`,
    );
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
    ops[key] ??= { calls: 0, units: 0 };
    const o = ops[key];
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
      latencyP50: percentile(
        nonEmpty.map((r) => r.ms),
        50,
      ),
      latencyP99: percentile(
        nonEmpty.map((r) => r.ms),
        99,
      ),
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
  const naiveDeliveryPer1k =
    (naive.deliver.readUnits + naive.deliver.writeUnits + naive.ack.readUnits + naive.ack.writeUnits) * (1000 / naive.records);
  const completed = d.receives - d.busyReplies;
  const writeUnits = a.units.write + d.receiveUnits.write + d.ackUnits.write + d.failedWrites.unitsEstimate;
  const readUnits = a.units.read + d.receiveUnits.read + d.ackUnits.read;
  const perM = 1e6 / r.records;
  const usdDynamoPerM =
    ((writeUnits * PRICES.dynamodb.usdPerMillionWriteRequestUnits + readUnits * PRICES.dynamodb.usdPerMillionReadRequestUnits) / 1e6) *
    perM;
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
  { label: 'receive: BatchGetItem chunks', ops: ['receive getChunks'] },
  {
    label: "receive: Query index pages (a host's first look at them; retention)",
    ops: ['receive indexPageAtOrBefore', 'receive indexPagesBetween', 'receive firstLiveIndexPage', 'receive firstExpiryMark'],
  },
  { label: 'receive: UpdateItem claim (with the carried acks, if any)', ops: ['receive claimSession'] },
  { label: 'receive: UpdateItem compaction (folds, redeliveries)', ops: ['receive compactSession'] },
  { label: 'receive: rejected conditional writes (est.)', ops: ['receive rejected'] },
  { label: "receive: GetItem session, head (a host's first call; folds)", ops: ['receive getSession', 'receive getHead'] },
  { label: 'ack: UpdateItem ack', ops: ['ack ackSession'] },
  { label: 'ack: rejected conditional writes (est.)', ops: ['ack rejected'] },
];

type ConfigSummary = {
  recordBytes: number;
  workers: number;
  ack: AckMode;
  records: number;
  breakdown: Record<string, { calls: Spread; units: Spread }>;
} & {
  [K in DerivedKey]: Spread;
};

function summarize(recordBytes: number, workers: number, ack: AckMode, records: number, runs: Derived[], raw: RunResult[]): ConfigSummary {
  const out = { recordBytes, workers, ack, records, breakdown: {} } as ConfigSummary;
  for (const key of Object.keys(runs[0]!) as DerivedKey[]) out[key] = spread(runs.map((d) => d[key]));
  const known = new Set(BREAKDOWN.flatMap((g) => g.ops));
  const other = [...new Set(raw.flatMap((r) => Object.keys(r.deliver.ops)))].filter((k) => !known.has(k));
  for (const g of [...BREAKDOWN, ...(other.length ? [{ label: `other: ${other.join(', ')}`, ops: other }] : [])]) {
    const per1k = (r: RunResult, f: (o: OpStat) => number): number =>
      (sum(g.ops.map((k) => (r.deliver.ops[k] ? f(r.deliver.ops[k]!) : 0))) * 1000) / r.records;
    out.breakdown[g.label] = {
      calls: spread(raw.map((r) => per1k(r, (o) => o.calls))),
      units: spread(raw.map((r) => per1k(r, (o) => o.units))),
    };
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

function deliveryTargets(configs: ConfigSummary[]): Target[] {
  const out: Target[] = [];
  // Appending 1 KiB records: the append units of every run at that size (the append table's figure).
  const appendAt1k = configs.filter((c) => c.recordBytes === 1024);
  if (appendAt1k.length) {
    const ratio = spread(appendAt1k.flatMap((c) => c.appendOverMin.runs));
    out.push({
      name: 'append capacity units per 1,000 records / write-unit minimum, 1 KiB records (every run at that size)',
      value: ratio.median,
      target: '<= 1.2',
      met: ratio.median <= 1.2,
      spread: ratio,
    });
  }
  // The targets are read from the way the client library works: acks carried on the next receive.
  const find = (bytes: number, w: number): ConfigSummary | undefined =>
    configs.find((c) => c.recordBytes === bytes && c.workers === w && c.ack === 'receive');
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
        target: most === 16 ? '< 0.2' : `< 0.2 (at 16 workers; this run has at most ${most})`,
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
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGiB: number;
    node: string;
    platform: string;
    loadAverageStart: number[];
    loadAverageEnd: number[];
  };
  /** The sections this run measured (`--only` picks one). */
  sections: Section[];
  /** The delivery section's method, prices, figures and runs (absent with `--only append-scale`). */
  method?: Record<string, unknown>;
  prices?: typeof PRICES & { sqsChunkRule: string; httpApiMeteringRule: string; failedConditionalWriteRule: string };
  configs?: ConfigSummary[];
  naive?: { recordBytes: number; runs: NaiveResult[] }[];
  bundles?: BundlesReport;
  runs?: RunResult[];
  /** The append-scale section (absent with `--only delivery`). */
  appendScale?: AppendScaleReport;
  /** What an idle worker costs (absent unless the idle section ran). */
  idle?: IdleReport;
  targets: Target[];
}

/** Chunks per page of the floor, by record size, for the report's text. */
function floorChunks(runs: readonly RunResult[]): string {
  const parts = SIZES.flatMap((size) => {
    const rs = runs.filter((r) => r.recordBytes === size);
    if (!rs.length) return [];
    const lo = Math.min(...rs.map((r) => r.floor.chunksPerPage[0]));
    const hi = Math.max(...rs.map((r) => r.floor.chunksPerPage[1]));
    return [`${lo === hi ? lo : `${lo} to ${hi}`} at ${label(size)}`];
  });
  return `${parts.join(', ')} chunks a page of ${PAGE} records`;
}

function markdown(rep: Report): string {
  const lines: string[] = [];
  lines.push('# Logrelay delivery benchmark');
  lines.push('');
  lines.push(
    `${rep.generatedAt} · \`${rep.command}\` · ${fmt(rep.wallSeconds)} s · ${rep.machine.cpus} × ${rep.machine.cpuModel}, ${rep.machine.memoryGiB} GiB, ` +
      `Node.js ${rep.machine.node} · load average ${rep.machine.loadAverageStart.map((x) => x.toFixed(2)).join('/')} at start, ` +
      `${rep.machine.loadAverageEnd.map((x) => x.toFixed(2)).join('/')} at end`,
  );
  lines.push('');
  if (rep.configs) lines.push(...deliveryMarkdown(rep));
  if (rep.appendScale) lines.push(...appendScaleMarkdown(rep.appendScale));
  if (rep.idle) lines.push(...idleMarkdown(rep.idle));
  lines.push('## Targets');
  lines.push('');
  lines.push(
    table(
      ['target', 'value (median; min–max)', 'target', 'met'],
      rep.targets.map((t) => [t.name, fmtSpread(t.spread, 3), t.target, t.met ? 'yes' : '**no**']),
    ),
  );
  lines.push('');
  return lines.join('\n');
}

function deliveryMarkdown(rep: Report): string[] {
  const c = rep.configs!;
  const bundles = rep.bundles!;
  const lines: string[] = [];
  lines.push(
    `Local runtime (synthesized stack, real handlers, SigV4 over HTTP, embedded DynamoDB: dynalite) in one process; the clients in a worker thread. ` +
      (rep.method!.storageLatencyMs
        ? `Every DynamoDB call, the floor's included, had ${String(rep.method!.storageLatencyMs)} ms added (LOGRELAY_STORAGE_LATENCY_MS). `
        : '') +
      `${rep.method!.runs} run(s) per configuration after a discarded warm-up; each cell is the median with the spread (min–max) over the runs. ` +
      `Records per run: ${SIZES.map((s) => `${RECORDS[s]} × ${label(s)}`).join(', ')}. Every receive asks for ${PAGE} records (the default \`maxBatchRecords\`), ` +
      `workers ack what they got as ranges right away, with no processing time between (the most contended pattern for the session item): "on next receive" carries each batch's acks on the worker's next receive (the \`ack\` field; what the client library's consume() does), "own request" sends them as a \`POST /ack\` of their own; sessions use the default ack timeout and \`maxInFlight\` ${MAX_IN_FLIGHT}. ` +
      `"Floor" is a bare loop of the reads delivery needs for the same records on the same store (per ${PAGE} records, one strongly consistent BatchGetItem of exactly the chunks that hold them: ${floorChunks(rep.runs!)}; where they are is worked out once before the floor is timed, from the head's tail and the log's index pages, which a receive finds in its host's cache or reads first), at the same concurrency, in whole passes over the records for at least ${FLOOR_MIN_MS / 1000} s, half right before the delivery and half right after it (so a change in the shared machine's speed falls on both sides of the ratio); its units are those of one pass. ` +
      `"Service-thread CPU" is the time the thread that runs the local gateway, the handlers and the embedded store was busy (event-loop utilization) per 1,000 records, during the delivery and during the floor: their ratio is the end-to-end / floor ratio without idle time.`,
  );
  lines.push('');

  lines.push('## Speed: end to end against the storage-read floor');
  lines.push('');
  lines.push(
    table(
      [
        'record',
        'workers',
        'acks',
        'delivered+acked rec/s',
        'vs 1 worker',
        'floor rec/s',
        'end-to-end / floor',
        'service-thread CPU ms per 1,000: delivery / floor (ratio)',
        'receive p50 ms',
        'receive p99 ms',
        'receives that retried a cond. write',
        'cond. write retries per receive',
        'empty receives',
        '503s',
      ],
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
        fmtSpread(
          { ...x.conflictShare, median: x.conflictShare.median * 100, min: x.conflictShare.min * 100, max: x.conflictShare.max * 100 },
          2,
          '%',
        ),
        fmtSpread(x.conflictsPerReceive, 2),
        fmtSpread(x.emptyReceives),
        fmtSpread(x.busyReplies),
      ]),
    ),
  );
  lines.push('');
  lines.push(
    "Latency: client-observed, receives that returned records. Receives that retried: the receive handler's `ReceiveConflicts` metric (one value per receive) > 0, plus receives answered 503 (they gave up after retrying); retries per receive: the session writes DynamoDB rejected during receives, per receive request. " +
      '"vs 1 worker": end-to-end records/s relative to one worker with the same records. Empty receives: receives that found nothing to hand out (every remaining record leased to another worker), per run. 503s: receives or acks answered 503 (too many workers changing the session), retried after retry-after.',
  );
  lines.push('');

  const allRuns = rep.runs!;
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
      [
        'record',
        'records per append',
        'Logrelay units (WCU + RCU)',
        'minimum WCU (bytes / 1 KB)',
        'Logrelay / minimum',
        'one item per record',
        'one item per record / Logrelay',
      ],
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
      "Rejected conditional writes: DynamoDB charges them write units for the item's size but returns no ConsumedCapacity, so each is counted at the mean units of the session writes that succeeded in the same run.",
  );
  lines.push('');

  lines.push('Where the delivery units go: storage calls / capacity units per 1,000 records delivered and acked (medians):');
  lines.push('');
  const groups = [...new Set(c.flatMap((x) => Object.keys(x.breakdown)))];
  lines.push(
    table(
      ['record', 'workers', 'acks', ...groups, 'floor: BatchGetItem chunks'],
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
      [
        'record',
        'workers',
        'acks',
        'DynamoDB',
        'Lambda',
        'HTTP API',
        'Logrelay total',
        'DynamoDB, one item per record',
        'SQS requests (batches of 10)',
        'Logrelay / SQS',
        'mean Lambda ms: append / receive / ack',
      ],
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
  const p = rep.prices!;
  lines.push(
    `Prices (${p.region}, ${p.note}): DynamoDB on-demand $${p.dynamodb.usdPerMillionWriteRequestUnits} per million write request units and $${p.dynamodb.usdPerMillionReadRequestUnits} per million read request units (${p.dynamodb.source}); ` +
      `Lambda arm64 $${p.lambda.usdPerGbSecond} per GB-second and $${p.lambda.usdPerMillionRequests} per million requests at ${p.lambda.memoryGb * 1024} MB (${p.lambda.source}); ` +
      `HTTP API $${p.httpApi.usdPerMillionRequests.toFixed(2)} per million requests, first 300 million (${p.httpApi.source}); SQS standard $${p.sqs.usdPerMillionRequests} per million requests (${p.sqs.source}). ` +
      `${p.httpApiMeteringRule} ${p.sqsChunkRule} ${p.failedConditionalWriteRule} ` +
      "Lambda durations are the local runtime's per-request times (request arrival to response, including local SigV4 verification), billed per started millisecond; with more workers than cores they include queueing behind other requests on the one thread, which a Lambda instance would not see. " +
      'SQS counts requests only (no compute), one ReceiveMessage per 10 records (no empty receives), and ignores the free tier.',
  );
  lines.push('');

  lines.push('## Handler bundles and module initialization (cold-start proxy)');
  lines.push('');
  lines.push(
    table(
      [
        'function',
        'bundle KiB',
        'gzip KiB',
        'source map KiB',
        'require() ms, --enable-source-maps (as deployed)',
        'require() ms, no source maps',
      ],
      bundles.bundles.map((b) => [
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
    `Bundled like the stack (esbuild, minify, CommonJS, target node24, \`@aws-sdk/*\` external); median of ${bundles.runs} fresh \`node -e "require(bundle)"\` processes on Node.js ${bundles.nodeVersion} (Lambda runs Node.js 24), the external AWS SDK from the project's node_modules. ` +
      `For scale: requiring only @aws-sdk/client-dynamodb + lib-dynamodb takes ${fmt(bundles.sdkOnlyInitMs)} ms. The handlers build their DynamoDB client on the first request (lazy), which this does not time.`,
  );
  lines.push('');

  return lines;
}

// ---------------------------------------------------------------------------------------------
// Append scale: appends/s, latency and refusals with 1, 8 and 32 concurrent producers

interface ScaleLevel {
  storageLatencyMs: number;
  producers: number;
  logId: string;
  durationMs: number;
  /** From the first request to the last answer. */
  wallMs: number;
  requests: number;
  /** 201 answers. */
  appended: number;
  appendsPerSecond: number;
  /** Client-observed round trips of every request (refused ones too), ms. */
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  /** Answers other than 201, by "status code" (status 0: no answer). */
  refused: Record<string, number>;
  refusedTotal: number;
  /** GET /logs/{id} after the level. */
  log: { firstSeq: number; lastSeq: number };
  gapFree: boolean;
  /** What the gap check found wrong (empty when gapFree). */
  gapProblems: string[];
  storageCallsPerAppend: number;
  writeUnitsPerAppend: number;
  readUnitsPerAppend: number;
  /** Storage calls and units by operation, all functions together. */
  ops: Record<string, OpStat>;
  /** Conditional writes DynamoDB rejected, by command, table and condition. */
  rejectedConditionalWrites: Record<string, number>;
  /** Share of the level's time the thread running the gateway, handlers and store was busy. */
  serviceThreadBusy: number;
  /** The runtime's own request times (arrival to response), ms. */
  serverP50Ms: number;
  serverP99Ms: number;
  /** The log's index after the level: entries left in the head's tail, and index pages. */
  index: { tailEntries: number; pages: number };
}

interface AppendScaleReport {
  method: Record<string, unknown>;
  levels: ScaleLevel[];
}

/** One level: a fresh log, `producers` closed-loop producers for SCALE_LEVEL_MS, then the checks. */
async function scaleLevel(
  rt: LocalRuntime,
  clients: ClientThread,
  producers: number,
  durationMs: number,
  tag: string,
): Promise<ScaleLevel> {
  const logId = `scale-${rt.storageLatencyMs}ms-${producers}p-${tag}-${Date.now().toString(36)}`;
  current = newPhase('setup');
  await clients.run({ type: 'createLog', logId });
  const phase = newPhase('append-scale');
  current = phase;
  const elu0 = performance.eventLoopUtilization();
  const res = await clients.run<AppendScaleResult>({ type: 'appendScale', logId, producers, durationMs, recordBytes: SCALE_RECORD_BYTES });
  await tick();
  const busy = performance.eventLoopUtilization(elu0).utilization;
  current = undefined;
  const view = await clients.run<{ firstSeq: number; lastSeq: number }>({ type: 'describeLog', logId });
  const store = { doc: DynamoDBDocumentClient.from(rt.dynamo.client), tables: tablesOf(rt) };
  const index = await readIndex(store, await logKeyOf(store, logId));

  const ok = res.calls.filter((c) => c.status === 201);
  const refused: Record<string, number> = {};
  for (const c of res.calls)
    if (c.status !== 201) refused[`${c.status} ${c.code ?? ''}`.trim()] = (refused[`${c.status} ${c.code ?? ''}`.trim()] ?? 0) + 1;

  // Gap-freedom: the log's numbers are exactly the ones the 201s answered, 1..lastSeq, each once.
  const problems: string[] = [];
  const seqs: number[] = [];
  for (const c of ok) {
    if (c.lastSeq !== c.firstSeq) problems.push(`a one-record append answered ${c.firstSeq}..${c.lastSeq}`);
    for (let q = c.firstSeq!; q <= c.lastSeq!; q++) seqs.push(q);
  }
  seqs.sort((x, y) => x - y);
  let repeated = 0;
  for (let i = 1; i < seqs.length; i++) if (seqs[i] === seqs[i - 1]) repeated++;
  if (repeated) problems.push(`${repeated} sequence numbers answered more than once`);
  if (view.lastSeq !== ok.length) problems.push(`lastSeq ${view.lastSeq}, ${ok.length} appends answered 201`);
  if (view.lastSeq > 0 && view.firstSeq !== 1) problems.push(`firstSeq ${view.firstSeq}, not 1`);
  const distinct = new Set(seqs);
  let missing = 0;
  for (let q = 1; q <= view.lastSeq; q++) if (!distinct.has(q)) missing++;
  if (missing) problems.push(`${missing} of 1..${view.lastSeq} answered to no append`);
  const beyond = seqs.filter((q) => q < 1 || q > view.lastSeq).length;
  if (beyond) problems.push(`${beyond} answered sequence numbers outside 1..${view.lastSeq}`);

  const ops: Record<string, OpStat> = {};
  let calls = 0;
  let units: Units = { read: 0, write: 0, calls: 0 };
  for (const byOp of phase.byStore.values()) {
    units = addUnits(units, unitsOf(byOp));
    for (const [op, st] of byOp) {
      ops[op] ??= { calls: 0, units: 0 };
      const o = ops[op];
      o.calls += st.calls;
      o.units += st.units;
      calls += st.calls;
    }
  }
  const per = (x: number): number => x / Math.max(1, ok.length);
  const ms = res.calls.map((c) => c.ms);
  const server = phase.requests.filter((r) => r.route.endsWith('/records')).map((r) => r.ms);
  return {
    storageLatencyMs: rt.storageLatencyMs,
    producers,
    logId,
    durationMs,
    wallMs: res.wallMs,
    requests: res.calls.length,
    appended: ok.length,
    appendsPerSecond: ok.length / (res.wallMs / 1000),
    latencyP50Ms: percentile(ms, 50),
    latencyP99Ms: percentile(ms, 99),
    latencyMaxMs: ms.length ? Math.max(...ms) : NaN,
    refused,
    refusedTotal: res.calls.length - ok.length,
    log: { firstSeq: view.firstSeq, lastSeq: view.lastSeq },
    gapFree: problems.length === 0,
    gapProblems: problems,
    storageCallsPerAppend: per(calls),
    writeUnitsPerAppend: per(units.write),
    readUnitsPerAppend: per(units.read),
    ops,
    rejectedConditionalWrites: Object.fromEntries(phase.conditionalFailuresByWrite),
    serviceThreadBusy: busy,
    serverP50Ms: percentile(server, 50),
    serverP99Ms: percentile(server, 99),
    index: { tailEntries: index.tail.entries.length, pages: index.pages.length },
  };
}

async function runAppendScale(credDir: string): Promise<AppendScaleReport> {
  const levels: ScaleLevel[] = [];
  for (const latency of SCALE_LATENCIES_MS) {
    progress(`append-scale: starting the local runtime with ${latency} ms storage latency`);
    const rt = await startRuntime(credDir, latency);
    const clients = clientsFor(rt);
    try {
      progress(`append-scale, ${latency} ms: warm-up (8 producers, ${SCALE_WARMUP_MS} ms, discarded)`);
      await scaleLevel(rt, clients, 8, SCALE_WARMUP_MS, 'warmup');
      for (const producers of SCALE_PRODUCERS) {
        const l = await scaleLevel(rt, clients, producers, SCALE_LEVEL_MS, 'run');
        levels.push(l);
        progress(
          `append-scale, ${latency} ms × ${producers} producer${producers > 1 ? 's' : ''}: ${fmt(l.appendsPerSecond)} appends/s, p50 ${fmt(l.latencyP50Ms)} ms, p99 ${fmt(l.latencyP99Ms)} ms, ` +
            `refused ${l.refusedTotal}${l.refusedTotal ? ` (${refusedText(l.refused)})` : ''}, ${l.gapFree ? 'gap-free' : `NOT gap-free: ${l.gapProblems.join('; ')}`}, ` +
            `service thread ${fmt(l.serviceThreadBusy * 100, 2)}% busy`,
        );
      }
    } finally {
      current = undefined;
      await clients.close();
      await rt.close();
    }
  }
  return {
    method: {
      storageLatenciesMs: SCALE_LATENCIES_MS,
      producers: SCALE_PRODUCERS,
      levelMs: SCALE_LEVEL_MS,
      warmup: `one discarded level of 8 producers for ${SCALE_WARMUP_MS} ms on each runtime, on a log of its own`,
      recordBytes: SCALE_RECORD_BYTES,
      appends:
        "one record per POST /logs/{logId}/records, no idempotencyKey; each producer in a closed loop (its next request right after the answer to its last) until the level's time has passed, then the requests under way are answered; a refused append is counted, not retried (the producer waits its retry-after, at most to the end of the level, and goes on)",
      clients: 'a worker thread (signed HTTP over loopback); the runtime, its handlers and dynalite on the main thread',
      storageLatency:
        "local/latency.ts: SDK middleware on the embedded store's client, half of it before each attempt and half after its answer",
      appendsPerSecond: '201 answers / time from the first request to the last answer',
      latency: 'client-observed round trip of every request, refused ones included',
      gapFree:
        'GET /logs/{id} after the level: lastSeq = the number of 201 answers and firstSeq = 1, and the sequence numbers the 201s answered are distinct and cover 1..lastSeq',
    },
    levels,
  };
}

const refusedText = (r: Record<string, number>): string =>
  Object.entries(r)
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');

function appendScaleTargets(rep: AppendScaleReport): Target[] {
  const out: Target[] = [];
  const at = (ms: number, p: number): ScaleLevel | undefined => rep.levels.find((l) => l.storageLatencyMs === ms && l.producers === p);
  const one = (name: string, value: number, target: string, met: boolean): Target => ({
    name,
    value,
    target,
    met,
    spread: spread([value]),
  });
  const ratio = (ms: number): number => (at(ms, 32)?.appendsPerSecond ?? NaN) / (at(ms, 1)?.appendsPerSecond ?? NaN);
  if (at(5, 32) && at(5, 1))
    out.push(one('append-scale, 5 ms storage latency: appends/s at 32 producers / at 1 producer', ratio(5), '>= 3', ratio(5) >= 3));
  if (at(5, 32)) {
    const p99 = at(5, 32)!.latencyP99Ms;
    out.push(one('append-scale, 5 ms storage latency: append p99 ms at 32 producers', p99, '<= 250', p99 <= 250));
  }
  if (at(0, 32) && at(0, 1))
    out.push(one('append-scale, no storage latency: appends/s at 32 producers / at 1 producer', ratio(0), '>= 1', ratio(0) >= 1));
  for (const ms of SCALE_LATENCIES_MS) {
    const ls = rep.levels.filter((l) => l.storageLatencyMs === ms);
    if (!ls.length) continue;
    const refused = sum(ls.map((l) => l.refusedTotal));
    out.push(
      one(
        `append-scale, ${ms} ms storage latency: refused appends, all levels (${ls.map((l) => l.producers).join(', ')} producers)`,
        refused,
        '0',
        refused === 0,
      ),
    );
    const gaps = ls.filter((l) => !l.gapFree).length;
    out.push(one(`append-scale, ${ms} ms storage latency: levels whose log is not gap-free`, gaps, '0', gaps === 0));
  }
  return out;
}

function appendScaleMarkdown(rep: AppendScaleReport): string[] {
  const lines: string[] = [];
  lines.push('## Append scale: concurrent producers, one record per append');
  lines.push('');
  lines.push(
    table(
      [
        'storage latency',
        'producers',
        'appends/s',
        'vs 1 producer',
        'p50 ms',
        'p99 ms',
        'refused (status code: count)',
        'gap-free (firstSeq..lastSeq, 201s)',
        'storage calls / WCU per append',
        'rejected cond. writes',
        'index at end: tail entries / pages',
        'service thread busy',
      ],
      rep.levels.map((l) => {
        const one = rep.levels.find((x) => x.storageLatencyMs === l.storageLatencyMs && x.producers === 1);
        const rejected = sum(Object.values(l.rejectedConditionalWrites));
        return [
          `${l.storageLatencyMs} ms`,
          String(l.producers),
          fmt(l.appendsPerSecond),
          one ? `${fmt(l.appendsPerSecond / one.appendsPerSecond, 2)}×` : '—',
          fmt(l.latencyP50Ms),
          fmt(l.latencyP99Ms),
          l.refusedTotal ? refusedText(l.refused) : '0',
          `${l.gapFree ? 'yes' : `**no**: ${l.gapProblems.join('; ')}`} (${l.log.firstSeq}..${l.log.lastSeq}, ${l.appended})`,
          `${fmt(l.storageCallsPerAppend)} / ${fmt(l.writeUnitsPerAppend)}`,
          String(rejected),
          `${l.index.tailEntries} / ${l.index.pages}`,
          `${fmt(l.serviceThreadBusy * 100, 2)}%`,
        ];
      }),
    ),
  );
  lines.push('');
  lines.push(
    `The local runtime started anew for each storage latency (${SCALE_LATENCIES_MS.join(' and ')} ms added to every DynamoDB call, local/latency.ts), after a discarded level of 8 producers; each level on a fresh log: ` +
      `${rep.levels[0] ? fmt(rep.levels[0].durationMs / 1000) : '?'} s of single-record appends (${SCALE_RECORD_BYTES} B of \`data\`, no idempotencyKey) over signed HTTP from a worker thread, each producer in a closed loop; appends/s is 201 answers over the time from the first request to the last answer. ` +
      'Latency: client-observed, every request. Refused: any answer but 201, counted and not retried (the producer waits its retry-after and goes on). ' +
      'Gap-free: after the level, GET /logs/{id} has lastSeq = the 201 answers and firstSeq 1, and the answered sequence numbers are distinct and cover 1..lastSeq. ' +
      'Storage calls and write units per append: every storage call the handlers made during the level, per 201. Rejected cond. writes: conditional writes DynamoDB refused (e.g. a tail trim another appender did first). ' +
      `Index at end: entries left in the log's head (its tail; the service moves them to index pages ${TAIL_PAGE} at a time) and the index pages written, read from the store after the level. ` +
      'Service thread busy: event-loop utilization of the thread that runs the gateway, the handlers and the embedded store (the clients run on another); near 100% the level measures this one thread, not the protocol.',
  );
  lines.push('');
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Main

/** Starts the local runtime for the bench: request lines into the current phase, stdout kept for the report, storage counted. */
async function startRuntime(credDir: string, storageLatencyMs?: number): Promise<LocalRuntime> {
  const rt = await startLocalRuntime({
    port: 0,
    credentialsPath: join(credDir, 'credentials.json'),
    log: (line: string) => {
      const m = REQUEST_LINE.exec(line);
      if (m && current) current.requests.push({ route: `${m[1]} ${m[2]}`, status: Number(m[3]), ms: Number(m[4]) });
      else if (!m) process.stderr.write(`${line}\n`);
    },
    observeStorage,
    ...(storageLatencyMs === undefined ? {} : { storageLatencyMs }),
  });
  // Keep stdout for the report: anything else the handlers print goes to stderr; the EMF lines
  // still reach the local CloudWatch through the runtime's console hook. (Closing the runtime
  // puts back the console.log it found, so each runtime gets this anew.)
  const runtimeConsoleLog = console.log;
  console.log = (...args: unknown[]) => {
    const [first] = args;
    if (args.length === 1 && typeof first === 'string' && first.startsWith('{') && first.includes('"_aws"')) runtimeConsoleLog(...args);
    else process.stderr.write(`${format(...args)}\n`);
  };
  console.info = console.debug = (...args: unknown[]) => process.stderr.write(`${format(...args)}\n`);
  instrument(rt);
  return rt;
}

function tablesOf(rt: LocalRuntime): Bench['tables'] {
  const names: Record<string, string> = {};
  for (const fn of Object.values(rt.system.functions)) {
    for (const def of TABLES) if (!names[def.id] && fn.environment[def.envVar]) names[def.id] = fn.environment[def.envVar]!;
  }
  if (!names.Logs || !names.Records || !names.Sessions)
    throw new Error(`table names not found in the functions' environments: ${JSON.stringify(names)}`);
  return { logs: names.Logs!, records: names.Records!, sessions: names.Sessions! };
}

function clientsFor(rt: LocalRuntime): ClientThread {
  const principal = rt.principals[0]!;
  return new ClientThread({ url: rt.url, credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey } });
}

type DeliveryReport = Required<Pick<Report, 'method' | 'prices' | 'configs' | 'naive' | 'bundles' | 'runs'>>;

async function runDelivery(credDir: string): Promise<DeliveryReport> {
  progress(
    `delivery, ${QUICK ? 'quick' : 'full'} matrix: sizes ${SIZES.map(label).join(', ')}; workers ${WORKERS.join(', ')}; ${RUNS} run(s)`,
  );
  progress('bundling the handlers and timing their module initialization');
  const bundles = await measureBundles(BUNDLE_RUNS, progress);

  progress('starting the local runtime');
  const rt = await startRuntime(credDir);
  const clients = clientsFor(rt);
  const b: Bench = { rt, clients, doc: DynamoDBDocumentClient.from(rt.dynamo.client), tables: tablesOf(rt) };
  const storageLatencyMs = rt.storageLatencyMs;

  const runs: RunResult[] = [];
  const naiveRuns = new Map<number, NaiveResult[]>();
  const derived = new Map<string, Derived[]>();
  try {
    await createNaiveTable(rt.dynamo.client);
    progress('warm-up (discarded)');
    for (const size of SIZES) {
      let logKey = '';
      for (const ack of new Set(VARIANTS.map((v) => v.ack))) {
        ({ logKey } = await runOne(b, size, 4, ack, WARMUP_RECORDS[size]!, 'warmup'));
        await dropChunks(b, logKey);
      }
      await runNaive(rt.dynamo.client, {
        logKey: `${logKey}#warmup`,
        recordBytes: size,
        total: WARMUP_RECORDS[size]!,
        appendBatch: appendBatch(size),
        page: PAGE,
      });
    }
    for (let r = 1; r <= RUNS; r++) {
      for (const size of SIZES) {
        const total = RECORDS[size]!;
        let naive: NaiveResult | undefined;
        for (const { workers: w, ack } of VARIANTS) {
          const { run, logKey } = await runOne(b, size, w, ack, total, `r${r}`);
          await dropChunks(b, logKey);
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
  }

  const configs: ConfigSummary[] = [];
  for (const size of SIZES) {
    for (const { workers: w, ack } of VARIANTS) {
      const raw = runs.filter((r) => r.recordBytes === size && r.workers === w && r.ack === ack);
      configs.push(summarize(size, w, ack, RECORDS[size]!, derived.get(`${size}/${w}/${ack}`)!, raw));
    }
  }
  return {
    method: {
      runs: RUNS,
      warmup: `one discarded delivery per ack mode and one naive pass per record size (4 workers; ${SIZES.map((s) => `${WARMUP_RECORDS[s]} × ${label(s)}`).join(', ')}) before the measured runs`,
      recordsPerRun: RECORDS,
      recordSizes: "bytes of each record's serialized `data` (JSON), the bytes both designs store",
      workers: WORKERS,
      maxRecordsPerReceive: PAGE,
      maxInFlight: MAX_IN_FLIGHT,
      appendBatch: Object.fromEntries(SIZES.map((s) => [s, appendBatch(s)])),
      storageLatencyMs,
      clients: 'a worker thread (signed HTTP over loopback); the runtime, its handlers and dynalite on the main thread',
      floor: `per ${PAGE} records, one strongly consistent BatchGetItem of exactly the chunks that hold them (Records table; more only for a page of more than ${BATCH_GET_KEYS} chunks, sent together, or keys left unprocessed), the chunks located once before timing from the log's index (the head's tail and its index pages), at the same concurrency as the workers, on the same store, half right before and half right after the end-to-end run, in whole passes repeated for at least ${FLOOR_MIN_MS} ms in all (units: one pass)`,
      oneItemPerRecord:
        'per append request one UpdateItem on a counter, one item per record (BatchWriteItem); a strongly consistent Query per 100 records; one delete per record at ack; no per-record lease write (charitable)',
      theoreticalMinimum: 'write: record bytes / 1 KB (1 WCU per 1 KB); read: record bytes / 4 KB, strongly consistent (1 RCU per 4 KB)',
      capacity:
        "ConsumedCapacity (ReturnConsumedCapacity TOTAL) of every storage call the handlers made, as dynalite computes it with DynamoDB's rules",
    },
    prices: {
      ...PRICES,
      sqsChunkRule:
        "SQS bills each 64 KB chunk of a request's payload as one request: a SendMessageBatch or ReceiveMessage of 10 records is ceil(10 × record bytes / 64 KiB) requests (1 for 100 B and 1 KiB records, 2 for 10 KiB), a DeleteMessageBatch 1.",
      httpApiMeteringRule:
        'HTTP API requests are metered in 512 KB increments; a call is counted as ceil(max(request, response) payload bytes / 512 KiB) requests (a 100-record receive of 10 KiB records is 2 or 3).',
      failedConditionalWriteRule:
        "A conditional write DynamoDB rejects still consumes write units for the item's size (it reports none), counted here at the run's mean units per successful session write.",
    },
    configs,
    naive: SIZES.map((s) => ({ recordBytes: s, runs: naiveRuns.get(s) ?? [] })),
    bundles,
    runs,
  };
}

async function main(): Promise<void> {
  const render = argv.indexOf('--render');
  if (render >= 0) {
    // A report written with --json, as the markdown a run without it prints (for the README).
    const file = argv[render + 1];
    if (!file) throw new Error('--render takes the path of a report written with --json');
    process.stdout.write(`${markdown(JSON.parse(readFileSync(file, 'utf8')) as Report)}\n`);
    return;
  }
  const started = performance.now();
  const loadStart = loadavg();
  const credDir = mkdtempSync(join(tmpdir(), 'logrelay-bench-'));
  let delivery: DeliveryReport | undefined;
  let appendScale: AppendScaleReport | undefined;
  let idle: IdleReport | undefined;
  try {
    if (SECTIONS.includes('delivery')) delivery = await runDelivery(credDir);
    if (SECTIONS.includes('append-scale')) appendScale = await runAppendScale(credDir);
    if (SECTIONS.includes('idle')) idle = await runIdle({ quick: QUICK, progress });
  } finally {
    rmSync(credDir, { recursive: true, force: true });
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
    sections: SECTIONS,
    ...(delivery ?? {}),
    ...(appendScale ? { appendScale } : {}),
    ...(idle ? { idle } : {}),
    targets: [
      ...(delivery ? deliveryTargets(delivery.configs) : []),
      ...(appendScale ? appendScaleTargets(appendScale) : []),
      ...(idle ? idleTargets(idle).map((t) => ({ ...t, spread: spread([t.value]) })) : []),
    ],
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
