/** What the CLI prints for people: the bake view, config diffs, tables of settings, and the progress bar. */
import type { ArmStats, Bake, BakePhase, BakeSummary, ConfigDiff, Configs, SessionInfo } from './types';

export interface Writable {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const n = (x: number): string => x.toLocaleString('en-US');

/** A count with its noun, singular for one: "1 record", "1,000 records", "1 delivery". */
export const count = (k: number, singular: string, plural = `${singular}s`): string => `${n(k)} ${k === 1 ? singular : plural}`;
const pct = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-');

export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m ${String(sec).padStart(2, '0')}s`;
  if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

function since(from: string | undefined, to: string | undefined, now: number): string {
  if (!from) return '';
  const start = Date.parse(from);
  const end = to ? Date.parse(to) : now;
  return Number.isNaN(start) ? '' : duration(end - start);
}

function arm(label: string, a: ArmStats | undefined): string {
  if (!a) return `${label.padEnd(10)}  no data yet`;
  const p99 = a.p99Ms === undefined ? '-' : `${Math.round(a.p99Ms)} ms`;
  return `${label.padEnd(10)}  ${n(a.requests).padStart(8)} req   4xx ${pct(a.errors4xx, a.requests).padStart(6)}   5xx ${pct(a.errors5xx, a.requests).padStart(6)}   p99 ${p99}`;
}

const MARK: Record<string, string> = { OK: 'ok', ALARM: 'ALARM', INSUFFICIENT_DATA: 'no data' };

/** A bake duration (seconds of bake time) as real time passes under `timeScale`: "10s", "500 ms". */
export function realDuration(bakeSeconds: number, timeScale: number): string {
  const ms = (bakeSeconds * 1000) / timeScale;
  return ms < 1000 ? `${Math.round(ms)} ms` : duration(ms);
}

/** The time scale a bake view reports: 1 when the service does not say (AWS, and services before it was sent). */
const scaleOf = (b: Bake): number => (typeof b.timeScale === 'number' && b.timeScale > 0 ? b.timeScale : 1);

/**
 * Polls a phase runs before its verdict, as the service counts them (lambdas/domain/bake.ts,
 * pollBudget): the bake's polls, and half as many again once extended.
 */
function pollsOf(s: NonNullable<Bake['settings']>, extended: boolean): number {
  const polls = Math.max(1, Math.ceil(s.bakeSeconds / s.pollSeconds));
  return extended ? polls + Math.max(1, Math.ceil(polls / 2)) : polls;
}

const shown = (v: unknown): string => (v === undefined ? '(not set)' : JSON.stringify(v));

/**
 * A config diff as lines, `indent` before each: one field a line, "path  control -> experimental".
 * An empty diff is one line that says hosts serve the same values.
 */
export function renderDiff(diff: ConfigDiff[], indent = ''): string[] {
  if (!diff.length) return [`${indent}no field differs (hosts serve the same values under both)`];
  const width = Math.min(28, Math.max(...diff.map((d) => (d.path || '(whole content)').length)));
  return diff.map((d) => `${indent}${(d.path || '(whole content)').padEnd(width)}  ${shown(d.control)} -> ${shown(d.experimental)}`);
}

function phaseLines(p: BakePhase, i: number, now: number, b?: Bake): string[] {
  const head = [`${i + 1}. ${p.profile} v${p.version}`.padEnd(20), p.verdict.padEnd(9)];
  const took = since(p.startedAt, p.endedAt, now);
  if (took) head.push(took);
  if (p.polls !== undefined && p.verdict === 'BAKING' && b?.settings) {
    // Real time left: the polls still to run, each pollSeconds of bake time apart.
    const total = pollsOf(b.settings, p.extended === true);
    head.push(`poll ${p.polls}/${total}`, `~${realDuration(Math.max(0, total - p.polls) * b.settings.pollSeconds, scaleOf(b))} left`);
  } else if (p.polls !== undefined && p.verdict !== 'PENDING') head.push(`${p.polls} poll${p.polls === 1 ? '' : 's'}`);
  if (p.extended) head.push('extended');
  const lines = [`  ${head.join('  ')}`];
  if (p.verdict === 'BAKING' && p.diff) lines.push('       changes against control:', ...renderDiff(p.diff, '         '));
  if (p.verdict === 'PENDING') return lines;
  lines.push(`       ${arm('control', p.arms?.control)}`);
  lines.push(`       ${arm('experiment', p.arms?.experiment)}`);
  if (p.alarms?.length) {
    // Alarm names carry the stack's prefix; the part from "experiment-" or "slo-" on is the alarm.
    const short = (name: string) => name.replace(/^.*?(experiment-|slo-)/, '$1');
    const ok = p.alarms.filter((a) => a.state === 'OK').length;
    const other = p.alarms.filter((a) => a.state !== 'OK').map((a) => `${MARK[a.state] ?? a.state} ${short(a.name)}`);
    lines.push(`       alarms: ${other.length ? [...other, `${ok} ok`].join(', ') : `all ${ok} ok`}`);
  }
  if (p.reason) lines.push(`       reason: ${p.reason}`);
  return lines;
}

/** The bake as a block of lines: status, elapsed time, settings, then each phase with its arms and alarms. */
export function renderBake(b: Bake, now = Date.now()): string[] {
  const s = b.settings;
  const head = [`bake ${b.bakeId}`, b.status + (b.abortRequested && b.status === 'RUNNING' ? ' (abort requested)' : '')];
  const elapsed = since(b.createdAt, b.endedAt, now);
  if (elapsed) head.push(`elapsed ${elapsed}`);
  const scale = scaleOf(b);
  if (scale !== 1) head.push(`time scale ${scale}x`);
  const lines = [head.join('  ')];
  if (s) {
    // Under a time scale (local runtime), each duration also as the real time it takes.
    const real = (seconds: number) => (scale === 1 ? '' : ` (${realDuration(seconds, scale)} real)`);
    lines.push(
      `  weight ${s.weightPercent}%   bake ${s.bakeSeconds} s${real(s.bakeSeconds)}   poll ${s.pollSeconds} s${real(s.pollSeconds)}   min experiment requests ${n(s.minExperimentRequests)}`,
    );
  }
  if (b.error) lines.push(`  error: ${b.error}`);
  for (const [i, p] of b.phases.entries()) lines.push(...phaseLines(p, i, now, b));
  return lines;
}

/** What changes between two views of a bake, elapsed times aside (non-TTY output prints only changes). */
export function bakeFingerprint(b: Bake): string {
  return JSON.stringify([
    b.status,
    b.abortRequested,
    b.error,
    b.phases.map((p) => [p.verdict, p.polls, p.reason, p.arms, p.alarms?.map((a) => a.state), p.diff]),
  ]);
}

/** Redraws a block of lines in place on a terminal. */
export class LiveBlock {
  private shown = 0;
  constructor(private readonly out: Writable) {}
  draw(lines: string[]): void {
    // Lines are cut to the terminal's width so that each is one row and the redraw moves up exactly.
    const width = this.out.columns && this.out.columns > 20 ? this.out.columns : undefined;
    const fitted = width ? lines.map((l) => (l.length > width - 1 ? `${l.slice(0, width - 2)}…` : l)) : lines;
    const up = this.shown > 0 ? `\x1b[${this.shown}A\r\x1b[J` : '';
    this.out.write(`${up}${fitted.join('\n')}\n`);
    this.shown = fitted.length;
  }
}

export function renderConfigs(c: Configs): string[] {
  const lines: string[] = [];
  for (const [name, p] of Object.entries(c.profiles)) {
    let line = `${name.padEnd(9)} control v${p.control}`;
    if (p.experiment) line += `   experiment v${p.experiment.version} on ${p.experiment.weightPercent}% (bake ${p.experiment.bakeId})`;
    if (p.versions?.length) line += `   versions ${p.versions.join(', ')}`;
    lines.push(line);
  }
  return lines;
}

export function renderSession(s: SessionInfo): string[] {
  const lines = [
    `session      ${s.sessionId}`,
    `log          ${s.logId}`,
    `cursor       ${s.cursor}   (next never-sent sequence number)`,
    `ack floor    ${s.ackFloor}`,
    `in flight    ${n(s.inFlight)}${
      s.inFlightRanges.length
        ? `   ${s.inFlightRanges
            .slice(0, 8)
            .map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`))
            .join(', ')}${s.inFlightRanges.length > 8 ? ', …' : ''}`
        : ''
    }`,
    `lag          ${n(s.lag)}`,
    `dead letters ${n(s.deadLettered)}`,
  ];
  if (s.skippedByRetention) lines.push(`skipped      ${n(s.skippedByRetention)} (removed by retention first)`);
  if (s.settings) {
    lines.push(
      `settings     ack timeout ${s.settings.ackTimeoutSeconds} s, max in flight ${n(s.settings.maxInFlight)}, max deliveries ${s.settings.maxDeliveries}, idle timeout ${s.settings.idleTimeoutSeconds} s`,
    );
  }
  lines.push(`expires      ${s.expiresAt} (unless used before)`);
  return lines;
}

