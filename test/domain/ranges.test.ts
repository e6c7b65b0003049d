import { describe, expect, it } from 'vitest';
import {
  addDead,
  coalesce,
  coalesceLeases,
  countOf,
  insertLeases,
  mapSelected,
  normalizeRanges,
  rangeSize,
  selectionOf,
  type Lease,
  type Range,
} from '../../lambdas/domain/ranges';
import { fromModel, prng, randomLeases, randomSelection, selectedSet, toModel } from './model';

const L = (from: number, to: number, leaseMs: number, count: number): Lease => ({ from, to, leaseMs, count });

describe('rangeSize / countOf', () => {
  it('counts inclusive ranges', () => {
    expect(rangeSize({ from: 5, to: 5 })).toBe(1);
    expect(rangeSize({ from: 1, to: 10 })).toBe(10);
    expect(countOf([])).toBe(0);
    expect(
      countOf([
        { from: 1, to: 3 },
        { from: 7, to: 7 },
        { from: 10, to: 19 },
      ]),
    ).toBe(14);
  });

  it('is exact near 2^53', () => {
    const top = Number.MAX_SAFE_INTEGER;
    expect(countOf([{ from: top - 9, to: top }])).toBe(10);
  });
});

describe('normalizeRanges', () => {
  it('returns [] for no ranges', () => {
    expect(normalizeRanges([])).toEqual([]);
  });

  it('sorts', () => {
    expect(
      normalizeRanges([
        [10, 12],
        [1, 2],
        [5, 6],
      ]),
    ).toEqual([
      [1, 2],
      [5, 6],
      [10, 12],
    ]);
  });

  it('merges overlapping, touching, contained and duplicate ranges', () => {
    expect(
      normalizeRanges([
        [1, 5],
        [3, 8],
      ]),
    ).toEqual([[1, 8]]);
    expect(
      normalizeRanges([
        [1, 5],
        [6, 8],
      ]),
    ).toEqual([[1, 8]]); // touching
    expect(
      normalizeRanges([
        [1, 5],
        [7, 8],
      ]),
    ).toEqual([
      [1, 5],
      [7, 8],
    ]); // gap of one
    expect(
      normalizeRanges([
        [1, 10],
        [3, 4],
      ]),
    ).toEqual([[1, 10]]); // contained
    expect(
      normalizeRanges([
        [4, 4],
        [4, 4],
        [4, 4],
      ]),
    ).toEqual([[4, 4]]);
    expect(
      normalizeRanges([
        [9, 9],
        [1, 3],
        [4, 4],
        [8, 8],
        [2, 6],
      ]),
    ).toEqual([
      [1, 6],
      [8, 9],
    ]);
  });

  it('does not mutate its input', () => {
    const input: Range[] = [
      [5, 6],
      [1, 2],
    ];
    const copy = JSON.parse(JSON.stringify(input)) as Range[];
    normalizeRanges(input);
    expect(input).toEqual(copy);
  });

  it('matches a brute-force set model on random input', () => {
    const r = prng(7);
    for (let c = 0; c < 300; c++) {
      const input: Range[] = [];
      for (let i = r.int(0, 6); i > 0; i--) {
        const a = r.int(1, 40);
        input.push([a, a + r.int(0, 6)]);
      }
      const set = selectedSet(input);
      const expected: Range[] = [];
      for (const q of [...set].sort((a, b) => a - b)) {
        const last = expected[expected.length - 1];
        if (last && last[1] + 1 === q) expected[expected.length - 1] = [last[0], q];
        else expected.push([q, q]);
      }
      expect(normalizeRanges(input)).toEqual(expected);
    }
  });
});

describe('selectionOf', () => {
  it('is empty by default', () => {
    expect(selectionOf()).toEqual([]);
    expect(selectionOf([], [])).toEqual([]);
  });

  it('merges seqs and ranges into one normalized selection', () => {
    expect(
      selectionOf(
        [7, 3, 4, 3],
        [
          [10, 12],
          [5, 5],
          [20, 21],
        ],
      ),
    ).toEqual([
      [3, 5],
      [7, 7],
      [10, 12],
      [20, 21],
    ]);
    expect(selectionOf([2], [[1, 3]])).toEqual([[1, 3]]);
    expect(selectionOf([1, 2, 3, 4])).toEqual([[1, 4]]);
    expect(
      selectionOf(undefined, [
        [8, 9],
        [1, 1],
      ]),
    ).toEqual([
      [1, 1],
      [8, 9],
    ]);
  });
});

