/**
 * `npm run traffic`: the demo's synthetic traffic (local/traffic.ts) as a command of its own,
 * against a running `npm start` (or any endpoint), signed with a principal of the local
 * credentials file. Flow: parse the flags (`parseTrafficArgs`, apart from running anything so
 * tests check it cheaply), create the logs and sessions, then produce, receive and ack at the
 * rate asked until the duration is up or Ctrl-C; then stop producing and wait for what was
 * appended to be acked (a second Ctrl-C quits at once). A status line every second on a
 * terminal (every 5 s otherwise) says the requests sent and, when the principal may read
 * GET /configs and an experiment is live, how many of them went to the experiment arm since
 * the command saw it live (from each request's key, as hosts assign arms): a bake phase needs
 * `minExperimentRequests` of those, counted from its pick-up.
 */
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { SignedHttp } from './client';
import { Traffic } from './traffic';
import { armOf, type Experiment, type ProfileName } from '../lambdas/domain/config';
import { credentialsFileLocation, readPrincipals } from '../client/src/local';

export const TRAFFIC_USAGE = `Usage: npm run traffic [-- [--logs N] [--workers N] [--rate R] [--duration S] [--batch N]
                            [--endpoint URL] [--credentials-file PATH] [--principal NAME]]

Makes steady traffic on a running local runtime (npm start in another terminal), so that a
bake's phases have requests to judge: per log, one producer appending and N workers receiving
and acking, every request signed as a principal of the local credentials file.

  --logs N              logs, each with its own session, 1..200 (default 20). Requests are
                        assigned to arms by session id or log id: more logs spread them more
                        evenly over the arms.
  --workers N           workers per log, 1..10 (default 2)
  --rate R              at most R requests a second in all, 1..5000 (default 100)
  --duration S          stop after S seconds, 1..86400 (default: run until Ctrl-C)
  --batch N             records per append, 1..500 (default 5)
  --endpoint URL        default LOGRELAY_ENDPOINT, else http://127.0.0.1:$PORT (8787)
  --credentials-file P  default LOGRELAY_CREDENTIALS_FILE, else .logrelay/credentials.json here or above
  --principal NAME      default LOGRELAY_PRINCIPAL, else the first admin, else the first principal

A bake phase is approved only with at least minExperimentRequests (default 200) requests on the
experiment arm, which gets weightPercent of the keys: at weight 10% the traffic must make about
2,000 requests during the phase's bakeSeconds, which pass in bakeSeconds / LOGRELAY_TIME_SCALE
seconds. Ctrl-C stops producing and waits for what was appended to be acked; twice quits.`;

export interface TrafficArgs {
  logs: number;
  workers: number;
  rate: number;
  /** Seconds; undefined: until Ctrl-C. */
  durationSeconds?: number;
  batch: number;
  endpoint: string;
  credentialsFile: string;
  principal?: string;
}

/** A command-line mistake; the message says what to fix. */
export class TrafficUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrafficUsageError';
  }
}

function intFlag(name: string, raw: string | undefined, min: number, max: number, dflt: number): number;
function intFlag(name: string, raw: string | undefined, min: number, max: number, dflt?: undefined): number | undefined;
function intFlag(name: string, raw: string | undefined, min: number, max: number, dflt?: number): number | undefined {
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(v) || v < min || v > max)
    throw new TrafficUsageError(`${name} must be an integer from ${min} to ${max}; it is '${raw}'.`);
  return v;
}

