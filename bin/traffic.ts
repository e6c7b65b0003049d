#!/usr/bin/env node
/**
 * `npm run traffic`: steady synthetic traffic (producers, workers, acks) against a running
 * `npm start`, so that a bake's phases have requests to judge. Flags and defaults:
 * `npm run traffic -- --help` (local/traffic-command.ts). Ctrl-C stops producing and waits for
 * what was appended to be acked; a second Ctrl-C quits at once.
 */
import { parseTrafficArgs, runTraffic, TRAFFIC_USAGE, TrafficUsageError } from '../local/traffic-command';

// The AWS SDK warns that its 2027 releases will need Node 22; this works on Node 20.
process.removeAllListeners('warning');

async function main(): Promise<number> {
  const args = parseTrafficArgs(process.argv.slice(2), process.env, process.cwd());
  if (args.help) {
    console.log(TRAFFIC_USAGE);
    return 0;
  }
  const tty = process.stdout.isTTY === true;
  let drawn = false;
  const run = runTraffic(args, {
    print: (line) => {
      if (drawn) process.stdout.write('\n');
      drawn = false;
      console.log(line);
    },
    ...(tty
      ? {
          live: (line: string) => {
            process.stdout.write(`\r\x1b[2K${line}`);
            drawn = true;
          },
        }
      : {}),
  });
  process.on('SIGINT', () => run.interrupt());
  process.on('SIGTERM', () => run.interrupt());
  return run.done;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`traffic: ${(e as Error).message}`);
    if (e instanceof TrafficUsageError) console.error('(npm run traffic -- --help for the flags)');
    process.exit(e instanceof TrafficUsageError ? 2 : 1);
  },
);