describe('coalesce / coalesceLeases', () => {
  it('merges touching neighbours that carry the same lease and count', () => {
    expect(coalesceLeases([L(1, 3, 100, 1), L(4, 6, 100, 1), L(7, 7, 100, 1)])).toEqual([L(1, 7, 100, 1)]);
  });

  it('keeps neighbours apart when lease, count or adjacency differ', () => {
    const list = [L(1, 3, 100, 1), L(4, 6, 101, 1), L(7, 8, 101, 2), L(10, 11, 101, 2)];
    expect(coalesceLeases(list)).toEqual(list);
  });

  it('merges only runs, not equal leases separated by a different one', () => {
    expect(coalesceLeases([L(1, 1, 5, 1), L(2, 2, 6, 1), L(3, 3, 5, 1), L(4, 4, 5, 1)])).toEqual([
      L(1, 1, 5, 1),
      L(2, 2, 6, 1),
      L(3, 4, 5, 1),
    ]);
  });

  it('does not mutate its input items', () => {
    const a = L(1, 3, 100, 1);
    const b = L(4, 6, 100, 1);
    coalesceLeases([a, b]);
    expect(a).toEqual(L(1, 3, 100, 1));
    expect(b).toEqual(L(4, 6, 100, 1));
  });

  it('uses the given predicate', () => {
    const items = [
      { from: 1, to: 2, tag: 'x' },
      { from: 3, to: 4, tag: 'y' },
      { from: 5, to: 9, tag: 'y' },
    ];
    expect(coalesce(items, () => true)).toEqual([{ from: 1, to: 9, tag: 'x' }]);
    expect(coalesce(items, (a, b) => a.tag === b.tag)).toEqual([
      { from: 1, to: 2, tag: 'x' },
      { from: 3, to: 9, tag: 'y' },
    ]);
    expect(coalesce([], () => true)).toEqual([]);
  });
});

describe('addDead', () => {
  it('inserts in order and merges touching ranges of equal count', () => {
    const dead = [
      { from: 1, to: 2, count: 5 },
      { from: 10, to: 12, count: 5 },
    ];
    expect(
      addDead(dead, [
        { from: 3, to: 4, count: 5 },
        { from: 6, to: 6, count: 3 },
        { from: 7, to: 9, count: 5 },
      ]),
    ).toEqual([
      { from: 1, to: 4, count: 5 },
      { from: 6, to: 6, count: 3 },
      { from: 7, to: 12, count: 5 },
    ]);
  });

  it('keeps touching ranges of different count apart', () => {
    expect(addDead([{ from: 1, to: 1, count: 2 }], [{ from: 2, to: 2, count: 3 }])).toEqual([
      { from: 1, to: 1, count: 2 },
      { from: 2, to: 2, count: 3 },
    ]);
  });

  it('handles empty lists and leaves its inputs alone', () => {
    const d = [{ from: 4, to: 4, count: 1 }];
    expect(addDead([], [])).toEqual([]);
    expect(addDead(d, [])).toEqual(d);
    expect(addDead([], d)).toEqual(d);
    addDead(d, [{ from: 5, to: 5, count: 1 }]);
    expect(d).toEqual([{ from: 4, to: 4, count: 1 }]);
  });
});

describe('insertLeases', () => {
  it('inserts in sequence order and merges with equal neighbours', () => {
    const leases = [L(1, 2, 500, 1), L(10, 12, 900, 2)];
    expect(insertLeases(leases, [L(13, 20, 900, 2), L(3, 4, 500, 1), L(6, 6, 500, 1)])).toEqual([
      L(1, 4, 500, 1),
      L(6, 6, 500, 1),
      L(10, 20, 900, 2),
    ]);
  });

  it('does not merge different leases', () => {
    expect(insertLeases([L(1, 2, 500, 1)], [L(3, 4, 500, 2)])).toEqual([L(1, 2, 500, 1), L(3, 4, 500, 2)]);
    expect(insertLeases([], [])).toEqual([]);
  });
});

