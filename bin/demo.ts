#!/usr/bin/env node
/**
 * `npm run demo`: a watchable end-to-end run on the local runtime. It starts its own runtime
 * (free port, in memory), creates a log, appends records over signed HTTP, and runs several
 * stateless workers on one session; one crashes mid-batch. It shows the redelivery of what
 * the crashed worker held and ends with a tally. Exit code 0 only if every appended record
 * was acked, nothing is left in flight, and the crashed worker's records were redelivered.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime } from '../local/server';
import { SignedHttp } from '../local/client';

process.removeAllListeners('warning');

const RECORDS = 2000;
const WORKERS = 4;
const ACK_TIMEOUT_SECONDS = 3;
const tty = process.stdout.isTTY;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function table(rows: [string, string | number][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return [`| ${'what'.padEnd(w)} | value |`, `|${'-'.repeat(w + 2)}|-------|`, ...rows.map(([k, v]) => `| ${k.padEnd(w)} | ${v} |`)].join('\n');
}

async function main(): Promise<number> {
  console.log('Logrelay demo: stateless workers on one receiver session\n');
  const rt = await startLocalRuntime({
    port: 0,
    credentialsPath: join(mkdtempSync(join(tmpdir(), 'logrelay-demo-')), 'credentials.json'),
    log: () => {},
  });
  try {
    const admin = rt.principals[0]!;
    const api = new SignedHttp(rt.url, admin);
    const must = async (what: string, p: Promise<{ status: number; body: any }>, ok = [200, 201, 204]) => {
      const r = await p;
      if (!ok.includes(r.status)) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    console.log(`local runtime on ${rt.url}`);
    const logId = `demo-${Date.now().toString(36)}`;
    await must('create log', api.call('POST', '/logs', { logId }));
    for (let i = 0; i < RECORDS; i += 500) {
      const records = Array.from({ length: 500 }, (_, k) => ({ data: { order: i + k + 1, amount: ((i + k) * 7) % 100 }, key: `customer-${(i + k) % 13}` }));
      const r = await must('append', api.call('POST', `/logs/${logId}/records`, { records, idempotencyKey: `batch-${i}` }));
      console.log(`appended records ${r.firstSeq}..${r.lastSeq}`);
    }
    const session = await must('open session', api.call('POST', `/logs/${logId}/sessions`, { start: 'oldest', ackTimeoutSeconds: ACK_TIMEOUT_SECONDS }));
    const sid: string = session.sessionId;
    console.log(`session ${sid} (ack timeout ${ACK_TIMEOUT_SECONDS} s); ${WORKERS} workers start, each knowing only the session id\n`);

    const acked = new Map<number, number>();
    const perWorker = new Array<number>(WORKERS).fill(0);
    const status = new Array<string>(WORKERS).fill('running');
    const orphaned = new Set<number>();
    let redelivered = 0;
    let redeliveredOrphans = 0;
    let done = false;

    const worker = async (w: number) => {
      let batches = 0;
      while (!done) {
        const r = await api.call('POST', `/sessions/${sid}/receive`, { maxRecords: 50, waitSeconds: 1 });
        if (r.status >= 500 || r.status === 429) {
          await sleep(50);
          continue;
        }
        if (r.status !== 200) throw new Error(`receive: ${r.status} ${JSON.stringify(r.body)}`);
        const recs: { seq: number; deliveryCount: number }[] = r.body.records;
        if (!recs.length) continue;
        for (const rec of recs) {
          if (rec.deliveryCount > 1) {
            redelivered++;
            if (orphaned.has(rec.seq)) redeliveredOrphans++;
          }
        }
        batches++;
        if (w === WORKERS - 1 && batches === 3) {
          // This host dies mid-batch: it acks the first half and never comes back.
          const half = recs.slice(0, recs.length / 2);
          await api.call('POST', `/sessions/${sid}/ack`, { seqs: half.map((x) => x.seq) });
          for (const x of half) acked.set(x.seq, (acked.get(x.seq) ?? 0) + 1);
          perWorker[w] += half.length;
          for (const x of recs.slice(recs.length / 2)) orphaned.add(x.seq);
          status[w] = `crashed holding ${recs.length - half.length}`;
          return;
        }
        await sleep(5 + Math.random() * 20); // "process" the batch
        const a = await api.call('POST', `/sessions/${sid}/ack`, { ranges: recs.map((x) => [x.seq, x.seq]) });
        if (a.status !== 200) throw new Error(`ack: ${a.status} ${JSON.stringify(a.body)}`);
        for (const x of recs) acked.set(x.seq, (acked.get(x.seq) ?? 0) + 1);
        perWorker[w] += recs.length;
      }
      status[w] = 'finished';
    };

    const startedMs = Date.now();
    const progress = () => {
      const line = `acked ${acked.size}/${RECORDS}  redelivered ${redelivered}  ${perWorker.map((n, w) => `w${w + 1}: ${n} (${status[w]})`).join('  ')}`;
      if (tty) process.stdout.write(`\r${line.padEnd(130)}`);
      else console.log(line);
    };
    const ticker = setInterval(progress, tty ? 200 : 1000);
    const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
    while (acked.size < RECORDS && Date.now() - startedMs < 60_000) await sleep(100);
    done = true;
    await Promise.all(workers);
    clearInterval(ticker);
    progress();
    if (tty) process.stdout.write('\n');

    const view = await must('describe session', api.call('GET', `/sessions/${sid}`));
    const log = await must('describe log', api.call('GET', `/logs/${logId}`));
    const duplicates = [...acked.values()].filter((n) => n > 1).length;
    const ok =
      log.lastSeq === RECORDS &&
      acked.size === RECORDS &&
      view.inFlight === 0 &&
      view.ackFloor === RECORDS &&
      orphaned.size > 0 &&
      redeliveredOrphans === orphaned.size;
    console.log(
      '\n' +
        table([
          ['records appended (log lastSeq)', log.lastSeq],
          ['records acked (distinct)', acked.size],
          ['acked more than once', duplicates],
          ['held by the crashed worker', orphaned.size],
          ['of those, redelivered to others', redeliveredOrphans],
          ['deliveries with deliveryCount > 1', redelivered],
          ['session inFlight / ackFloor / lag', `${view.inFlight} / ${view.ackFloor} / ${view.lag}`],
          ['dead-lettered', view.deadLettered],
          ['elapsed', `${((Date.now() - startedMs) / 1000).toFixed(1)} s`],
        ]),
    );
    console.log(ok ? '\nOK: appended = acked, nothing in flight, the crashed worker\'s records were redelivered.' : '\nFAILED: the tally does not add up (see above).');
    return ok ? 0 : 1;
  } finally {
    await rt.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`demo failed: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
