/**
 * `npm run bench -- --only idle`: what a worker costs while its session has nothing for it, per
 * month, and how soon a record appended meanwhile reaches it (issue 17).
 *
 * One local runtime, 5 ms added to every storage call (about a regional round trip, so that a
 * quick receive takes about as long in the function as in AWS). For each receive policy of the
 * client library, one worker (`session.consume`, in this process) on a session of its own:
 *
 * - cost: once the worker has settled (its first long poll is over), a window of idle time in
 *   which every receive request is counted with its time in the function (the part of it
 *   inside the window) and every storage call with its ConsumedCapacity; scaled to 30 days and
 *   priced as bench/prices.ts says (Lambda arm64 at the function's 512 MB, HTTP API requests,
 *   DynamoDB on-demand), beside an SQS long-polling consumer (one ReceiveMessage per 20 s);
 * - wake-up: records appended one at a time, each at a random moment once the worker is idle
 *   again, and the time from the append's answer to the handler's call.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import { startLocalRuntime, type LocalRuntime } from '../local/server';
import { LogrelayClient, type Session } from '../client/src/index';
import { PRICES } from './prices';
import { fmt, fmtUsd, percentile, sum } from './stats';

/** One receive policy of the client library, as a worker's options. */
interface Policy {
  name: string;
  waitSeconds: number;
  idlePollSeconds: number;
  /** Wake-up trials (each waits for the worker to be idle again). */
  trials: number;
}

export interface IdlePolicyResult {
  policy: Policy;
  windowMs: number;
  receives: number;
  /** Time receives spent in the function inside the window, ms. */
  functionMs: number;
  readUnits: number;
  writeUnits: number;
  /** Append answered to handler called, ms, one per trial. */
  wakeMs: number[];
  perMonth: {
    requests: number;
    gbSeconds: number;
    readUnits: number;
    writeUnits: number;
    usd: { lambdaDuration: number; lambdaRequests: number; httpApi: number; dynamodb: number; total: number };
  };
}

export interface IdleReport {
  method: Record<string, unknown>;
  storageLatencyMs: number;
  policies: IdlePolicyResult[];
  sqs: { waitSeconds: number; requestsPerMonth: number; usdPerMonth: number };
}

const MONTH_SECONDS = 30 * 86_400;
const STORAGE_LATENCY_MS = 5;
const SQS_WAIT_SECONDS = 20;

