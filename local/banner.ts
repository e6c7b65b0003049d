/**
 * Lines of the `npm start` banner (bin/local.ts) about bakes, apart from starting anything so the
 * tests can check them cheaply: the time scale in force and what it makes of a bake's durations,
 * and that a phase needs traffic (with the command that makes some); and, after the banner, one
 * line per EventBridge event the bake publishes (`printEvents`).
 */
import { BAKE_DEFAULTS } from '../lambdas/domain/bake';
import { PICKUP_SECONDS } from '../lambdas/services/bakes';
import { formatEventLine, type LocalEventBridge } from './eventbridge';

/** Real time as "10s", "10m 12s", "500 ms". */
function real(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  return m ? `${m}m ${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/**
 * What the time scale makes of a bake: `source` says where it came from (the variable, or
 * nothing set). A phase with the default settings takes the pick-up wait plus bakeSeconds.
 */
export function bakeBannerLines(timeScale: number, source: 'LOGRELAY_TIME_SCALE' | 'default'): string[] {
  const { bakeSeconds, pollSeconds, minExperimentRequests, weightPercent } = BAKE_DEFAULTS;
  const phaseMs = ((PICKUP_SECONDS + bakeSeconds) * 1000) / timeScale;
  const scale =
    timeScale === 1
      ? `  time scale: 1x (${source === 'default' ? 'LOGRELAY_TIME_SCALE unset' : 'LOGRELAY_TIME_SCALE'}): bake durations pass in real time; a phase with the default bakeSeconds ${bakeSeconds} takes about ${real(phaseMs)} (LOGRELAY_TIME_SCALE=60 npm start: about ${real(phaseMs / 60)})`
      : `  time scale: ${timeScale}x (${source === 'default' ? 'default' : 'LOGRELAY_TIME_SCALE'}): bake durations pass ${timeScale}x faster; a phase with the default bakeSeconds ${bakeSeconds} takes about ${real(phaseMs)}, a poll every ${real((pollSeconds * 1000) / timeScale)} (leases, ack and idle timeouts are not scaled)`;
  const needed = Math.ceil(minExperimentRequests / (weightPercent / 100));
  return [
    scale,
    `  bakes need traffic: a phase is approved only with at least minExperimentRequests (default ${minExperimentRequests}) experiment requests, about ${needed.toLocaleString('en-US')} requests in all at the default weight ${weightPercent}%; make some with npm run traffic`,
  ];
}

/**
 * What `npm start` prints of the bake's events: one line per event the local default bus records
 * (formatEventLine), as it comes, until the returned function is called.
 */
export function printEvents(bus: Pick<LocalEventBridge, 'onEvent'>, print: (line: string) => void): () => void {
  return bus.onEvent((e) => print(formatEventLine(e)));
}
