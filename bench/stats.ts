/** Small statistics helpers for the benchmark: medians, spreads, percentiles. */

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** The per-run values, in run order. */
  runs: number[];
}

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (the smallest value with at least p% of the samples at or below it). */
export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[rank - 1]!;
}

export function spread(xs: readonly number[]): Spread {
  const finite = xs.filter((x) => Number.isFinite(x));
  return {
    median: median(finite),
    min: finite.length ? Math.min(...finite) : NaN,
    max: finite.length ? Math.max(...finite) : NaN,
    runs: [...xs],
  };
}

export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** A number for a table: 3 significant digits, no exponent for everyday magnitudes. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 10 ** digits) return Math.round(x).toLocaleString('en-US');
  if (abs < 1e-4) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

/** "median (min–max)" with the same formatting, or just the value when all runs agree. */
export function fmtSpread(s: Spread, digits = 3, suffix = ''): string {
  const m = fmt(s.median, digits);
  if (s.runs.length <= 1 || fmt(s.min, digits) === fmt(s.max, digits)) return `${m}${suffix}`;
  return `${m}${suffix} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

export function fmtUsd(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x === 0) return '$0';
  if (x >= 1) return `$${x.toFixed(2)}`;
  if (x >= 0.01) return `$${x.toFixed(3)}`;
  return `$${x.toPrecision(2)}`;
}

/** mulberry32: a small, deterministic, seeded PRNG (simulations and randomized tests). */
export function prng(seed: number): { next: () => number; int: (lo: number, hi: number) => number; pick: <T>(xs: readonly T[]) => T } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  return { next, int, pick };
}