/** Parses the flags; `help` when asked for. Throws TrafficUsageError naming the flag at fault. */
export function parseTrafficArgs(argv: string[], env: NodeJS.ProcessEnv, cwd: string): { help: true } | ({ help: false } & TrafficArgs) {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        logs: { type: 'string' },
        workers: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        batch: { type: 'string' },
        endpoint: { type: 'string' },
        'credentials-file': { type: 'string' },
        principal: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    throw new TrafficUsageError((e as Error).message);
  }
  if (values.help) return { help: true };
  const str = (k: string): string | undefined => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  // The same rule as the CLI and localCredentials(): the flag, LOGRELAY_CREDENTIALS_FILE, the search.
  const where = credentialsFileLocation({ ...(str('credentials-file') ? { path: str('credentials-file')! } : {}), env, cwd });
  const credentialsFile = where.path;
  if (!credentialsFile || !existsSync(credentialsFile)) {
    throw new TrafficUsageError(
      `No credentials file ${where.named}. Start the local runtime with npm start in this folder first (it writes one), or pass --credentials-file.`,
    );
  }
  const durationSeconds = intFlag('--duration', str('duration'), 1, 86_400);
  const principal = str('principal') ?? env.LOGRELAY_PRINCIPAL;
  return {
    help: false,
    logs: intFlag('--logs', str('logs'), 1, 200, 20),
    workers: intFlag('--workers', str('workers'), 1, 10, 2),
    rate: intFlag('--rate', str('rate'), 1, 5000, 100),
    ...(durationSeconds !== undefined ? { durationSeconds } : {}),
    batch: intFlag('--batch', str('batch'), 1, 500, 5),
    endpoint: str('endpoint') ?? env.LOGRELAY_ENDPOINT ?? `http://127.0.0.1:${env.PORT || 8787}`,
    credentialsFile,
    ...(principal ? { principal } : {}),
  };
}

/** The live experiment as GET /configs shows it, if any (undefined also when the principal may not read it). */
async function liveExperiment(http: SignedHttp): Promise<Experiment | undefined | 'forbidden'> {
  const r = await http.call('GET', '/configs');
  if (r.status === 403) return 'forbidden';
  if (r.status !== 200) return undefined;
  for (const [profile, p] of Object.entries(
    r.body.profiles as Record<string, { experiment?: { version: string; weightPercent: number; bakeId: string } }>,
  )) {
    const e = p.experiment;
    if (e)
      return {
        profile: profile as ProfileName,
        version: e.version,
        weightPercent: e.weightPercent,
        bakeId: e.bakeId,
        expiresAtMs: Infinity,
      };
  }
  return undefined;
}

const fmt = (x: number) => x.toLocaleString('en-US');

export interface TrafficRun {
  /** Resolves with the exit code: 0, or 1 when the service stopped answering. */
  done: Promise<number>;
  /** What Ctrl-C does: the first stops producing and drains, the second quits at once (resolves `done` with 130). */
  interrupt(): void;
}

