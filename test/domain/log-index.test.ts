/** The log index: entries, runs and where records are, against a brute-force per-record model. */
import { describe, expect, it } from 'vitest';
import { chunksIn, decodeEntry, encodeEntry, firstLiveIn, rangeOf, runLast, type IndexEntry, type IndexRun } from '../../lambdas/domain/log-index';

/** A seeded PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const entry = (batchId: string, counts: number[], expiresSec = 100): IndexEntry => ({ batchId, expiresSec, counts });

describe('index entries', () => {
  it('encode as "batchId expiresSec counts..." and decode back', () => {
    const e = entry('AbC-_9', [3, 1, 12], 1_800_000_000);
    expect(encodeEntry(e)).toBe('AbC-_9 1800000000 3 1 12');
    expect(decodeEntry(encodeEntry(e))).toEqual(e);
  });

  it('keep a one-chunk append short (the head holds up to about 32 of them)', () => {
    expect(encodeEntry(entry('x'.repeat(16), [1], 1_800_000_000)).length).toBeLessThanOrEqual(30);
  });
});

describe('runs', () => {
  const run: IndexRun = { first: 11, entries: [entry('a', [2]), entry('b', [3, 4]), entry('c', [1])] };

  it('imply each entry\'s numbers from its position', () => {
    expect(runLast(run)).toBe(20);
    expect(runLast({ first: 5, entries: [] })).toBe(4);
    expect(rangeOf(run, 'a')).toEqual({ firstSeq: 11, lastSeq: 12 });
    expect(rangeOf(run, 'b')).toEqual({ firstSeq: 13, lastSeq: 19 });
    expect(rangeOf(run, 'c')).toEqual({ firstSeq: 20, lastSeq: 20 });
    expect(rangeOf(run, 'z')).toBeUndefined();
  });

  it('name exactly the chunks that hold a range', () => {
    expect(chunksIn(run, 14, 17)).toEqual([
      { batchId: 'b', index: 0, first: 13, count: 3, expiresSec: 100 },
      { batchId: 'b', index: 1, first: 16, count: 4, expiresSec: 100 },
    ]);
    expect(chunksIn(run, 1, 10)).toEqual([]);
    expect(chunksIn(run, 21, 30)).toEqual([]);
    expect(chunksIn(run, 20, 99).map((c) => c.batchId)).toEqual(['c']);
  });

  it('agree with a per-record model on random runs and ranges', () => {
    const rnd = prng(42);
    for (let trial = 0; trial < 200; trial++) {
      const first = 1 + Math.floor(rnd() * 1000);
      const entries = Array.from({ length: 1 + Math.floor(rnd() * 20) }, (_, i) =>
        entry(`b${i}`, Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => 1 + Math.floor(rnd() * 5)), Math.floor(rnd() * 10)),
      );
      const r: IndexRun = { first, entries };
      // The model: every record's batch and chunk, one by one.
      const owner: { batchId: string; index: number; expiresSec: number }[] = [];
      for (const e of entries) e.counts.forEach((c, index) => owner.push(...Array.from({ length: c }, () => ({ batchId: e.batchId, index, expiresSec: e.expiresSec }))));
      expect(runLast(r)).toBe(first + owner.length - 1);
      const from = first - 5 + Math.floor(rnd() * (owner.length + 10));
      const to = from + Math.floor(rnd() * 30);
      const refs = chunksIn(r, from, to);
      const covered = new Set<number>();
      for (const ref of refs) for (let s = ref.first; s < ref.first + ref.count; s++) {
        expect(owner[s - first]).toMatchObject({ batchId: ref.batchId, index: ref.index });
        covered.add(s);
      }
      for (let s = Math.max(from, first); s <= Math.min(to, runLast(r)); s++) expect(covered.has(s)).toBe(true);
      // No chunk named that holds none of the range.
      for (const ref of refs) expect(ref.first <= to && ref.first + ref.count - 1 >= from).toBe(true);
      const nowSec = Math.floor(rnd() * 10);
      const live = owner.findIndex((o) => o.expiresSec > nowSec);
      expect(firstLiveIn(r, nowSec)).toBe(live < 0 ? undefined : first + live);
    }
  });
});