export async function runIdle(opts: { quick: boolean; progress: (line: string) => void }): Promise<IdleReport> {
  const { quick, progress } = opts;
  const windowMs = quick ? 5_000 : 20_000;
  const policies: Policy[] = [
    { name: 'long poll (before): waitSeconds 10, idlePollSeconds 0', waitSeconds: 10, idlePollSeconds: 0, trials: quick ? 2 : 6 },
    { name: 'idle polling (default): waitSeconds 10, idlePollSeconds 2', waitSeconds: 10, idlePollSeconds: 2, trials: quick ? 2 : 5 },
    ...(quick
      ? []
      : [
          { name: 'idle polling: idlePollSeconds 1', waitSeconds: 10, idlePollSeconds: 1, trials: 3 },
          { name: 'idle polling: idlePollSeconds 5', waitSeconds: 10, idlePollSeconds: 5, trials: 3 },
        ]),
  ];

  const requests: { end: number; ms: number }[] = [];
  const storage: { at: number; units: number; write: boolean }[] = [];
  const credDir = mkdtempSync(join(tmpdir(), 'logrelay-bench-idle-'));
  const restore = quietConsole();
  progress(`idle: starting the local runtime with ${STORAGE_LATENCY_MS} ms storage latency`);
  const rt: LocalRuntime = await startLocalRuntime({
    port: 0,
    credentialsPath: join(credDir, 'credentials.json'),
    storageLatencyMs: STORAGE_LATENCY_MS,
    log: (line) => {
      const m = /^POST \/sessions\/\{sessionId\}\/receive \d{3} (\d+)ms$/.exec(line);
      if (m) requests.push({ end: Date.now(), ms: Number(m[1]) });
    },
    observeStorage: (op: string, cc: ConsumedCapacity[] | undefined) => {
      // The store's read calls are named get…, index… and first…; every other call writes.
      for (const c of cc ?? []) storage.push({ at: Date.now(), units: c.CapacityUnits ?? 0, write: !/^(get|index|first)/.test(op) });
    },
  });
  const p = rt.principals[0]!;
  const client = new LogrelayClient({ endpoint: rt.url, credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey } });
  const results: IdlePolicyResult[] = [];
  try {
    for (const [i, policy] of policies.entries()) {
      const logId = `idle-${i}`;
      await client.createLog({ logId });
      const session: Session = await client.createSession(logId, { start: 'latest' });
      const handled: number[] = [];
      let onHandled: (() => void) | undefined;
      const stop = new AbortController();
      const worker = session.consume(
        () => {
          handled.push(Date.now());
          onHandled?.();
        },
        { waitSeconds: policy.waitSeconds, idlePollSeconds: policy.idlePollSeconds, signal: stop.signal, onError: () => {} },
      );
      // Settled: the first long poll is over, the worker is as idle as it gets.
      await sleep(policy.waitSeconds * 1000 + 1_000);
      const from = Date.now();
      await sleep(windowMs);
      const to = Date.now();
      const calls = storage.filter((s) => s.at >= from && s.at < to);
      const readUnits = sum(calls.filter((c) => !c.write).map((c) => c.units));
      const writeUnits = sum(calls.filter((c) => c.write).map((c) => c.units));

      const wakeMs: number[] = [];
      for (let t = 0; t < policy.trials; t++) {
        // Idle again: past the long poll the last record started, then a random moment.
        const settle = policy.idlePollSeconds > 0 ? policy.waitSeconds * 1000 + 500 : 0;
        await sleep(settle + Math.random() * Math.max(policy.idlePollSeconds * 1000, 2_000));
        const before = handled.length;
        const got = new Promise<void>((done) => (onHandled = () => handled.length > before && done()));
        await client.append(logId, [{ data: { trial: t } }]);
        const appendedAt = Date.now();
        await got;
        wakeMs.push(handled[before]! - appendedAt);
      }
      stop.abort();
      await worker;
      // Counted now that every receive under way at the window's end has answered (a request is
      // logged when it ends): the receives that started in the window, and every receive's
      // time in the function inside it.
      const inWindow = requests.filter((r) => r.end - r.ms >= from && r.end - r.ms < to);
      const functionMs = sum(
        requests.filter((r) => r.end > from && r.end - r.ms < to).map((r) => Math.min(r.end, to) - Math.max(r.end - r.ms, from)),
      );

      const scale = (MONTH_SECONDS * 1000) / (to - from);
      const monthRequests = inWindow.length * scale;
      const gbSeconds = (functionMs / 1000) * PRICES.lambda.memoryGb * scale;
      const usd = {
        lambdaDuration: gbSeconds * PRICES.lambda.usdPerGbSecond,
        lambdaRequests: (monthRequests * PRICES.lambda.usdPerMillionRequests) / 1e6,
        httpApi: (monthRequests * PRICES.httpApi.usdPerMillionRequests) / 1e6,
        dynamodb:
          (readUnits * scale * PRICES.dynamodb.usdPerMillionReadRequestUnits +
            writeUnits * scale * PRICES.dynamodb.usdPerMillionWriteRequestUnits) /
          1e6,
        total: 0,
      };
      usd.total = usd.lambdaDuration + usd.lambdaRequests + usd.httpApi + usd.dynamodb;
      const r: IdlePolicyResult = {
        policy,
        windowMs: to - from,
        receives: inWindow.length,
        functionMs,
        readUnits,
        writeUnits,
        wakeMs,
        perMonth: { requests: monthRequests, gbSeconds, readUnits: readUnits * scale, writeUnits: writeUnits * scale, usd },
      };
      results.push(r);
      progress(
        `idle, ${policy.name}: ${inWindow.length} receives in ${fmt((to - from) / 1000)} s, ${fmt(functionMs / 1000)} s in the function, ${fmt(readUnits)} read units; ` +
          `${fmtUsd(usd.total)} a month; wake-up ${wakeMs.map((w) => fmt(w)).join(', ')} ms`,
      );
    }
  } finally {
    await rt.close();
    restore();
    rmSync(credDir, { recursive: true, force: true });
  }
  const sqsRequests = MONTH_SECONDS / SQS_WAIT_SECONDS;
  return {
    method: {
      storageLatencyMs: STORAGE_LATENCY_MS,
      windowMs,
      worker:
        "the client library's session.consume in the bench's process, one worker on a session of its own with nothing appended, per policy; the window starts once its first long poll is over",
      functionTime:
        "each receive's time in the function as the local runtime logs it (gateway to answer), the part inside the window; priced at the function's memory as Lambda bills duration",
      storage: "ConsumedCapacity of every storage call in the window (all of them the idle worker's: nothing else runs)",
      month: '30 days: the window scaled',
      wakeUp:
        "a record appended at a random moment once the worker is idle again (past the long poll its last record started); the time from the append's answer to the handler's call",
      sqs: `an SQS consumer long-polling ${SQS_WAIT_SECONDS} s (ReceiveMessage WaitTimeSeconds ${SQS_WAIT_SECONDS}, the most SQS allows): one request per ${SQS_WAIT_SECONDS} s, nothing else billed; a message reaches it at once`,
    },
    storageLatencyMs: STORAGE_LATENCY_MS,
    policies: results,
    sqs: {
      waitSeconds: SQS_WAIT_SECONDS,
      requestsPerMonth: sqsRequests,
      usdPerMonth: (sqsRequests * PRICES.sqs.usdPerMillionRequests) / 1e6,
    },
  };
}

