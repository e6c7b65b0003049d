import { describe, expect, it } from 'vitest';
import type { LimitsConfig } from '../../lambdas/domain/config';
import { refusalOf, type Refusal } from '../support/refusal';
import {
  decodeSegment,
  encodeAppend,
  MAX_DATA_DEPTH,
  receivedJson,
  SEGMENT_TARGET_BYTES,
  toSegments,
  type EncodedRecord,
  type InputRecord,
  segmentHolding,
} from '../../lambdas/domain/records';
import { prng } from './model';

const LIMITS: LimitsConfig = {
  maxRecordsPerAppend: 500,
  maxRecordBytes: 262_144,
  maxRequestBytes: 1_048_576,
  defaultAckTimeoutSeconds: 30,
};

/** Runs `fn`, expecting a ServiceError; returns it as the caller sees it. */
function apiErrorOf(fn: () => unknown): Refusal {
  try {
    fn();
  } catch (e) {
    return refusalOf(e);
  }
  throw new Error('expected a ServiceError, nothing was thrown');
}

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

describe('encodeAppend', () => {
  it('serializes each record as [data] or [data,key]', () => {
    const out = encodeAppend(
      [{ data: { a: 1, b: [true, null] } }, { data: 'x', key: 'k1' }, { data: 0, key: '' }, { data: null }],
      LIMITS,
      100,
    );
    expect(out).toEqual([
      { line: '[{"a":1,"b":[true,null]}]', dataBytes: 23 },
      { line: '["x","k1"]', dataBytes: 3 },
      { line: '[0,""]', dataBytes: 1 },
      { line: '[null]', dataBytes: 4 },
    ]);
  });

  it('counts UTF-8 bytes of the serialized data, not characters, and not the key', () => {
    const out = encodeAppend([{ data: 'é' }, { data: '😀' }, { data: 'a\nb' }, { data: 1, key: 'x'.repeat(1000) }], LIMITS, 100);
    expect(out.map((r) => r.dataBytes)).toEqual([4, 6, 6, 1]); // "é" = 1+2+1, "😀" = 1+4+1, "a\nb" = 1+1+2+1+1
  });

  it('never puts a raw newline in a line', () => {
    const out = encodeAppend([{ data: { s: 'line1\nline2\r\n' }, key: 'k\ney' }, { data: ['\n', '\u2028'] }], LIMITS, 100);
    for (const r of out) expect(r.line.includes('\n')).toBe(false);
  });

  it('accepts an empty append', () => {
    expect(encodeAppend([], LIMITS, 2)).toEqual([]);
  });

  describe('request size', () => {
    it('accepts a request exactly at maxRequestBytes', () => {
      expect(encodeAppend([{ data: 1 }], LIMITS, 1_048_576)).toHaveLength(1);
    });

    it('answers 413 PayloadTooLarge one byte over', () => {
      const e = apiErrorOf(() => encodeAppend([{ data: 1 }], LIMITS, 1_048_577));
      expect(e.status).toBe(413);
      expect(e.code).toBe('PayloadTooLarge');
      expect(e.message).toMatch(/1048577/);
      expect(e.message).toMatch(/1048576/);
    });

    it('uses the limit from the limits profile', () => {
      const limits = { ...LIMITS, maxRequestBytes: 1024 };
      expect(encodeAppend([{ data: 1 }], limits, 1024)).toHaveLength(1);
      expect(apiErrorOf(() => encodeAppend([{ data: 1 }], limits, 1025))).toMatchObject({ status: 413, code: 'PayloadTooLarge' });
    });
  });

  describe('record count', () => {
    it('accepts exactly maxRecordsPerAppend records', () => {
      const recs: InputRecord[] = Array.from({ length: 500 }, (_, i) => ({ data: i }));
      expect(encodeAppend(recs, LIMITS, 5000)).toHaveLength(500);
    });

    it('answers 400 ValidationError for one record more', () => {
      const recs: InputRecord[] = Array.from({ length: 501 }, (_, i) => ({ data: i }));
      const e = apiErrorOf(() => encodeAppend(recs, LIMITS, 5000));
      expect(e.status).toBe(400);
      expect(e.code).toBe('ValidationError');
      expect(e.message).toMatch(/500/);
      expect(e.message).toMatch(/501/);
    });

    it('uses the limit from the limits profile', () => {
      const limits = { ...LIMITS, maxRecordsPerAppend: 1 };
      expect(encodeAppend([{ data: 1 }], limits, 10)).toHaveLength(1);
      expect(apiErrorOf(() => encodeAppend([{ data: 1 }, { data: 2 }], limits, 10))).toMatchObject({
        status: 400,
        code: 'ValidationError',
      });
    });
  });

  describe('record size', () => {
    it('accepts a record whose serialized data is exactly maxRecordBytes (default 256 KiB)', () => {
      const data = 'x'.repeat(262_144 - 2); // plus the two quotes
      expect(encodeAppend([{ data }], LIMITS, 300_000)[0]!.dataBytes).toBe(262_144);
    });

    it('answers 413 PayloadTooLarge one byte over, naming the record', () => {
      const recs: InputRecord[] = [{ data: 1 }, { data: 2 }, { data: 'x'.repeat(262_144 - 1) }];
      const e = apiErrorOf(() => encodeAppend(recs, LIMITS, 300_000));
      expect(e.status).toBe(413);
      expect(e.code).toBe('PayloadTooLarge');
      expect(e.message).toMatch(/records\[2\]/);
      expect(e.message).toMatch(/262145/);
      expect(e.message).toMatch(/262144/);
    });

    it('counts multi-byte characters in bytes against the limit', () => {
      const limits = { ...LIMITS, maxRecordBytes: 10 };
      expect(encodeAppend([{ data: 'éééé' }], limits, 100)[0]!.dataBytes).toBe(10); // 2 + 4*2
      expect(apiErrorOf(() => encodeAppend([{ data: 'ééééa' }], limits, 100))).toMatchObject({ status: 413, code: 'PayloadTooLarge' });
      expect(encodeAppend([{ data: 'abcdefgh' }], limits, 100)[0]!.dataBytes).toBe(10);
      expect(apiErrorOf(() => encodeAppend([{ data: 'abcdefghi' }], limits, 100))).toMatchObject({ status: 413 });
    });

    it('does not count the key against maxRecordBytes', () => {
      const limits = { ...LIMITS, maxRecordBytes: 3 };
      expect(encodeAppend([{ data: 'a', key: 'k'.repeat(1024) }], limits, 2000)).toHaveLength(1);
    });

    it('measures the text that is stored, not the parsed value serialized again', () => {
      // 1e400 parses to Infinity, which JSON.stringify writes as the 4 bytes of null.
      const limits = { ...LIMITS, maxRecordBytes: 5 };
      expect(encodeAppend([{ data: Infinity, dataJson: '1e400' }], limits, 100)[0]).toEqual({ line: '[1e400]', dataBytes: 5 });
      const e = apiErrorOf(() => encodeAppend([{ data: 1.2345678901234568e22, dataJson: '12345678901234567890123' }], limits, 100));
      expect(e).toMatchObject({ status: 413, code: 'PayloadTooLarge' });
      expect(e.message).toMatch(/has 23 bytes/);
    });
  });

  describe('data as written', () => {
    it('stores dataJson as it is, with the key after it', () => {
      const out = encodeAppend(
        [
          { data: 1.2345678901234568e22, dataJson: '12345678901234567890123' },
          { data: [Infinity], dataJson: '[1e400]', key: 'k' },
          { data: 0, dataJson: '-0' },
          { data: { a: 2 }, dataJson: '{"a":1,"a":2}' },
        ],
        LIMITS,
        100,
      );
      expect(out.map((r) => r.line)).toEqual(['[12345678901234567890123]', '[[1e400],"k"]', '[-0]', '[{"a":1,"a":2}]']);
      // And a receive hands the text out again unchanged.
      const seg = toSegments(out)[0]!;
      const back = decodeSegment(1, seg.text, 1, 4);
      expect(back.map((r) => [r.dataJson, r.key])).toEqual([
        ['12345678901234567890123', undefined],
        ['[1e400]', 'k'],
        ['-0', undefined],
        ['{"a":1,"a":2}', undefined],
      ]);
      expect(receivedJson(back.map((r) => ({ ...r, deliveryCount: 1, leaseExpiresAt: 'T' })))).toContain('"data":12345678901234567890123,');
    });
  });

  describe('nesting depth', () => {
    const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;

    it(`accepts data nested MAX_DATA_DEPTH (${MAX_DATA_DEPTH}) deep`, () => {
      expect(MAX_DATA_DEPTH).toBe(100);
      expect(encodeAppend([{ data: null, dataJson: nested(100) }], LIMITS, 1000)).toHaveLength(1);
      expect(encodeAppend([{ data: null, dataJson: `${'{"a":'.repeat(100)}1${'}'.repeat(100)}` }], LIMITS, 1000)).toHaveLength(1);
    });

    it('answers 400 ValidationError one level deeper, naming the record, its depth and the limit', () => {
      const e = apiErrorOf(() => encodeAppend([{ data: 1 }, { data: null, dataJson: `{"a":${nested(100)}}` }], LIMITS, 1000));
      expect(e).toMatchObject({ status: 400, code: 'ValidationError' });
      expect(e.message).toMatch(/records\[1\]/);
      expect(e.message).toMatch(/nested 101 levels deep/);
      expect(e.message).toMatch(/the limit is 100/);
    });

    it('refuses 5,000 levels without running out of stack, with or without the text', () => {
      const deep = nested(5000);
      expect(apiErrorOf(() => encodeAppend([{ data: null, dataJson: deep }], LIMITS, 20_000)).message).toMatch(
        /records\[0\] has data nested 5000 levels deep/,
      );
      const value = JSON.parse(deep) as unknown;
      expect(apiErrorOf(() => encodeAppend([{ data: value }], LIMITS, 20_000))).toMatchObject({ status: 400, code: 'ValidationError' });
    });

    it('takes the depth the scanner found with the text, when given', () => {
      expect(apiErrorOf(() => encodeAppend([{ data: 1, dataJson: '1', dataDepth: 101 }], LIMITS, 100)).message).toMatch(
        /nested 101 levels/,
      );
      expect(encodeAppend([{ data: null, dataJson: nested(3), dataDepth: 3 }], LIMITS, 100)).toHaveLength(1);
    });

    it('does not count brackets inside strings', () => {
      expect(encodeAppend([{ data: '[['.repeat(1000) }], LIMITS, 5000)).toHaveLength(1);
    });
  });
});