/** Runs the traffic; `print` gets each line (status lines too), `live` redraws one line in place (a terminal). */
export function runTraffic(
  args: TrafficArgs,
  io: { print: (line: string) => void; live?: (line: string) => void; now?: () => number },
): TrafficRun {
  const now = io.now ?? Date.now;
  const principals = readPrincipals(args.credentialsFile);
  const p = args.principal ? principals.find((x) => x.name === args.principal) : (principals.find((x) => x.admin) ?? principals[0]);
  if (!p)
    throw new TrafficUsageError(
      `There is no principal '${args.principal}' in ${args.credentialsFile}; it has ${principals.map((x) => x.name).join(', ')}.`,
    );
  const http = new SignedHttp(args.endpoint, p);
  const traffic = new Traffic(http, {
    logs: args.logs,
    workersPerLog: args.workers,
    recordsPerBatch: args.batch,
    producerPauseMs: 0,
    requestsPerSecond: args.rate,
    prefix: `traffic-${now().toString(36)}`,
  });

  let interrupts = 0;
  let quit: (code: number) => void = () => {};
  const quitting = new Promise<number>((r) => (quit = r));
  let stopRequested: () => void = () => {};
  const stopSignal = new Promise<void>((r) => (stopRequested = r));

  const done = (async (): Promise<number> => {
    const started = now();
    try {
      await traffic.start();
    } catch (e) {
      const net = networkFailure(e);
      io.print(
        net !== undefined
          ? `Nothing answers at ${args.endpoint} (${net}). Start the local runtime first (npm start, in another terminal), or pass --endpoint.`
          : `Could not start the traffic: ${(e as Error).message}`,
      );
      return 1;
    }
    io.print(
      `Traffic on ${args.endpoint} as principal '${p.name}' (${args.credentialsFile}): ${args.logs} logs (${traffic.logIds[0]} ...), ` +
        `${args.workers} workers each, at most ${fmt(args.rate)} requests/s, ${args.durationSeconds ? `for ${args.durationSeconds} s` : 'until Ctrl-C'}.`,
    );
    // Experiment-arm requests since the experiment went live, from each key's count then and now.
    let experiment: Experiment | undefined;
    let baseline: ReadonlyMap<string, number> = new Map<string, number>();
    let canSeeConfigs = true;
    let configsReadAt = -Infinity;
    let lastPrinted = 0;
    let lastRequests = 0;
    let lastAt = started;
    const status = async () => {
      // GET /configs reads AppConfig's version lists: every 3 s is enough to see an experiment start.
      if (canSeeConfigs && now() - configsReadAt >= 3000) {
        configsReadAt = now();
        const e = await liveExperiment(http).catch(() => undefined);
        if (e === 'forbidden') canSeeConfigs = false;
        else if (e?.bakeId !== experiment?.bakeId || e?.version !== experiment?.version || e?.profile !== experiment?.profile) {
          experiment = e;
          baseline = traffic.requestsByKey();
        }
      }
      const t = traffic.tally();
      const at = now();
      const rate = ((t.requests - lastRequests) * 1000) / Math.max(1, at - lastAt);
      [lastRequests, lastAt] = [t.requests, at];
      let arm = '';
      if (experiment) {
        let n = 0;
        for (const [key, count] of traffic.requestsByKey())
          if (key && armOf(experiment, key) === 'experiment') n += count - (baseline.get(key) ?? 0);
        arm = `   experiment ${experiment.profile} v${experiment.version} on ${experiment.weightPercent}%: ${fmt(n)} requests since seen live`;
      } else if (canSeeConfigs) arm = '   no experiment live';
      const refused = Object.values(t.refused).reduce((a, b) => a + b, 0);
      return `${Math.round((at - started) / 1000)}s  requests ${fmt(t.requests)} (${fmt(Math.round(rate))}/s)  appended ${fmt(t.appended)}  acked ${fmt(t.acked)}${refused ? `  refused ${fmt(refused)}` : ''}${arm}`;
    };
    const until = args.durationSeconds ? started + args.durationSeconds * 1000 : Infinity;
    for (;;) {
      const wait = Math.min(1000, until - now());
      const woke = await Promise.race([
        sleep(Math.max(0, wait)).then(() => 'tick' as const),
        stopSignal.then(() => 'stop' as const),
        quitting.then(() => 'quit' as const),
      ]);
      if (woke === 'quit') return 130;
      if (traffic.failure() !== undefined) break;
      if (woke === 'stop' || now() >= until) break;
      const line = await status();
      if (io.live) io.live(line);
      else if (now() - lastPrinted >= 5000) {
        io.print(line);
        lastPrinted = now();
      }
    }
    const failed = traffic.failure();
    if (failed === undefined)
      io.print('Stopping: no more appends; waiting for the workers to ack what was appended (Ctrl-C again to quit at once).');
    const stopped = await Promise.race([
      traffic.stop().then(
        () => 'stopped' as const,
        () => 'failed' as const,
      ),
      quitting.then(() => 'quit' as const),
    ]);
    if (stopped === 'quit') return 130;
    const t = traffic.tally();
    const secs = Math.max(0.001, (now() - started) / 1000);
    io.print(
      `${fmt(t.requests)} requests in ${secs.toFixed(0)} s (${fmt(Math.round(t.requests / secs))}/s); ${fmt(t.appended)} records appended, ${fmt(t.acked)} acked.`,
    );
    const error = traffic.failure();
    if (error !== undefined) {
      const net = networkFailure(error);
      io.print(
        net !== undefined
          ? `The service at ${args.endpoint} stopped answering (${net}).`
          : `The traffic stopped on an error: ${(error as Error).message}`,
      );
      return 1;
    }
    return 0;
  })();

  return {
    done,
    interrupt() {
      interrupts++;
      if (interrupts === 1) stopRequested();
      else {
        // Quit now; the loops are told to stop too, for a caller that outlives this run.
        void traffic.stop().catch(() => undefined);
        quit(130);
      }
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a failed fetch says went wrong on the network (its cause's code), or undefined for any other error. */
function networkFailure(e: unknown): string | undefined {
  if (!(e instanceof TypeError) || e.message !== 'fetch failed') return undefined;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? 'no answer';
}
