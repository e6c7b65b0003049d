#!/usr/bin/env node
/**
 * `npm start`: the whole service on this machine, no AWS account. Options: PORT (default
 * 8787), --data-dir DIR (default: in memory), --storage-latency-ms N (default
 * LOGRELAY_STORAGE_LATENCY_MS, else 0) and --faults SPEC (default LOGRELAY_FAULTS, else none);
 * see local/start-args.ts. LOGRELAY_TIME_SCALE (default 1) divides bake durations; the banner
 * says what that makes of them. Ctrl-C stops it cleanly.
 */
import { startLocalRuntime } from '../local/server';
import { parseStartArgs, START_USAGE } from '../local/start-args';
import { formatFaultSpec } from '../local/faults';
import { bakeBannerLines, printEvents } from '../local/banner';

// The AWS SDK warns that its 2027 releases will need Node 22; the runtime works on Node 20.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!w.message.includes('NodeVersionSupportWarning') && w.name !== 'NodeVersionSupportWarning') console.warn(w);
});

async function main(): Promise<void> {
  const args = parseStartArgs(process.argv.slice(2));
  if (args.help) {
    console.log(START_USAGE);
    return;
  }
  const started = Date.now();
  const rt = await startLocalRuntime({
    port: args.port,
    storageLatencyMs: args.storageLatencyMs,
    faults: args.faults ?? null,
    ...(args.dataDir ? { dataDir: args.dataDir } : {}),
  });
  const admin = rt.principals.find((p) => p.admin) ?? rt.principals[0]!;
  const store = args.dataDir ? `embedded DynamoDB in ${args.dataDir}` : 'embedded DynamoDB in memory (use --data-dir DIR to keep data)';
  console.log(
    [
      `Logrelay local runtime listening on ${rt.url} (ready in ${Date.now() - started} ms)`,
      `  routes: ${rt.system.routes.length} from the synthesized stack; tables: ${rt.system.tables.map((t) => t.name).join(', ')}`,
      `  console: ${rt.consoleUrl} (the stack's dashboard, bakes, logs and sessions, live; answers this machine only, not part of the deployed API)`,
      `  store:  ${store}`,
      ...(rt.storageLatencyMs
        ? [`  storage latency: +${rt.storageLatencyMs} ms on every DynamoDB call, retries included (${args.storageLatencyFrom})`]
        : []),
      ...(args.faults
        ? [
            `  faults: ${formatFaultSpec(args.faults)} (${args.faultsFrom}${args.faults.seedGiven ? '' : ', seed drawn at random'}): per call to DynamoDB, CloudWatch and AppConfig, SDK retries included`,
            `          replay this run's faults with --faults '${formatFaultSpec(args.faults)}'`,
          ]
        : []),
      ...bakeBannerLines(rt.timeScale, process.env.LOGRELAY_TIME_SCALE?.trim() ? 'LOGRELAY_TIME_SCALE' : 'default'),
      `  principals: ${rt.credentialsPath}${rt.credentialsCreated ? ' (created now)' : ''}; ${rt.principals.map((p) => `${p.name}${p.admin ? ' (admin)' : ''}`).join(', ')}`,
      '',
      'Every request must be signed with AWS SigV4 (service execute-api, any region). Try:',
      `  curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user ${admin.accessKeyId}:${admin.secretAccessKey} \\`,
      `    -H 'content-type: application/json' -d '{"logId":"hello"}' ${rt.url}/logs`,
      `  curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user ${admin.accessKeyId}:${admin.secretAccessKey} ${rt.url}/logs/hello`,
      '',
      'One line per request follows (method, route, status, time), and one per EventBridge event the bake publishes. Ctrl-C stops.',
    ].join('\n'),
  );
  // What the stack's state machines publish to EventBridge (the bake's events), one line each as it comes.
  printEvents(rt.events, (line) => console.log(line));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping...`);
    if (rt.faults) {
      const c = rt.faults.counts();
      console.log(
        `faults injected: ${c.throttle} throttles, ${c['applied-then-error']} lost responses, ${c.slow} slow calls (seed ${rt.faults.spec.seed})`,
      );
    }
    rt.close().then(
      () => {
        console.log('stopped.');
        process.exit(0);
      },
      (e: unknown) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  console.error(`logrelay: ${(e as Error).message}`);
  process.exit(1);
});