/** Makes encoded records whose lines are exactly `bytes` long (ASCII). */
const linesOf = (sizes: readonly number[]): EncodedRecord[] =>
  encodeAppend(
    sizes.map((n) => ({ data: 'x'.repeat(n - 4) })), // ["xxx"] = n - 4 + 4
    { ...LIMITS, maxRecordBytes: 10_000_000, maxRecordsPerAppend: 1_000_000 },
    0,
  );

describe('toSegments', () => {
  it('SEGMENT_TARGET_BYTES is 16 KiB', () => {
    expect(SEGMENT_TARGET_BYTES).toBe(16_384);
  });

  it('returns no segments for no records', () => {
    expect(toSegments([])).toEqual([]);
  });

  it('puts a small append in one segment with newline-separated lines', () => {
    const recs = encodeAppend([{ data: 1 }, { data: 'two', key: 'k' }, { data: [3] }], LIMITS, 100);
    expect(toSegments(recs)).toEqual([{ offset: 0, count: 3, text: '[1]\n["two","k"]\n[[3]]' }]);
  });

  it('packs 100-byte records 162 to a segment (162 * 101 <= 16384 < 163 * 101)', () => {
    const recs = linesOf(Array.from({ length: 1000 }, () => 100));
    expect(recs[0]!.line).toHaveLength(100);
    const segs = toSegments(recs);
    expect(segs.map((s) => [s.offset, s.count])).toEqual([
      [0, 162],
      [162, 162],
      [324, 162],
      [486, 162],
      [648, 162],
      [810, 162],
      [972, 28],
    ]);
    expect(utf8(segs[0]!.text)).toBe(162 * 101 - 1);
  });

  it('measures bytes, not characters', () => {
    // each line is "é"*2000 in quotes and brackets: 4004 bytes but 2004 characters
    const recs = encodeAppend(
      Array.from({ length: 10 }, () => ({ data: 'é'.repeat(2000) })),
      LIMITS,
      0,
    );
    expect(utf8(recs[0]!.line)).toBe(4004);
    expect(toSegments(recs).map((s) => s.count)).toEqual([4, 4, 2]);
  });

  it('gives a record larger than the target a segment of its own', () => {
    const segs = toSegments(linesOf([100, 20_000, 100, 100, 30_000]));
    expect(segs.map((s) => [s.offset, s.count])).toEqual([
      [0, 1],
      [1, 1],
      [2, 2],
      [4, 1],
    ]);
    expect(utf8(segs[1]!.text)).toBe(20_000);
  });

  it('fills a segment to exactly the target', () => {
    // 2 lines of 8191 bytes: 8191 + 1 + 8191 + 1 = 16384 counted, text 16383 bytes
    const segs = toSegments(linesOf([8191, 8191, 1000]));
    expect(segs.map((s) => s.count)).toEqual([2, 1]);
    // one byte more and they no longer fit together
    expect(toSegments(linesOf([8192, 8191])).map((s) => s.count)).toEqual([1, 1]);
  });

  it('random appends: every record once, in order; segments within the target and near it', () => {
    const r = prng(77);
    for (let c = 0; c < 200; c++) {
      const sizes = Array.from({ length: r.int(1, 120) }, () =>
        r.next() < 0.05 ? r.int(16_000, 40_000) : r.next() < 0.5 ? r.int(4, 200) : r.int(200, 6000),
      );
      const recs = linesOf(sizes);
      const segs = toSegments(recs);
      const label = JSON.stringify({ c, sizes });
      // coverage and order
      let next = 0;
      for (const s of segs) {
        expect(s.offset, label).toBe(next);
        expect(s.count, label).toBeGreaterThanOrEqual(1);
        expect(s.text, label).toBe(
          recs
            .slice(s.offset, s.offset + s.count)
            .map((x) => x.line)
            .join('\n'),
        );
        next += s.count;
      }
      expect(next, label).toBe(recs.length);
      // sizes
      for (let i = 0; i < segs.length; i++) {
        const s = segs[i]!;
        const bytes = utf8(s.text);
        if (s.count > 1) expect(bytes, label).toBeLessThanOrEqual(SEGMENT_TARGET_BYTES);
        else expect(bytes, label).toBe(sizes[s.offset]);
        const following = segs[i + 1];
        if (following) {
          // the segment was cut only because the next record did not fit
          expect(bytes + 1 + sizes[following.offset]! + 1, label).toBeGreaterThan(SEGMENT_TARGET_BYTES);
        }
      }
    }
  });
});