/**
 * A one-line progress bar on a terminal's stderr, redrawn at most ten times a second. With no
 * known total it shows the count and rate only.
 */
export class ProgressBar {
  private lastDraw = 0;
  private readonly started = Date.now();
  private drawn = false;

  constructor(
    private readonly out: Writable,
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly unit = 'record',
  ) {}

  update(done: number, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const secs = Math.max(0.001, (now - this.started) / 1000);
    const rate = `${n(Math.round(done / secs))} ${this.unit}s/s`;
    let line: string;
    if (this.total && this.total > 0) {
      const frac = Math.min(1, done / this.total);
      const width = 24;
      const full = Math.round(frac * width);
      line = `${this.label} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.floor(frac * 100)).padStart(3)}%  ${n(done)}/${count(this.total, this.unit)}  ${rate}`;
    } else {
      line = `${this.label} ${count(done, this.unit)}  ${rate}`;
    }
    this.out.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }

  done(final: number): void {
    this.update(final, true);
    if (this.drawn) this.out.write('\n');
  }

  /** Removes the bar (before an error message). */
  clear(): void {
    if (this.drawn) this.out.write('\r\x1b[2K');
    this.drawn = false;
  }
}

/** `bake list`: one block per bake, newest first: when it started, its status, how long it took, then each change and what the bake decided about it, with the reason. */
export function renderBakeList(bakes: BakeSummary[], now = Date.now()): string[] {
  if (!bakes.length) return ['no bakes'];
  const lines: string[] = [];
  for (const b of bakes) {
    const started = b.createdAt.replace(/\.\d{3}Z$/, 'Z').replace('T', ' ');
    const took = since(b.createdAt, b.endedAt, now);
    const head = [b.bakeId, b.status + (b.abortRequested && b.status === 'RUNNING' ? ' (abort requested)' : ''), `started ${started}`];
    if (took) head.push(b.endedAt ? `took ${took}` : `running for ${took}`);
    lines.push(head.join('  '));
    if (b.error) lines.push(`  error: ${b.error}`);
    const width = Math.max(...b.phases.map((p, i) => `${i + 1}. ${p.profile} v${p.version}`.length));
    for (const [i, p] of b.phases.entries())
      lines.push(
        `  ${`${i + 1}. ${p.profile} v${p.version}`.padEnd(width)}  ${p.verdict.padEnd(9)}${p.reason ? `  ${p.reason}` : ''}`.trimEnd(),
      );
  }
  return lines;
}
