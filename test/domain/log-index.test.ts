/** The log index: entries, runs and where records are, against a brute-force per-record model. */
import { describe, expect, it } from 'vitest';
import {
  chunksIn,
  decodeEntry,
  encodeEntry,
  expiryMarks,
  firstLiveIn,
  rangeOf,
  runExpiry,
  runLast,
  type ExpiryMark,
  type IndexEntry,
  type IndexRun,
} from '../../lambdas/domain/log-index';

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

  it("imply each entry's numbers from its position", () => {
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
        entry(
          `b${i}`,
          Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => 1 + Math.floor(rnd() * 5)),
          Math.floor(rnd() * 10),
        ),
      );
      const r: IndexRun = { first, entries };
      // The model: every record's batch and chunk, one by one.
      const owner: { batchId: string; index: number; expiresSec: number }[] = [];
      for (const e of entries) {
        for (const [index, c] of e.counts.entries())
          owner.push(...Array.from({ length: c }, () => ({ batchId: e.batchId, index, expiresSec: e.expiresSec })));
      }
      expect(runLast(r)).toBe(first + owner.length - 1);
      const from = first - 5 + Math.floor(rnd() * (owner.length + 10));
      const to = from + Math.floor(rnd() * 30);
      const refs = chunksIn(r, from, to);
      const covered = new Set<number>();
      for (const ref of refs)
        for (let s = ref.first; s < ref.first + ref.count; s++) {
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

describe('expiry marks', () => {
  it('a run expires with its latest entry', () => {
    expect(runExpiry({ first: 1, entries: [entry('a', [1], 50), entry('b', [2], 70), entry('c', [1], 60)] })).toBe(70);
    expect(runExpiry({ first: 1, entries: [] })).toBe(0);
  });

  it("mark only the pages that expire later than every page before them, going on from the head's latest", () => {
    const page = (first: number, ...expiries: number[]): IndexRun => ({
      first,
      entries: expiries.map((x, i) => entry(`p${first}-${i}`, [1], x)),
    });
    const pages = [page(1, 90, 80), page(3, 60), page(4, 95, 10), page(6, 95), page(7, 100)];
    const { marks, latest } = expiryMarks(0, pages);
    expect(marks.map((m) => [m.expiresSec, m.page.first])).toEqual([
      [90, 1],
      [95, 4],
      [100, 7],
    ]);
    expect(latest).toBe(100);
    // Moved in two steps, the second from the latest the first left in the head: the same marks.
    const a = expiryMarks(0, pages.slice(0, 2));
    const b = expiryMarks(a.latest, pages.slice(2));
    expect([...a.marks, ...b.marks]).toEqual(marks);
    expect(b.latest).toBe(100);
    expect(expiryMarks(200, pages)).toEqual({ marks: [], latest: 200 });
  });

  it('the first mark later than now is the page of the first retained record, whatever order expiries come in (random logs, moved by random movers)', () => {
    const rnd = prng(7);
    for (let trial = 0; trial < 300; trial++) {
      // Expiries drift upwards with jitter (appends that took longer, hosts whose clocks are behind), or are wholly random.
      const jitter = rnd() < 0.2 ? 1000 : Math.floor(rnd() * 40);
      const pages: IndexRun[] = [];
      let seq = 1;
      let t = 100;
      for (let p = 0, n = 1 + Math.floor(rnd() * 30); p < n; p++) {
        const entries = Array.from({ length: 1 + Math.floor(rnd() * 4) }, (_, i) => {
          t += Math.floor(rnd() * 5);
          return entry(
            `b${p}-${i}`,
            Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => 1 + Math.floor(rnd() * 4)),
            t + Math.floor(rnd() * jitter),
          );
        });
        const page: IndexRun = { first: seq, entries };
        pages.push(page);
        seq = runLast(page) + 1;
      }
      // Movers take one to eight pages each, each going on from the latest the one before left.
      const marks: ExpiryMark[] = [];
      let latest = 0;
      for (let i = 0; i < pages.length; ) {
        const k = 1 + Math.floor(rnd() * 8);
        const moved = expiryMarks(latest, pages.slice(i, i + k));
        marks.push(...moved.marks);
        latest = moved.latest;
        i += k;
      }
      // Keys rise strictly (one mark per key), and the latest is every page's latest.
      for (let i = 1; i < marks.length; i++) expect(marks[i]!.expiresSec).toBeGreaterThan(marks[i - 1]!.expiresSec);
      expect(latest).toBe(Math.max(...pages.map(runExpiry)));
      // The model: the first record, over every page, whose entry has not expired.
      const records = pages.flatMap((p) => {
        let s = p.first;
        return p.entries.flatMap((e) => e.counts.flatMap((c) => Array.from({ length: c }, () => ({ seq: s++, expiresSec: e.expiresSec }))));
      });
      for (let now = 90; now <= t + jitter + 1; now += 1 + Math.floor(rnd() * (jitter > 100 ? 20 : 3))) {
        const expected = records.find((r) => r.expiresSec > now)?.seq;
        // What the store's query answers: the mark with the least key later than now.
        const mark = marks.find((m) => m.expiresSec > now);
        expect(mark ? firstLiveIn(mark.page, now) : undefined).toBe(expected);
        // And the head alone says when no page holds a retained record.
        expect(latest > now).toBe(expected !== undefined);
      }
    }
  });
});
