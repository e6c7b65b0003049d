/**
 * The command line of `npm start` (bin/local.ts), parsed apart from starting anything so the
 * tests can check it cheaply.
 */
import { parseArgs } from 'node:util';
import { parseStorageLatencyMs, STORAGE_LATENCY_ENV, storageLatencyFromEnv } from './latency';

export const START_USAGE =
  'Usage: npm start [-- [--data-dir DIR] [--storage-latency-ms N]]   (PORT=8787 by default; N: 0..10000, default LOGRELAY_STORAGE_LATENCY_MS, else 0)';

export type StartArgs =
  | { help: true }
  | {
      help: false;
      port: number;
      dataDir?: string;
      /** From --storage-latency-ms, else LOGRELAY_STORAGE_LATENCY_MS, else 0. */
      storageLatencyMs: number;
      /** Where storageLatencyMs came from, for the banner. */
      storageLatencyFrom: '--storage-latency-ms' | typeof STORAGE_LATENCY_ENV | 'default';
    };

/** Throws an Error whose message names the flag or variable at fault. */
export function parseStartArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): StartArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      'storage-latency-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return { help: true };
  const port = Number(env.PORT ?? 8787);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number; it is '${env.PORT}'.`);
  const flag = values['storage-latency-ms'];
  const fromEnv = env[STORAGE_LATENCY_ENV] !== undefined && env[STORAGE_LATENCY_ENV]!.trim() !== '';
  // The flag wins; the variable is still checked only when it is the one used.
  const storageLatencyMs = flag !== undefined ? parseStorageLatencyMs(flag, '--storage-latency-ms') : storageLatencyFromEnv(env);
  return {
    help: false,
    port,
    ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
    storageLatencyMs,
    storageLatencyFrom: flag !== undefined ? '--storage-latency-ms' : fromEnv ? STORAGE_LATENCY_ENV : 'default',
  };
}