describe('mapSelected', () => {
  const remove = (): null => null;
  const bump = (p: Lease): Lease => ({ ...p, count: p.count + 10 });

  it('selection covering none of a lease keeps it and touches nothing', () => {
    const leases = [L(5, 9, 100, 1)];
    expect(mapSelected(leases, [], remove)).toEqual({ leases: [L(5, 9, 100, 1)], touched: 0 });
    expect(mapSelected(leases, [[1, 4]], remove)).toEqual({ leases: [L(5, 9, 100, 1)], touched: 0 });
    expect(mapSelected(leases, [[10, 20]], remove)).toEqual({ leases: [L(5, 9, 100, 1)], touched: 0 });
    expect(mapSelected([], [[1, 100]], remove)).toEqual({ leases: [], touched: 0 });
  });

  it('selection in a gap between leases touches nothing', () => {
    const leases = [L(1, 3, 100, 1), L(8, 9, 100, 1)];
    expect(mapSelected(leases, [[4, 7]], remove)).toEqual({ leases, touched: 0 });
  });

  it('selection covering all of a lease', () => {
    expect(mapSelected([L(5, 9, 100, 1)], [[5, 9]], remove)).toEqual({ leases: [], touched: 5 });
    expect(mapSelected([L(5, 9, 100, 1)], [[1, 20]], remove)).toEqual({ leases: [], touched: 5 });
    expect(mapSelected([L(5, 9, 100, 1)], [[5, 9]], bump)).toEqual({ leases: [L(5, 9, 100, 11)], touched: 5 });
  });

  it('selection covering the start, the middle or the end of a lease splits it', () => {
    const lease = [L(5, 9, 100, 1)];
    expect(mapSelected(lease, [[3, 6]], remove)).toEqual({ leases: [L(7, 9, 100, 1)], touched: 2 });
    expect(mapSelected(lease, [[7, 7]], remove)).toEqual({ leases: [L(5, 6, 100, 1), L(8, 9, 100, 1)], touched: 1 });
    expect(mapSelected(lease, [[8, 12]], remove)).toEqual({ leases: [L(5, 7, 100, 1)], touched: 2 });
    expect(mapSelected(lease, [[6, 8]], bump)).toEqual({
      leases: [L(5, 5, 100, 1), L(6, 8, 100, 11), L(9, 9, 100, 1)],
      touched: 3,
    });
  });

  it('selections touching lease boundaries exactly', () => {
    const lease = [L(5, 9, 100, 1)];
    expect(mapSelected(lease, [[5, 5]], remove)).toEqual({ leases: [L(6, 9, 100, 1)], touched: 1 });
    expect(mapSelected(lease, [[9, 9]], remove)).toEqual({ leases: [L(5, 8, 100, 1)], touched: 1 });
    expect(mapSelected(lease, [[4, 4]], remove)).toEqual({ leases: [L(5, 9, 100, 1)], touched: 0 });
    expect(mapSelected(lease, [[10, 10]], remove)).toEqual({ leases: [L(5, 9, 100, 1)], touched: 0 });
    expect(
      mapSelected(
        lease,
        [
          [4, 5],
          [9, 10],
        ],
        remove,
      ),
    ).toEqual({ leases: [L(6, 8, 100, 1)], touched: 2 });
  });

  it('several selection ranges inside one lease', () => {
    const lease = [L(1, 20, 100, 2)];
    expect(
      mapSelected(
        lease,
        [
          [3, 4],
          [8, 8],
          [15, 17],
        ],
        remove,
      ),
    ).toEqual({
      leases: [L(1, 2, 100, 2), L(5, 7, 100, 2), L(9, 14, 100, 2), L(18, 20, 100, 2)],
      touched: 6,
    });
    // unsorted and overlapping selections are normalized first: no double counting
    expect(
      mapSelected(
        lease,
        [
          [15, 17],
          [3, 4],
          [16, 17],
          [4, 4],
        ],
        remove,
      ),
    ).toEqual({
      leases: [L(1, 2, 100, 2), L(5, 14, 100, 2), L(18, 20, 100, 2)],
      touched: 5,
    });
  });

  it('one selection range spanning several leases and the gaps between them', () => {
    const leases = [L(1, 5, 100, 1), L(8, 10, 200, 2), L(11, 20, 300, 3)];
    expect(mapSelected(leases, [[3, 12]], remove)).toEqual({
      leases: [L(1, 2, 100, 1), L(13, 20, 300, 3)],
      touched: 3 + 3 + 2,
    });
  });

  it('several selection ranges across several leases', () => {
    const leases = [L(1, 5, 100, 1), L(8, 10, 200, 2), L(11, 20, 300, 3), L(30, 30, 400, 1)];
    const out = mapSelected(
      leases,
      [
        [2, 2],
        [4, 9],
        [12, 12],
        [19, 31],
      ],
      bump,
    );
    expect(out).toEqual({
      leases: [
        L(1, 1, 100, 1),
        L(2, 2, 100, 11),
        L(3, 3, 100, 1),
        L(4, 5, 100, 11),
        L(8, 9, 200, 12),
        L(10, 10, 200, 2),
        L(11, 11, 300, 3),
        L(12, 12, 300, 13),
        L(13, 18, 300, 3),
        L(19, 20, 300, 13),
        L(30, 30, 400, 11),
      ],
      touched: 1 + 2 + 2 + 1 + 2 + 1,
    });
  });

  it('merges neighbours that become equal after the change', () => {
    // middle lease becomes equal to both neighbours: one range results
    const leases = [L(1, 3, 500, 2), L(4, 6, 100, 1), L(7, 9, 500, 2)];
    const out = mapSelected(leases, [[4, 6]], (p) => ({ ...p, leaseMs: 500, count: 2 }));
    expect(out).toEqual({ leases: [L(1, 9, 500, 2)], touched: 3 });
  });

  it('merges the halves of a lease when the change restores them', () => {
    const leases = [L(1, 3, 500, 2), L(4, 4, 100, 1), L(5, 9, 500, 2)];
    const out = mapSelected(leases, [[4, 4]], () => L(4, 4, 500, 2));
    expect(out).toEqual({ leases: [L(1, 9, 500, 2)], touched: 1 });
  });

  it('counts only parts the change returned non-identical or null', () => {
    const leases = [L(1, 4, 100, 1), L(5, 8, 200, 1)];
    const out = mapSelected(leases, [[1, 8]], (p) => (p.leaseMs === 200 ? null : p));
    expect(out).toEqual({ leases: [L(1, 4, 100, 1)], touched: 4 });
    // a fresh but equal object counts as touched
    expect(mapSelected(leases, [[1, 8]], (p) => ({ ...p })).touched).toBe(8);
    expect(mapSelected(leases, [[1, 8]], (p) => p).touched).toBe(0);
  });

  it('hands the change each selected part with the lease fields of its range', () => {
    const seen: Lease[] = [];
    const leases = [L(1, 5, 100, 1), L(8, 10, 200, 2)];
    mapSelected(
      leases,
      [
        [2, 3],
        [5, 9],
      ],
      (p) => {
        seen.push({ ...p });
        return p;
      },
    );
    expect(seen).toEqual([L(2, 3, 100, 1), L(5, 5, 100, 1), L(8, 9, 200, 2)]);
  });

  it('ignores from/to the change returns: the part keeps its range', () => {
    const out = mapSelected([L(1, 5, 100, 1)], [[2, 3]], (p) => ({ ...p, from: 99, to: 200, count: 7 }));
    expect(out.leases).toEqual([L(1, 1, 100, 1), L(2, 3, 100, 7), L(4, 5, 100, 1)]);
  });

  it('does not mutate the input leases', () => {
    const leases = [L(1, 5, 100, 1), L(6, 9, 100, 2)];
    const before = JSON.parse(JSON.stringify(leases)) as Lease[];
    mapSelected(leases, [[1, 9]], (p) => ({ ...p, count: 9 }));
    mapSelected(leases, [[3, 7]], () => null);
    expect(leases).toEqual(before);
  });

  it('works with sequence numbers near 2^53', () => {
    const top = Number.MAX_SAFE_INTEGER;
    const out = mapSelected(
      [L(top - 9, top, 100, 1)],
      [
        [top - 5, top - 4],
        [top, top],
      ],
      () => null,
    );
    expect(out).toEqual({ leases: [L(top - 9, top - 6, 100, 1), L(top - 3, top - 1, 100, 1)], touched: 3 });
  });

  describe('randomized, against a per-sequence-number model', () => {
    const NOW = 1_000_000;
    const CASES = 400;

    it('ack (remove) matches the model', () => {
      const r = prng(1);
      for (let c = 0; c < CASES; c++) {
        const leases = randomLeases(r, NOW);
        const hi = leases.length ? leases[leases.length - 1]!.to + 2 : 10;
        const sel = randomSelection(r, hi);
        const model = toModel(leases);
        let touched = 0;
        for (const q of selectedSet(sel)) if (model.delete(q)) touched++;
        const got = mapSelected(leases, sel, () => null);
        expect(got, JSON.stringify({ c, leases, sel })).toEqual({ leases: fromModel(model), touched });
      }
    });

    it('nack (live leases end at now + delay) matches the model', () => {
      const r = prng(2);
      for (let c = 0; c < CASES; c++) {
        const leases = randomLeases(r, NOW);
        const hi = leases.length ? leases[leases.length - 1]!.to + 2 : 10;
        const sel = randomSelection(r, hi);
        const until = NOW + r.pick([0, 1, 1000, 30_000]);
        const model = toModel(leases);
        let touched = 0;
        for (const q of selectedSet(sel)) {
          const v = model.get(q);
          if (v && v.leaseMs > NOW) {
            v.leaseMs = until;
            touched++;
          }
        }
        const got = mapSelected(leases, sel, (p) => (p.leaseMs > NOW ? { ...p, leaseMs: until } : p));
        expect(got, JSON.stringify({ c, leases, sel, until })).toEqual({ leases: fromModel(model), touched });
      }
    });

    it('extend (live leases to at least until, never shorter) matches the model', () => {
      const r = prng(3);
      for (let c = 0; c < CASES; c++) {
        const leases = randomLeases(r, NOW);
        const hi = leases.length ? leases[leases.length - 1]!.to + 2 : 10;
        const sel = randomSelection(r, hi);
        const until = NOW + r.pick([1, 1000, 5000]);
        const model = toModel(leases);
        let touched = 0;
        for (const q of selectedSet(sel)) {
          const v = model.get(q);
          if (v && v.leaseMs > NOW) {
            v.leaseMs = Math.max(v.leaseMs, until);
            touched++;
          }
        }
        const got = mapSelected(leases, sel, (p) => (p.leaseMs <= NOW ? p : { ...p, leaseMs: Math.max(p.leaseMs, until) }));
        expect(got, JSON.stringify({ c, leases, sel, until })).toEqual({ leases: fromModel(model), touched });
      }
    });

    it('output is always sorted, non-overlapping and fully coalesced', () => {
      const r = prng(4);
      for (let c = 0; c < CASES; c++) {
        const leases = randomLeases(r, NOW);
        const hi = leases.length ? leases[leases.length - 1]!.to + 2 : 10;
        const sel = randomSelection(r, hi);
        const { leases: out } = mapSelected(leases, sel, (p) => (r.next() < 0.5 ? null : { ...p, count: p.count % 2 }));
        for (let i = 0; i < out.length; i++) {
          const l = out[i]!;
          expect(l.from).toBeLessThanOrEqual(l.to);
          const prev = out[i - 1];
          if (prev) {
            expect(prev.to).toBeLessThan(l.from);
            const mergeable = prev.to + 1 === l.from && prev.leaseMs === l.leaseMs && prev.count === l.count;
            expect(mergeable).toBe(false);
          }
        }
      }
    });
  });
});
