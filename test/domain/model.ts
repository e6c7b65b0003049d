/**
 * Test helpers for the domain suites: a seeded PRNG and a brute-force, one-entry-per-sequence-
 * number model of a lease list. The model never calls the code under test, so comparing the
 * real range arithmetic against it can fail.
 */
import type { Lease, Range } from '../../lambdas/domain/ranges';
import type { SessionSettings, SessionState } from '../../lambdas/domain/session';

/** The seeded PRNG the benchmarks use too (mulberry32). */
import { prng } from '../../bench/stats';
export { prng };

export interface SeqState {
  leaseMs: number;
  count: number;
}

/** Expands a lease list into one entry per sequence number (by hand, not via the code under test). */
export function toModel(leases: readonly Lease[]): Map<number, SeqState> {
  const m = new Map<number, SeqState>();
  for (const l of leases) for (let q = l.from; q <= l.to; q++) m.set(q, { leaseMs: l.leaseMs, count: l.count });
  return m;
}

/** The canonical lease list for a model: maximal runs of consecutive seqs with equal lease and count. */
export function fromModel(m: ReadonlyMap<number, SeqState>): Lease[] {
  const seqs = [...m.keys()].sort((a, b) => a - b);
  const out: Lease[] = [];
  for (const q of seqs) {
    const v = m.get(q)!;
    const last = out[out.length - 1];
    if (last && last.to + 1 === q && last.leaseMs === v.leaseMs && last.count === v.count) last.to = q;
    else out.push({ from: q, to: q, leaseMs: v.leaseMs, count: v.count });
  }
  return out;
}

/** Every sequence number a selection names (ranges may overlap, be unsorted or repeat). */
export function selectedSet(selection: readonly Range[]): Set<number> {
  const s = new Set<number>();
  for (const [a, b] of selection) for (let q = a; q <= b; q++) s.add(q);
  return s;
}

/** Flattens grants/ranges into one entry per sequence number, in list order. */
export function perSeq<T extends { from: number; to: number }>(list: readonly T[]): (Omit<T, 'from' | 'to'> & { seq: number })[] {
  const out: (Omit<T, 'from' | 'to'> & { seq: number })[] = [];
  for (const item of list) {
    const { from, to, ...rest } = item;
    for (let q = from; q <= to; q++) out.push({ ...rest, seq: q });
  }
  return out;
}

export const SETTINGS: SessionSettings = {
  ackTimeoutSeconds: 30,
  maxInFlight: 1000,
  maxDeliveries: 5,
  idleTimeoutSeconds: 86_400,
};

export const T0 = Date.UTC(2025, 0, 1, 0, 0, 0);

export function session(over: Partial<SessionState> = {}, settings: Partial<SessionSettings> = {}): SessionState {
  return {
    sessionId: 's-AAAAAAAAAAAAAAAAAAAAAA',
    owner: 'alice',
    logId: 'app',
    logKey: 'alice#app',
    settings: { ...SETTINGS, ...settings },
    createdMs: T0,
    cursor: 1,
    leases: [],
    dead: [],
    deadPages: [],
    deadSpilled: 0,
    skipped: 0,
    releases: 0,
    expiresMs: T0 + 86_400_000,
    version: 1,
    ...over,
  };
}

/** A random lease list: sorted, non-overlapping, with equal neighbours sometimes (possibly uncoalesced). */
export function randomLeases(r: ReturnType<typeof prng>, now: number, opts: { maxCount?: number; lengths?: number } = {}): Lease[] {
  const out: Lease[] = [];
  const n = r.int(0, 8);
  let pos = r.int(1, 4);
  const leaseChoices = [now - 5000, now - 1, now, now + 1, now + 1000, now + 30_000];
  for (let i = 0; i < n; i++) {
    const len = r.int(1, opts.lengths ?? 6);
    out.push({ from: pos, to: pos + len - 1, leaseMs: r.pick(leaseChoices), count: r.int(1, opts.maxCount ?? 3) });
    pos += len + r.pick([0, 0, 1, 3]);
  }
  return out;
}

export function randomSelection(r: ReturnType<typeof prng>, hi: number): Range[] {
  const out: Range[] = [];
  const n = r.int(0, 4);
  for (let i = 0; i < n; i++) {
    const a = r.int(1, hi);
    const b = Math.min(hi + 3, a + r.int(0, 7));
    out.push([a, b]);
  }
  if (r.next() < 0.3) {
    const q = r.int(1, hi);
    out.push([q, q]); // a single seq, as `seqs` would name it
  }
  return out;
}

/**
 * The model of one receive, one sequence number at a time: dead-letter expired records that
 * used up their deliveries (into `dead`), hand out expired records oldest first, then new
 * records from `cursor` up to `lastSeq` within `maxInFlight`. Mutates `m` and `dead`.
 */
export function modelReceive(
  m: Map<number, SeqState>,
  dead: Map<number, number>,
  o: { now: number; lastSeq: number; cursor: number; maxRecords: number; settings: SessionSettings },
): { want: { seq: number; count: number; leaseMs: number }[]; cursor: number } {
  for (const q of [...m.keys()].sort((a, b) => a - b)) {
    const v = m.get(q)!;
    if (v.leaseMs <= o.now && v.count >= o.settings.maxDeliveries) {
      dead.set(q, v.count);
      m.delete(q);
    }
  }
  const leaseMs = o.now + o.settings.ackTimeoutSeconds * 1000;
  const want: { seq: number; count: number; leaseMs: number }[] = [];
  let budget = o.maxRecords;
  for (const q of [...m.keys()].sort((a, b) => a - b)) {
    const v = m.get(q)!;
    if (budget === 0) break;
    if (v.leaseMs > o.now) continue;
    v.count++;
    v.leaseMs = leaseMs;
    want.push({ seq: q, count: v.count, leaseMs });
    budget--;
  }
  let cursor = o.cursor;
  while (budget > 0 && m.size < o.settings.maxInFlight && cursor <= o.lastSeq) {
    m.set(cursor, { leaseMs, count: 1 });
    want.push({ seq: cursor, count: 1, leaseMs });
    cursor++;
    budget--;
  }
  return { want, cursor };
}