describe('decodeSegment', () => {
  const inputs: InputRecord[] = [
    { data: { nested: { deep: [1, { x: [null, true, false] }], empty: {}, arr: [] } }, key: 'order-1' },
    { data: 'unicode: é ü 漢字 😀 \u2028 \u2029' },
    { data: 'new\nlines\r\nand "quotes" and \\ backslashes' },
    { data: 1.5e300, key: '' },
    { data: -42 },
    { data: null, key: 'key with\nnewline and 😀' },
    { data: '' },
    { data: [[], [[]], 0, -0.25] },
    { data: '\ud800 lone surrogate' },
    { data: false },
  ];
  const recs = encodeAppend(inputs, LIMITS, 0);
  const segs = toSegments(recs);
  const FIRST = 1000;

  it('the fixture fits one segment', () => {
    expect(segs).toHaveLength(1);
  });

  it('round-trips data and keys with sequence numbers from the segment start', () => {
    const out = decodeSegment(FIRST, segs[0]!.text, FIRST, FIRST + inputs.length - 1);
    expect(out.map((r) => r.seq)).toEqual(inputs.map((_, i) => FIRST + i));
    out.forEach((rec, i) => {
      // data is handed on as the text it was appended as, never parsed and serialized again
      expect(rec.dataJson).toBe(JSON.stringify(inputs[i]!.data));
      expect(JSON.parse(rec.dataJson)).toEqual(inputs[i]!.data);
      if (inputs[i]!.key === undefined) expect('key' in rec).toBe(false);
      else expect(rec.key).toBe(inputs[i]!.key);
    });
  });

  it('reports the same data bytes that encodeAppend measured', () => {
    const out = decodeSegment(FIRST, segs[0]!.text, FIRST, FIRST + inputs.length - 1);
    expect(out.map((r) => r.dataBytes)).toEqual(recs.map((r) => r.dataBytes));
    expect(out[4]!.dataBytes).toBe(3); // -42
    expect(out[9]!.dataBytes).toBe(5); // false
  });

  it('clips to [from, to] within the segment', () => {
    const text = segs[0]!.text; // records 1000..1009
    const seqs = (from: number, to: number): number[] => decodeSegment(FIRST, text, from, to).map((r) => r.seq);
    expect(seqs(1002, 1004)).toEqual([1002, 1003, 1004]);
    expect(seqs(990, 1001)).toEqual([1000, 1001]);
    expect(seqs(1008, 2000)).toEqual([1008, 1009]);
    expect(seqs(0, Number.MAX_SAFE_INTEGER)).toEqual(Array.from({ length: 10 }, (_, i) => 1000 + i));
    expect(seqs(1005, 1005)).toEqual([1005]);
    expect(seqs(1010, 1020)).toEqual([]);
    expect(seqs(900, 999)).toEqual([]);
    expect(seqs(1005, 1004)).toEqual([]);
    expect(decodeSegment(FIRST, text, 1003, 1003)[0]!.dataJson).toBe('1.5e+300');
    expect(decodeSegment(FIRST, text, 1003, 1003)[0]!.key).toBe('');
  });

  it('decodes each segment of a multi-segment append at its own offset', () => {
    const many: InputRecord[] = Array.from({ length: 300 }, (_, i) => ({ data: { i, pad: 'p'.repeat(200) }, key: `k${i}` }));
    const parts = toSegments(encodeAppend(many, LIMITS, 0));
    expect(parts.length).toBeGreaterThan(1);
    const base = 51;
    const all = parts.flatMap((p) => decodeSegment(base + p.offset, p.text, 0, Number.MAX_SAFE_INTEGER));
    expect(all.map((r) => r.seq)).toEqual(many.map((_, i) => base + i));
    expect(all.map((r) => JSON.parse(r.dataJson) as unknown)).toEqual(many.map((m) => m.data));
    expect(all.map((r) => r.key)).toEqual(many.map((m) => m.key));
  });
});

