/**
 * Sets of sequence numbers kept as sorted, non-overlapping, inclusive ranges.
 *
 * A session's in-flight set is a list of `Lease` ranges: every record in one range was handed
 * out with the same lease expiry and has been delivered the same number of times. Operations
 * split ranges where a request touches part of one and merge neighbours that end up equal,
 * so the list stays as short as the pattern of acks allows.
 */

export type Range = readonly [from: number, to: number];

export interface Lease {
  from: number;
  to: number;
  /** Epoch milliseconds at which the lease ends; at or before `now` the records are redeliverable. */
  leaseMs: number;
  /** How many times the records were handed out. */
  count: number;
}

export interface DeadRange {
  from: number;
  to: number;
  count: number;
}

export const rangeSize = (r: { from: number; to: number }): number => r.to - r.from + 1;

export const countOf = (list: readonly { from: number; to: number }[]): number => list.reduce((n, r) => n + rangeSize(r), 0);

/** Sorts, and merges overlapping or touching ranges. */
export function normalizeRanges(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [from, to] of sorted) {
    const last = out[out.length - 1];
    if (last && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}

/** Merges neighbouring leases that touch and carry the same lease and count. */
export function coalesce<T extends { from: number; to: number }>(list: T[], same: (a: T, b: T) => boolean): T[] {
  const out: T[] = [];
  for (const item of list) {
    const last = out[out.length - 1];
    if (last && last.to + 1 === item.from && same(last, item)) out[out.length - 1] = { ...last, to: item.to };
    else out.push({ ...item });
  }
  return out;
}

const sameLease = (a: Lease, b: Lease): boolean => a.leaseMs === b.leaseMs && a.count === b.count;
const sameDead = (a: DeadRange, b: DeadRange): boolean => a.count === b.count;

export const coalesceLeases = (list: Lease[]): Lease[] => coalesce(list, sameLease);

/**
 * Applies `change` to every part of `leases` that falls inside `selection`. `change` returns
 * the new lease for that part, or null to remove it. Parts outside the selection are kept.
 * Returns the new list and how many records `change` touched (returned non-identical or null).
 */
export function mapSelected(
  leases: readonly Lease[],
  selection: readonly Range[],
  change: (part: Lease) => Lease | null,
): { leases: Lease[]; touched: number } {
  const sel = normalizeRanges(selection);
  const out: Lease[] = [];
  let touched = 0;
  let si = 0;
  for (const lease of leases) {
    let pos = lease.from;
    while (si < sel.length && sel[si]![1] < lease.from) si++;
    let k = si;
    while (pos <= lease.to) {
      const s = sel[k];
      if (!s || s[0] > lease.to) {
        out.push({ ...lease, from: pos, to: lease.to });
        break;
      }
      const selFrom = Math.max(s[0], pos);
      const selTo = Math.min(s[1], lease.to);
      if (selFrom > pos) out.push({ ...lease, from: pos, to: selFrom - 1 });
      const part: Lease = { ...lease, from: selFrom, to: selTo };
      const changed = change(part);
      if (changed !== part) touched += rangeSize(part);
      if (changed) out.push({ ...changed, from: selFrom, to: selTo });
      pos = selTo + 1;
      if (s[1] <= lease.to) k++;
    }
  }
  return { leases: coalesceLeases(out), touched };
}

/** Adds dead ranges to a sorted dead list (they never overlap existing ones). */
export function addDead(dead: readonly DeadRange[], more: readonly DeadRange[]): DeadRange[] {
  const all = [...dead, ...more].sort((a, b) => a.from - b.from);
  return coalesce(all, sameDead);
}

/** Inserts leases into a sorted lease list (callers guarantee no overlap). */
export function insertLeases(leases: readonly Lease[], more: readonly Lease[]): Lease[] {
  return coalesceLeases([...leases, ...more].sort((a, b) => a.from - b.from));
}

/** Turns request `seqs` and `ranges` into one normalized selection. */
export function selectionOf(seqs: readonly number[] = [], ranges: readonly Range[] = []): Range[] {
  return normalizeRanges([...seqs.map((s): Range => [s, s]), ...ranges]);
}