export interface IdleTarget {
  name: string;
  value: number;
  target: string;
  met: boolean;
}

export function idleTargets(rep: IdleReport): IdleTarget[] {
  const before = rep.policies.find((p) => p.policy.idlePollSeconds === 0);
  const now = rep.policies.find((p) => p.policy.idlePollSeconds === 2);
  if (!before || !now) return [];
  const ratio = before.perMonth.usd.total / now.perMonth.usd.total;
  const wake = Math.max(...now.wakeMs);
  return [
    { name: 'idle worker, per month: long poll (before) / idle polling (default)', value: ratio, target: '>= 4', met: ratio >= 4 },
    { name: 'idle worker, default: slowest wake-up, ms (idlePollSeconds 2)', value: wake, target: '<= 3000', met: wake <= 3000 },
  ];
}

export function idleMarkdown(rep: IdleReport): string[] {
  const lines: string[] = [];
  lines.push('## What an idle worker costs, per month');
  lines.push('');
  const head = [
    'receive policy',
    'receives / month',
    'in the function',
    'read units / month',
    'Lambda',
    'HTTP API',
    'DynamoDB',
    'total / month',
    'wake-up p50 / max',
  ];
  const rows = rep.policies.map((r) => [
    r.policy.name,
    fmt(r.perMonth.requests),
    `${fmt((r.functionMs / r.windowMs) * 100)}% (${fmt(r.perMonth.gbSeconds)} GB-s)`,
    fmt(r.perMonth.readUnits),
    fmtUsd(r.perMonth.usd.lambdaDuration + r.perMonth.usd.lambdaRequests),
    fmtUsd(r.perMonth.usd.httpApi),
    fmtUsd(r.perMonth.usd.dynamodb),
    `**${fmtUsd(r.perMonth.usd.total)}**`,
    r.wakeMs.length ? `${fmt(percentile(r.wakeMs, 50))} / ${fmt(Math.max(...r.wakeMs))} ms` : '—',
  ]);
  rows.push([
    `SQS long polling (${rep.sqs.waitSeconds} s), for comparison`,
    fmt(rep.sqs.requestsPerMonth),
    '—',
    '—',
    '—',
    '—',
    '—',
    `**${fmtUsd(rep.sqs.usdPerMonth)}**`,
    'at once',
  ]);
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`));
  lines.push('');
  lines.push(
    `One worker (the client library's \`consume\`) per policy on a session with nothing in it, on the local runtime with ${rep.storageLatencyMs} ms added to every storage call; ` +
      `${fmt((rep.policies[0]?.windowMs ?? 0) / 1000)} s of idle time each, once its first long poll was over, scaled to 30 days. ` +
      '"In the function": the share of the time a receive was running in the function, i.e. holding a Lambda environment, priced at 512 MB arm64. ' +
      "Wake-up: a record appended at a random moment while the worker idles, from the append's answer to the handler's call. " +
      `Prices: bench/prices.ts (${PRICES.note}).`,
  );
  lines.push('');
  return lines;
}

/** Handler output off stdout (the report goes there): EMF lines still reach the local CloudWatch. */
function quietConsole(): () => void {
  const info = console.info;
  const debug = console.debug;
  console.info = console.debug = (...args: unknown[]) => process.stderr.write(`${format(...args)}\n`);
  return () => {
    console.info = info;
    console.debug = debug;
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
