/**
 * The command line of `npm start` (bin/local.ts), parsed apart from starting anything so the
 * tests can check it cheaply.
 */
import { parseArgs } from 'node:util';
import { parseStorageLatencyMs, STORAGE_LATENCY_ENV, storageLatencyFromEnv } from './latency';
import { FAULTS_ENV, faultsFromEnv, parseFaultSpec, type FaultSpec } from './faults';

export const START_USAGE =
  'Usage: npm start [-- [--data-dir DIR] [--storage-latency-ms N] [--faults SPEC]]   (PORT=8787 by default; N: 0..10000, default LOGRELAY_STORAGE_LATENCY_MS, else 0;\n' +
  '  SPEC: e.g. throttle=0.05,applied-then-error=0.02,slow=0.01:800ms,seed=42, default LOGRELAY_FAULTS, else no faults)';

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
      /** From --faults, else LOGRELAY_FAULTS; undefined: no faults. */
      faults?: FaultSpec;
      /** Where faults came from, for the banner. */
      faultsFrom?: '--faults' | typeof FAULTS_ENV;
    };

/** Throws an Error whose message names the flag or variable at fault. */
export function parseStartArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): StartArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      'storage-latency-ms': { type: 'string' },
      faults: { type: 'string' },
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
  // The same for faults: the flag wins (`--faults off` turns off what the variable sets).
  const faultsFlag = values.faults;
  const faults = faultsFlag !== undefined ? parseFaultSpec(faultsFlag, '--faults') : faultsFromEnv(env);
  return {
    help: false,
    port,
    ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
    storageLatencyMs,
    storageLatencyFrom: flag !== undefined ? '--storage-latency-ms' : fromEnv ? STORAGE_LATENCY_ENV : 'default',
    ...(faults ? { faults, faultsFrom: faultsFlag !== undefined ? '--faults' : FAULTS_ENV } : {}),
  };
}
