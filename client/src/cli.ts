/**
 * The `logrelay` CLI: logs, appends, sessions, tail, configs and bakes from the terminal.
 * Human output by default, `--json` for scripts; exit codes in `logrelay --help`.
 */
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
export type { Command } from 'commander';
import { type AppendManyResult, LogrelayClient, type LogrelayClientOptions } from './client';
import { LogrelayError } from './errors';
import { resolveConnection, UsageError, type ConnectionFlags } from './cli-config';
import { CredentialsFileError } from './local';
import {
  LiveBlock,
  ProgressBar,
  bakeFingerprint,
  count,
  renderBake,
  renderBakeList,
  renderConfigs,
  renderDiff,
  renderSession,
  type Writable,
} from './cli-render';
import { sleep } from './retry';
import type { Session } from './session';
import type { AppendRecord, Bake, BakeSummary, DeliveredRecord, SessionStart } from './types';

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Installs a Ctrl-C handler; returns a function that removes it. */
  onInterrupt(handler: () => void): () => void;
  /** Overrides for the client (tests). */
  client?: Partial<LogrelayClientOptions>;
}

interface GlobalOptions extends ConnectionFlags {
  json?: boolean;
  maxAttempts?: number;
  verbose?: boolean;
}

/** Exit codes (also in --help). */
export const EXIT = { ok: 0, failed: 1, usage: 2, bakeNotSucceeded: 3, phaseRejected: 4, reverted: 5, interrupted: 130 } as const;

/**
 * The exit code of `bake status` and `bake start --watch` for a bake as last read, so a pipeline
 * can stop on it. Most serious first: 5 when anything was reverted after promotion (bake status
 * REVERTED or a phase REVERTED: a regression reached all traffic); 3 when the bake ended FAILED
 * or ABORTED (it did not run to its end; a phase it was in shows REJECTED for that reason); 4
 * when a phase was REJECTED (the change was refused and not promoted); else 0. For a bake still
 * running, what it decided so far.
 */
export function bakeExitCode(b: Bake): number {
  if (b.status === 'REVERTED' || b.phases.some((p) => p.verdict === 'REVERTED')) return EXIT.reverted;
  if (b.status === 'FAILED' || b.status === 'ABORTED') return EXIT.bakeNotSucceeded;
  if (b.phases.some((p) => p.verdict === 'REJECTED')) return EXIT.phaseRejected;
  return EXIT.ok;
}

const VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(resolve(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

const HELP_FOOTER = `
Endpoint and credentials (first that applies):
  1. --access-key-id KEY --secret-access-key SECRET [--session-token T]
  2. --profile NAME: that AWS shared-config profile, through the AWS provider chain
  3. --principal NAME (or LOGRELAY_PRINCIPAL): that principal of the local credentials file
  4. AWS_ACCESS_KEY_ID or AWS_PROFILE set: the AWS provider chain
  5. the local runtime's credentials file, when the endpoint is unset or on this machine:
     --credentials-file, LOGRELAY_CREDENTIALS_FILE, or .logrelay/credentials.json in this
     folder or a parent. Default principal: the first with "admin": true (else the first), the
     same for every command, so a log one command creates is visible to the next.
  6. otherwise the AWS provider chain (SSO, web identity, container and instance roles)
  Endpoint: --endpoint, else LOGRELAY_ENDPOINT, else http://127.0.0.1:$PORT (8787) with local
  credentials. Region: --region, else the one in an execute-api host name, else AWS_REGION,
  else us-east-1.

Requests are retried with jittered exponential backoff on 429/503 (honouring retry-after),
connection failures and, where repeating is harmless, 5xx and lost responses. See the client's
README for exactly what is retried.

Exit codes: 0 success; 1 a request failed (the message says why; running again may work); 2 bad
usage, configuration or input (a file or line that is not JSON, a record without its --key-field:
fix it and run again; the message says what was done before it); for \`bake status\` and \`bake start --watch\`, by the bake as last read: 3 it
ended FAILED or ABORTED, 4 a phase was REJECTED (that change was not promoted), 5 a promoted
change was REVERTED by the watch after promotion (5 before 3 before 4); 130 interrupted twice
with Ctrl-C.

Examples:
  npx logrelay logs create orders
  seq 1 1000 | sed 's/.*/{"n":&}/' | npx logrelay append orders
  npx logrelay tail orders --limit 10
  npx logrelay bake start delivery:2 --weight 10 --watch`;

/** The line a command's help has instead of the global options (listed in `logrelay --help`). */
const GLOBAL_OPTIONS_POINTER = 'Global options (endpoint, credentials, --json, --verbose, --max-attempts): see logrelay --help';

function intArg(name: string, min: number, max: number) {
  return (value: string): number => {
    const v = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    }
    return v;
  };
}

function parseStart(value: string): SessionStart {
  if (value === 'oldest' || value === 'latest') return value;
  if (/^\d+$/.test(value)) return { afterSeq: Number(value) };
  throw new InvalidArgumentError('must be oldest, latest, or a sequence number N to start after N.');
}

/** `--since`: an ISO 8601 time, or a span back from `nowMs` (90m, 24h, 7d), as epoch ms. */
export function parseSince(value: string, nowMs: number): number {
  const span = /^([1-9][0-9]{0,5})(m|h|d)$/.exec(value);
  if (span) return nowMs - Number(span[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[span[2] as 'm' | 'h' | 'd'];
  const t = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(t))
    throw new UsageError(`--since '${value}' is neither an ISO 8601 time (2026-11-24T00:00:00Z) nor a span back from now (90m, 24h, 7d).`);
  return t;
}

function parseChange(value: string): { profile: string; version: string } {
  const m = /^([A-Za-z0-9_-]+):([1-9][0-9]*)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`'${value}' is not PROFILE:VERSION (e.g. delivery:2).`);
  return { profile: m[1]!, version: m[2]! };
}

/** An error the CLI reports after some of the work was done (the message says how much). */
class PartialFailure extends Error {
  constructor(
    message: string,
    readonly cause: unknown,
  ) {
    super(message);
    this.name = 'PartialFailure';
  }
}

async function readJsonFile(path: string, io: CliIo, what: string): Promise<unknown> {
  let text: string;
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    const abs = resolve(io.cwd, path);
    if (!existsSync(abs)) throw new UsageError(`There is no file ${path}.`);
    text = readFileSync(abs, 'utf8');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${what} ${path === '-' ? 'on stdin' : path} is not JSON (${(e as Error).message}).`);
  }
}

async function countLines(path: string): Promise<number> {
  let lines = 0;
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) if (line.trim()) lines++;
  return lines;
}

export function buildProgram(io: CliIo): Command {
  const out = (s: string) => io.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
  const err = (s: string) => io.stderr.write(s.endsWith('\n') ? s : `${s}\n`);
  let exitCode: number = EXIT.ok;

  const program = new Command('logrelay')
    .description('Logs, appends, sessions, tail, configs and bakes of a Logrelay service, from the terminal.')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .helpCommand('help [command]', 'show help for a command')
    .option('--endpoint <url>', 'the API base URL (env LOGRELAY_ENDPOINT; default http://127.0.0.1:8787 with local credentials)')
    .option('--region <region>', 'region to sign for (default: from the endpoint, AWS_REGION, or us-east-1)')
    .option('--profile <name>', 'AWS shared-config profile (AWS provider chain)')
    .option('--access-key-id <key>', 'explicit AWS access key id (with --secret-access-key)')
    .option('--secret-access-key <secret>', 'explicit AWS secret access key')
    .option('--session-token <token>', 'session token of temporary credentials')
    .option(
      '--credentials-file <path>',
      'the local runtime credentials file (env LOGRELAY_CREDENTIALS_FILE; default .logrelay/credentials.json here or above)',
    )
    .option('--principal <name>', 'principal of the local credentials file to act as (env LOGRELAY_PRINCIPAL; default the first admin)')
    .option(
      '--max-attempts <n>',
      'attempts per request, retries included, 1..20 (default 6; 1 turns retries off)',
      intArg('--max-attempts', 1, 20),
    )
    .option('--json', 'print JSON (one document, or one per line for streams) instead of text')
    .option('-v, --verbose', 'say where credentials came from and report retries on stderr')
    .addHelpText('after', HELP_FOOTER)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>();
  const clientFor = (cmd: Command): LogrelayClient => {
    const g = globals(cmd);
    const conn = resolveConnection(g, io.env, io.cwd);
    if (g.verbose) err(`logrelay: ${conn.endpoint} as ${conn.source}`);
    return new LogrelayClient({
      endpoint: conn.endpoint,
      credentials: conn.credentials,
      ...(conn.region ? { region: conn.region } : {}),
      ...(g.maxAttempts !== undefined ? { retry: { maxAttempts: g.maxAttempts } } : {}),
      ...(g.verbose
        ? {
            onRetry: (r) =>
              err(`logrelay: ${r.request} failed (${r.error.code}: ${r.error.message}); retry ${r.attempt} in ${r.delayMs} ms`),
          }
        : {}),
      ...io.client,
    });
  };
  const print = (cmd: Command, json: unknown, human: string | string[]) => {
    if (globals(cmd).json) out(JSON.stringify(json, null, 2));
    else out(Array.isArray(human) ? human.join('\n') : human);
  };

  // ---- logs ------------------------------------------------------------------------------------
  const logs = program.command('logs').description('create and describe logs');
  logs
    .command('create')
    .description('create a log')
    .argument('[logId]', 'the log id, [A-Za-z0-9._-]{1,128} (default: one the service picks)')
    .option('--retention-hours <hours>', 'keep records this long, 1..8760 (default 168)', intArg('--retention-hours', 1, 8760))
    .action(async (logId: string | undefined, o: { retentionHours?: number }, cmd: Command) => {
      const log = await clientFor(cmd).createLog({
        ...(logId ? { logId } : {}),
        ...(o.retentionHours ? { retentionHours: o.retentionHours } : {}),
      });
      print(cmd, log, `created log ${log.logId} (retention ${log.retentionHours} h)`);
    });
  logs
    .command('describe')
    .description("show a log's first and last sequence numbers and retention")
    .argument('<logId>', 'the log id')
    .action(async (logId: string, _o: unknown, cmd: Command) => {
      const log = await clientFor(cmd).describeLog(logId);
      const retained = log.lastSeq >= log.firstSeq ? log.lastSeq - log.firstSeq + 1 : 0;
      // Empty (never appended to, or retention removed all): firstSeq is lastSeq + 1, the next seq.
      const records =
        retained === 0
          ? `none retained (the next append gets seq ${log.lastSeq + 1})`
          : `${retained.toLocaleString('en-US')} retained (seq ${retained === 1 ? log.firstSeq : `${log.firstSeq}..${log.lastSeq}`})`;
      print(cmd, log, [
        `log        ${log.logId}`,
        `records    ${records}`,
        `retention  ${log.retentionHours} h`,
        `created    ${log.createdAt}`,
      ]);
    });

  // ---- append ----------------------------------------------------------------------------------
  program
    .command('append')
    .description('append JSON lines (one record per line, its data) from a file or stdin, in batches')
    .argument('<logId>', 'the log to append to')
    .argument('[file]', 'a file of JSON lines; omit or "-" for stdin')
    .option(
      '--key-field <name>',
      "use this field of each line's object (a string or number) as the record key; a line without it is refused",
    )
    .option('--allow-missing-key', 'with --key-field: append a line without the field as a record without a key, instead of refusing it')
    .option('--batch-size <n>', 'records per request, 1..500', intArg('--batch-size', 1, 500), 500)
    .option('--no-progress', 'no progress bar (it is shown only when stderr is a terminal)')
    .addHelpText(
      'after',
      '\nBlank lines are skipped. Each request carries its own idempotency key, so retries never append twice.\n' +
        'A bad line (not JSON, or without the --key-field) stops the append wherever it is: the lines before it\n' +
        'are appended, none from it on, the message names the line, and it exits 2 (fix the line and append\n' +
        'from it on). A failed request exits 1, and the message says how many records were appended before it.',
    )
    .action(
      async (
        logId: string,
        file: string | undefined,
        o: { keyField?: string; allowMissingKey?: boolean; batchSize: number; progress: boolean },
        cmd: Command,
      ) => {
        const client = clientFor(cmd);
        const g = globals(cmd);
        const fromStdin = !file || file === '-';
        const path = fromStdin ? undefined : resolve(io.cwd, file);
        if (path && (!existsSync(path) || !statSync(path).isFile())) throw new UsageError(`There is no file ${file}.`);
        const source = fromStdin ? 'stdin' : file;
        const showBar = o.progress && !g.json && io.stderr.isTTY === true;
        const bar = showBar ? new ProgressBar(io.stderr, `appending to ${logId}`, path ? await countLines(path) : undefined) : undefined;
        if (o.allowMissingKey && o.keyField === undefined) throw new UsageError('--allow-missing-key goes with --key-field NAME.');
        let appended = 0;
        let firstAppended: number | undefined;
        let lastSeq = 0;
        let lineNo = 0;
        // A bad line ends the input there (the generator returns, it does not throw), so appendMany
        // sends the lines before it and the report below is the same wherever the line was: in the
        // first batch, or after batches were sent. (Throwing would lose the batch being filled.)
        let badLine: string | undefined;
        async function* records(): AsyncGenerator<AppendRecord> {
          const input = path ? createReadStream(path) : io.stdin;
          for await (const line of createInterface({ input, crlfDelay: Infinity })) {
            lineNo++;
            if (!line.trim()) continue;
            let data: unknown;
            try {
              data = JSON.parse(line);
            } catch (e) {
              badLine = `line ${lineNo} of ${source} is not JSON (${(e as Error).message})`;
              return;
            }
            const record: AppendRecord = { data };
            if (o.keyField !== undefined) {
              const isObject = data !== null && typeof data === 'object' && !Array.isArray(data);
              const key = isObject ? (data as Record<string, unknown>)[o.keyField] : undefined;
              if (typeof key === 'string' || typeof key === 'number') record.key = String(key);
              else if (key !== undefined && key !== null) {
                badLine = `line ${lineNo} of ${source} has '${o.keyField}' (--key-field ${o.keyField}) as ${Array.isArray(key) ? 'an array' : `a ${typeof key}`}; a key is a string or a number`;
                return;
              } else if (!o.allowMissingKey) {
                badLine = `line ${lineNo} of ${source} has no field '${o.keyField}' (--key-field ${o.keyField})${isObject ? '' : ': it is not a JSON object'}; add it, or pass --allow-missing-key to append such lines without a key`;
                return;
              }
            }
            yield record;
          }
        }
        let result: AppendManyResult;
        try {
          result = await client.appendMany(logId, records(), {
            maxRecordsPerRequest: o.batchSize,
            onProgress: (p) => {
              appended = p.records;
              firstAppended ??= p.lastSeq - p.records + 1;
              lastSeq = p.lastSeq;
              bar?.update(p.records);
            },
          });
        } catch (e) {
          bar?.clear();
          if (appended === 0) throw e;
          throw new PartialFailure(
            `${count(appended, 'record')} ${appended === 1 ? 'was' : 'were'} appended (up to seq ${lastSeq}), then: ${(e as Error).message}`,
            e,
          );
        }
        bar?.done(result.records);
        if (badLine !== undefined) {
          const stopLine = lineNo;
          throw new UsageError(
            `${badLine}. ` +
              (appended === 0
                ? 'Nothing was appended.'
                : `The ${count(appended, 'record')} before it ${appended === 1 ? 'was' : 'were'} appended (seq ${firstAppended}..${lastSeq}); nothing from line ${stopLine} on. ` +
                  (path
                    ? `Fix it and append from it on: tail -n +${stopLine} ${file} | logrelay append ${logId}`
                    : 'Fix it and append from it on.')),
          );
        }
        const firstSeq = result.appends[0]?.firstSeq;
        const last = result.appends[result.appends.length - 1]?.lastSeq;
        print(
          cmd,
          { logId, records: result.records, requests: result.requests, firstSeq: firstSeq ?? null, lastSeq: last ?? null },
          result.records === 0
            ? `no records in ${source}; nothing appended`
            : `appended ${count(result.records, 'record')} to ${logId} (seq ${firstSeq}..${last}) in ${count(result.requests, 'request')}`,
        );
      },
    );

  // ---- sessions --------------------------------------------------------------------------------
  const sessions = program.command('sessions').description('open, inspect and end receiver sessions');
  sessions
    .command('create')
    .description('open a receiver session on a log')
    .argument('<logId>', 'the log')
    .option('--start <where>', 'oldest, latest, or N to start after sequence number N (default oldest)', parseStart)
    .option(
      '--ack-timeout <seconds>',
      'lease length of a delivered record, 1..43200 (default: the limits profile, 30)',
      intArg('--ack-timeout', 1, 43200),
    )
    .option('--max-in-flight <n>', 'records leased and not yet acked at most, 1..10000 (default 1000)', intArg('--max-in-flight', 1, 10000))
    .option('--max-deliveries <n>', 'deliveries before a record is dead-lettered, 1..100 (default 5)', intArg('--max-deliveries', 1, 100))
    .option(
      '--idle-timeout <seconds>',
      'the session ends after this long unused, 60..604800 (default 86400)',
      intArg('--idle-timeout', 60, 604800),
    )
    .action(
      async (
        logId: string,
        o: { start?: SessionStart; ackTimeout?: number; maxInFlight?: number; maxDeliveries?: number; idleTimeout?: number },
        cmd: Command,
      ) => {
        const s = await clientFor(cmd).createSession(logId, {
          ...(o.start !== undefined ? { start: o.start } : {}),
          ...(o.ackTimeout !== undefined ? { ackTimeoutSeconds: o.ackTimeout } : {}),
          ...(o.maxInFlight !== undefined ? { maxInFlight: o.maxInFlight } : {}),
          ...(o.maxDeliveries !== undefined ? { maxDeliveries: o.maxDeliveries } : {}),
          ...(o.idleTimeout !== undefined ? { idleTimeoutSeconds: o.idleTimeout } : {}),
        });
        const i = s.info!;
        print(cmd, i, [
          `session      ${i.sessionId}`,
          `log          ${i.logId}`,
          `settings     ack timeout ${i.ackTimeoutSeconds} s, max in flight ${i.maxInFlight}, max deliveries ${i.maxDeliveries}, idle timeout ${i.idleTimeoutSeconds} s`,
          `expires      ${i.expiresAt} (unless used before)`,
        ]);
      },
    );
  sessions
    .command('describe')
    .description("show a session's cursor, ack floor, in-flight records, lag and dead letters")
    .argument('<sessionId>', 'the session')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const s = await clientFor(cmd).describeSession(id);
      print(cmd, s, renderSession(s));
    });
  sessions
    .command('dead-letters')
    .description("list a session's dead-lettered records as ranges with their delivery counts")
    .argument('<sessionId>', 'the session')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ranges = await clientFor(cmd).deadLetters(id);
      print(
        cmd,
        { ranges },
        ranges.length
          ? ranges.map(([a, b, c]) => `${a === b ? a : `${a}..${b}`}  after ${count(c, 'delivery', 'deliveries')}`)
          : 'no dead letters',
      );
    });
  sessions
    .command('delete')
    .description('end a session')
    .argument('<sessionId>', 'the session')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await clientFor(cmd).deleteSession(id);
      print(cmd, { sessionId: id, deleted: true }, `deleted session ${id}`);
    });

  // ---- tail ------------------------------------------------------------------------------------
  program
    .command('tail')
    .description("print a log's records: receive, print, ack")
    .argument('[logId]', 'the log (a session of its own is opened, and deleted at the end)')
    .option('--session <sessionId>', 'read this existing session instead; its records are acked, so its other workers will not get them')
    .option('--start <where>', 'where the new session starts: oldest, latest, or N to start after seq N (default oldest)', parseStart)
    .option('-f, --follow', 'keep waiting for new records until Ctrl-C')
    .option('-n, --limit <n>', 'stop after n records', intArg('--limit', 1, Number.MAX_SAFE_INTEGER))
    .option('--data-only', "print only each record's data, as JSON lines (what `append` reads)")
    .option(
      '--ack-timeout <seconds>',
      'ack timeout of the session it opens (default: the limits profile, 30)',
      intArg('--ack-timeout', 1, 43200),
    )
    .option('--keep-session', 'do not delete the session it opened (its id is printed on stderr)')
    .addHelpText(
      'after',
      '\nOutput: "SEQ [key=KEY] DATA" per line; --json prints {"seq","key","deliveryCount","data"} per line.\nCtrl-C stops after the records being printed are acked; press it twice to quit at once.',
    )
    .action(
      async (
        logId: string | undefined,
        o: {
          session?: string;
          start?: SessionStart;
          follow?: boolean;
          limit?: number;
          dataOnly?: boolean;
          ackTimeout?: number;
          keepSession?: boolean;
        },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        if (!logId && !o.session) throw new UsageError('tail needs a log id, or --session with an existing session id.');
        if (logId && o.session) throw new UsageError('Give a log id or --session, not both.');
        const client = clientFor(cmd);
        let session: Session;
        const own = !o.session;
        if (o.session) session = client.session(o.session);
        else {
          session = await client.createSession(logId!, {
            start: o.start ?? 'oldest',
            idleTimeoutSeconds: 600,
            ...(o.ackTimeout !== undefined ? { ackTimeoutSeconds: o.ackTimeout } : {}),
          });
          if (o.keepSession || g.verbose) err(`logrelay: reading through session ${session.id}`);
        }
        const stop = new AbortController();
        let interrupts = 0;
        const uninstall = io.onInterrupt(() => {
          interrupts++;
          if (interrupts === 1) {
            if (!g.json) err('logrelay: stopping (Ctrl-C again to quit at once)');
            stop.abort();
          } else {
            process.exit(EXIT.interrupted);
          }
        });
        let printed = 0;
        let first: number | undefined;
        let last: number | undefined;
        const line = (r: DeliveredRecord): string => {
          if (g.json)
            return JSON.stringify({
              seq: r.seq,
              ...(r.key !== undefined ? { key: r.key } : {}),
              deliveryCount: r.deliveryCount,
              data: r.data,
            });
          if (o.dataOnly) return JSON.stringify(r.data);
          return `${r.seq} ${r.key !== undefined ? `key=${r.key} ` : ''}${JSON.stringify(r.data)}${r.deliveryCount > 1 ? `  (delivery ${r.deliveryCount})` : ''}`;
        };
        try {
          await session.consumeBatches(
            (batch) => {
              const failed: number[] = [];
              const lines: string[] = [];
              for (const r of [...batch].sort((a, b) => a.seq - b.seq)) {
                if (o.limit !== undefined && printed >= o.limit) {
                  failed.push(r.seq);
                  continue;
                }
                lines.push(line(r));
                printed++;
                first ??= r.seq;
                last = r.seq;
              }
              if (lines.length) out(lines.join('\n'));
              if (o.limit !== undefined && printed >= o.limit) stop.abort();
              return { failed };
            },
            { concurrency: 1, maxRecords: 100, waitSeconds: o.follow ? 5 : 0, stopWhenEmpty: !o.follow, signal: stop.signal },
          );
        } finally {
          uninstall();
          if (own && !o.keepSession) await session.delete().catch(() => undefined);
        }
        if (!g.json && !o.dataOnly) err(printed ? `${count(printed, 'record')} (seq ${first}..${last})` : 'no records');
      },
    );

  // ---- configs ---------------------------------------------------------------------------------
  const configs = program.command('configs').description('config profiles and versions (admin)');
  configs
    .command('list')
    .description('each profile: its control version, the live experiment, all versions')
    .action(async (_o: unknown, cmd: Command) => {
      const c = await clientFor(cmd).listConfigs();
      print(cmd, c, renderConfigs(c));
    });
  configs
    .command('put')
    .description("store a new version of a profile, checked against the profile's JSON Schema")
    .argument('<profile>', 'delivery or limits')
    .argument('<file>', 'a JSON file with the content, e.g. {"maxBatchRecords": 50}; "-" for stdin')
    .option('--description <text>', 'kept with the version, for operators')
    .action(async (profile: string, file: string, o: { description?: string }, cmd: Command) => {
      const content = await readJsonFile(file, io, 'The config');
      const v = await clientFor(cmd).putConfigVersion(profile, content, o.description !== undefined ? { description: o.description } : {});
      print(cmd, v, `stored ${v.profile} version ${v.version} (bake it with: logrelay bake start ${v.profile}:${v.version})`);
    });
  configs
    .command('get')
    .description("print a version's content; with --diff N, also what it changes against version N")
    .argument('<profile>', 'delivery or limits')
    .argument('<version>', 'the version number')
    .option(
      '--diff <N>',
      'also list the fields whose effective value (defaults filled in) differs from version N of the profile',
      intArg('--diff', 1, 2_147_483_647),
    )
    .addHelpText(
      'after',
      '\nWith --diff N, each field that differs is printed as "field  N\'s value -> this version\'s value".\nA field a version leaves out counts as its default, as hosts serve it: left out against the\ndefault written out is no difference.',
    )
    .action(async (profile: string, version: string, o: { diff?: number }, cmd: Command) => {
      const v = await clientFor(cmd).getConfigVersion(profile, version, o.diff !== undefined ? { diff: o.diff } : {});
      const human = [JSON.stringify(v.content, null, 2)];
      if (o.diff !== undefined)
        human.push('', `${v.profile} v${v.version} against v${o.diff} (v${o.diff} -> v${v.version}):`, ...renderDiff(v.diff ?? [], '  '));
      print(cmd, v, human);
    });

  // ---- bake ------------------------------------------------------------------------------------
  const bake = program.command('bake').description('roll config versions out with a two-arm bake (admin)');
  const watch = async (client: LogrelayClient, bakeId: string, cmd: Command, intervalSeconds: number): Promise<Bake> => {
    const g = globals(cmd);
    const live = !g.json && io.stdout.isTTY ? new LiveBlock(io.stdout) : undefined;
    let seen = '';
    for (;;) {
      const b = await client.describeBake(bakeId);
      const fp = bakeFingerprint(b);
      if (live) live.draw(renderBake(b));
      else if (fp !== seen) {
        if (g.json) out(JSON.stringify(b));
        else out(`${renderBake(b).join('\n')}\n`);
      }
      seen = fp;
      if (b.status !== 'RUNNING') return b;
      await sleep(live ? Math.min(1000, intervalSeconds * 1000) : intervalSeconds * 1000);
    }
  };
  const ended = (b: Bake) => {
    exitCode = bakeExitCode(b);
  };
  const intervalOption = () =>
    new Option('--interval <seconds>', 'with --watch: seconds between reads').argParser(intArg('--interval', 1, 3600)).default(2);
  bake
    .command('start')
    .description('start a bake of one or more changes, tested one at a time in the order given')
    .argument('<changes...>', 'PROFILE:VERSION, e.g. delivery:2 limits:3')
    .option('--weight <percent>', 'share of requests on the experiment, 1..50 (default 10)', intArg('--weight', 1, 50))
    .option('--bake-seconds <s>', 'how long each phase measures, 10..3600 (default 600)', intArg('--bake-seconds', 10, 3600))
    .option('--poll-seconds <s>', 'how often a phase reads the alarms, 1..300 (default 30)', intArg('--poll-seconds', 1, 300))
    .option(
      '--min-experiment-requests <n>',
      'fewest experiment requests to approve a phase (default 200)',
      intArg('--min-experiment-requests', 1, 1_000_000),
    )
    .option('-w, --watch', 'then show the bake live until it ends (as bake status --watch); exit 3, 4 or 5 as bake status does')
    .addOption(intervalOption())
    .action(
      async (
        changes: string[],
        o: {
          weight?: number;
          bakeSeconds?: number;
          pollSeconds?: number;
          minExperimentRequests?: number;
          watch?: boolean;
          interval: number;
        },
        cmd: Command,
      ) => {
        let parsed: { profile: string; version: string }[];
        try {
          parsed = changes.map(parseChange);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const client = clientFor(cmd);
        const { bakeId } = await client.startBake({
          changes: parsed,
          ...(o.weight !== undefined ? { weightPercent: o.weight } : {}),
          ...(o.bakeSeconds !== undefined ? { bakeSeconds: o.bakeSeconds } : {}),
          ...(o.pollSeconds !== undefined ? { pollSeconds: o.pollSeconds } : {}),
          ...(o.minExperimentRequests !== undefined ? { minExperimentRequests: o.minExperimentRequests } : {}),
        });
        if (!o.watch) {
          print(
            cmd,
            { bakeId },
            `started bake ${bakeId}: ${parsed.map((c) => `${c.profile} v${c.version}`).join(', then ')}\nfollow it with: logrelay bake status ${bakeId} --watch`,
          );
          return;
        }
        if (!globals(cmd).json) err(`started bake ${bakeId}`);
        ended(await watch(client, bakeId, cmd, o.interval));
      },
    );
  bake
    .command('status')
    .description("a bake's status, phases, verdicts, arms and alarm states")
    .argument('[bakeId]', 'the bake (default: the one running now, from configs list)')
    .option('-w, --watch', 'redraw until the bake ends: phases, elapsed time, arms and alarm states')
    .addOption(intervalOption())
    .addHelpText(
      'after',
      "\nWith --watch on a terminal the view is redrawn in place; otherwise (or with --json) a new view\nis printed each time something other than the elapsed time changes. The running phase shows what\nit changes against control, and durations are also shown as the real time they take under the\nservice's time scale (the local runtime's LOGRELAY_TIME_SCALE).\n\nExit code, by the bake as last read (without --watch: what it decided so far): 0 no phase\nrejected or reverted; 3 the bake ended FAILED or ABORTED; 4 a phase was REJECTED (its change was\nnot promoted); 5 a promoted change was REVERTED after promotion. When several apply: 5, then 3, then 4.\nA dry run (WOULD_APPROVE, WOULD_REJECT) exits 0 whatever it would have decided: it changed nothing.",
    )
    .action(async (bakeId: string | undefined, o: { watch?: boolean; interval: number }, cmd: Command) => {
      const client = clientFor(cmd);
      if (!bakeId) {
        const c = await client.listConfigs();
        bakeId = Object.values(c.profiles).find((p) => p.experiment)?.experiment?.bakeId;
        if (!bakeId) throw new UsageError('No bake is running now; name one: logrelay bake status BAKE_ID.');
      }
      if (o.watch) {
        ended(await watch(client, bakeId, cmd, o.interval));
        return;
      }
      const b = await client.describeBake(bakeId);
      print(cmd, b, renderBake(b));
      exitCode = bakeExitCode(b);
    });
  bake
    .command('abort')
    .description('ask a running bake to stop: at its next poll it clears the experiment and ends ABORTED')
    .argument('<bakeId>', 'the bake')
    .action(async (bakeId: string, _o: unknown, cmd: Command) => {
      const r = await clientFor(cmd).abortBake(bakeId);
      print(cmd, r, `abort requested for bake ${bakeId}; it stops at its next poll (logrelay bake status ${bakeId} --watch)`);
    });

  bake
    .command('list')
    .description('bakes, newest first: when each started, its status, and what each change was and what the bake decided about it')
    .option('--limit <n>', 'bakes per page read, 1..100 (default 20)', intArg('--limit', 1, 100))
    .option('--next-token <token>', 'start after the page that printed this token')
    .option(
      '--since <when>',
      'only bakes started since WHEN: an ISO 8601 time (2026-11-24T00:00:00Z) or a span back from now (90m, 24h, 7d); reads pages back to it',
    )
    .option('--all', 'read every page, to the oldest bake kept (90 days)')
    .addHelpText(
      'after',
      '\nWithout --all or --since it prints one page, and the command for the next one if there is more.\n"What changed yesterday": logrelay bake list --since 24h',
    )
    .action(async (o: { limit?: number; nextToken?: string; since?: string; all?: boolean }, cmd: Command) => {
      const sinceMs = o.since === undefined ? undefined : parseSince(o.since, Date.now());
      const client = clientFor(cmd);
      const bakes: BakeSummary[] = [];
      let token = o.nextToken;
      for (;;) {
        const page = await client.listBakes({
          ...(o.limit !== undefined ? { limit: o.limit } : {}),
          ...(token !== undefined ? { nextToken: token } : {}),
        });
        const kept = sinceMs === undefined ? page.bakes : page.bakes.filter((b) => Date.parse(b.createdAt) >= sinceMs);
        bakes.push(...kept);
        token = page.nextToken;
        // Newest first: once a page reaches past --since, no later page has a bake after it.
        const passedSince = sinceMs !== undefined && kept.length < page.bakes.length;
        if (!token || passedSince) {
          if (passedSince) token = undefined;
          break;
        }
        if (!o.all && sinceMs === undefined) break;
      }
      const human = renderBakeList(bakes);
      if (token) human.push('', `more: logrelay bake list --next-token ${token}${o.limit !== undefined ? ` --limit ${o.limit}` : ''}`);
      print(cmd, { bakes, ...(token ? { nextToken: token } : {}) }, human);
    });

  // Every command shares the error handling. The global options are listed once, in
  // `logrelay --help`; a command's help points there in one line instead of repeating them.
  const configure = (c: Command) => {
    c.showHelpAfterError('(run with --help for usage)')
      .addHelpText('after', `\n${GLOBAL_OPTIONS_POINTER}`)
      .exitOverride()
      .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
    c.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  Object.defineProperty(program, 'logrelayExitCode', { get: () => exitCode });
  return program;
}

/** Every command of the program, as "logs create", "bake status", ... (for --help tests and docs). */
export function commandPaths(program: Command): string[] {
  const out: string[] = [];
  const walk = (c: Command, prefix: string[]) => {
    for (const sub of c.commands) {
      if (sub.name() === 'help') continue;
      const path = [...prefix, sub.name()];
      if (sub.commands.length) walk(sub, path);
      else out.push(path.join(' '));
    }
  };
  walk(program, []);
  return out;
}

/** Runs the CLI; resolves with the exit code. */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv, { from: 'user' });
    return (program as unknown as { logrelayExitCode: number }).logrelayExitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version "fail" with exit code 0; usage errors were already printed.
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const report = (code: string, message: string, status?: number) => {
      if (json) io.stderr.write(`${JSON.stringify({ error: { code, message, ...(status !== undefined ? { status } : {}) } })}\n`);
      else io.stderr.write(`logrelay: ${message}${status !== undefined ? ` (${code}, HTTP ${status || 'no answer'})` : ''}\n`);
    };
    if (e instanceof UsageError || e instanceof CredentialsFileError) {
      report('UsageError', e.message);
      return EXIT.usage;
    }
    if (e instanceof PartialFailure) {
      const c = e.cause instanceof LogrelayError ? e.cause : undefined;
      report(c?.code ?? 'Failed', e.message, c?.status);
      return EXIT.failed;
    }
    if (e instanceof LogrelayError) {
      report(e.code, e.message, e.status);
      return EXIT.failed;
    }
    report('Failed', (e as Error)?.message ?? String(e));
    return EXIT.failed;
  }
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    onInterrupt(handler) {
      process.on('SIGINT', handler);
      return () => process.off('SIGINT', handler);
    },
  };
}

/** The bin's entry point. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  // `logrelay tail ... | head`: the reader went away; stop quietly, as other CLIs do.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  process.exitCode = await run(argv, processIo());
}
