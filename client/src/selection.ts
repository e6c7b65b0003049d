/** Turns a Selection into request bodies: numbers merged into ranges, at most `max` entries each. */
import type { Range, Selection, Seq } from './types';

/** The service takes at most 10,000 `seqs` and 10,000 `ranges` per request. */
export const MAX_SELECTION_ENTRIES = 10_000;

export interface SelectionBody {
  seqs?: Seq[];
  ranges?: [Seq, Seq][];
}

/** Sorted, de-duplicated runs of consecutive numbers. */
export function toRanges(seqs: readonly Seq[]): [Seq, Seq][] {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b);
  const out: [Seq, Seq][] = [];
  for (const n of sorted) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Zero or more bodies that together name exactly the selected records. */
export function selectionBodies(sel: Selection, max = MAX_SELECTION_ENTRIES): SelectionBody[] {
  if (Array.isArray(sel)) return chunks(toRanges(sel as readonly Seq[]), max).map((ranges) => ({ ranges }));
  const s = sel as { seqs?: readonly Seq[]; ranges?: readonly Range[] };
  const seqChunks = chunks(s.seqs ?? [], max);
  const rangeChunks = chunks(
    (s.ranges ?? []).map((r): [Seq, Seq] => [r[0], r[1]]),
    max,
  );
  const n = Math.max(seqChunks.length, rangeChunks.length);
  const out: SelectionBody[] = [];
  for (let i = 0; i < n; i++) {
    const body: SelectionBody = {};
    if (seqChunks[i]) body.seqs = seqChunks[i]!;
    if (rangeChunks[i]) body.ranges = rangeChunks[i]!;
    out.push(body);
  }
  return out;
}