describe('decodeSegment: keys and string data', () => {
  // A line ends in a string both when it has a key and when its data is a string: every mix.
  const tricky: InputRecord[] = [
    { data: 'ends in a quote"' },
    { data: 'x', key: 'y' },
    { data: '",\\"', key: '",\\"' },
    { data: ['a', 'b'] },
    { data: ['a', 'b'], key: 'b' },
    { data: { k: '"]' }, key: '\\' },
    { data: '', key: '' },
    { data: 'trailing backslash \\' },
  ];
  it('slices exactly the data text and parses exactly the key', () => {
    const segs = toSegments(encodeAppend(tricky, LIMITS, 0));
    const out = decodeSegment(1, segs[0]!.text, 1, tricky.length);
    expect(out.map((r) => r.dataJson)).toEqual(tricky.map((t) => JSON.stringify(t.data)));
    expect(out.map((r) => r.key)).toEqual(tricky.map((t) => t.key));
    expect(out.map((r) => 'key' in r)).toEqual(tricky.map((t) => t.key !== undefined));
  });
});

describe('receivedJson', () => {
  it('is the JSON of the records with data parsed, field for field and byte for byte', () => {
    const inputs: InputRecord[] = [
      { data: { nested: [1, { x: null }], s: 'é 漢字 😀 \u2028' }, key: 'order-1' },
      { data: 'new\nline "quoted"' },
      { data: -0.25, key: '' },
      { data: null },
      { data: '\ud800 lone surrogate', key: 'k\u0000' },
    ];
    const decoded = decodeSegment(7, toSegments(encodeAppend(inputs, LIMITS, 0))[0]!.text, 7, 11);
    const lease = '2026-12-04T18:00:00.000Z';
    const received = decoded.map((r, i) => ({
      seq: r.seq,
      dataJson: r.dataJson,
      deliveryCount: i + 1,
      leaseExpiresAt: lease,
      ...(r.key === undefined ? {} : { key: r.key }),
    }));
    const expected = inputs.map((r, i) => ({
      seq: 7 + i,
      data: r.data,
      deliveryCount: i + 1,
      leaseExpiresAt: lease,
      ...(r.key === undefined ? {} : { key: r.key }),
    }));
    expect(receivedJson(received)).toBe(JSON.stringify(expected));
    expect(JSON.parse(receivedJson(received))).toEqual(expected);
    expect(receivedJson([])).toBe('[]');
  });
});

describe('segmentHolding', () => {
  const starts = [1, 146, 291, 300, 1000];
  it('finds the largest start at or below seq, and 0 before the first', () => {
    expect(segmentHolding(starts, 1)).toBe(1);
    expect(segmentHolding(starts, 145)).toBe(1);
    expect(segmentHolding(starts, 146)).toBe(146);
    expect(segmentHolding(starts, 299)).toBe(291);
    expect(segmentHolding(starts, 300)).toBe(300);
    expect(segmentHolding(starts, 999)).toBe(300);
    expect(segmentHolding(starts, 10 ** 12)).toBe(1000);
    expect(segmentHolding([50, 60], 49)).toBe(0);
    expect(segmentHolding([], 5)).toBe(0);
  });
  it('agrees with a linear scan on every seq of 1,024 starts', () => {
    const many = Array.from({ length: 1024 }, (_, i) => 1 + 7 * i + (i % 5));
    for (let seq = 0; seq <= many[many.length - 1]! + 3; seq++) {
      const linear = [...many].reverse().find((x) => x <= seq) ?? 0;
      expect(segmentHolding(many, seq)).toBe(linear);
    }
  });
});
