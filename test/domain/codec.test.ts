import { describe, expect, it } from 'vitest';
import { decodeAckMark, decodeDead, decodeLeases, encodeAckMark, encodeDead, encodeLeases } from '../../lambdas/domain/codec';
import type { DeadRange, Lease } from '../../lambdas/domain/ranges';
import { prng, T0 } from './model';

const TOP = Number.MAX_SAFE_INTEGER; // 2^53 - 1
const H12 = 12 * 3600 * 1000;

/** Bytes of an unsigned LEB128 varint, computed independently of the codec. */
const varintLen = (v: number): number => {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
};

describe('lease list codec', () => {
  it('encodes the empty list as version, n=0, base=0 and decodes it back', () => {
    expect([...encodeLeases([])]).toEqual([1, 0, 0]);
    expect(decodeLeases(encodeLeases([]))).toEqual([]);
  });

  it('decodes missing or empty bytes as the empty list', () => {
    expect(decodeLeases(undefined)).toEqual([]);
    expect(decodeLeases(new Uint8Array(0))).toEqual([]);
  });

  it('encodes one range with the documented layout', () => {
    // version 1, n 1, base 300 (0xAC 0x02), gap 5, len-1 2, delta 0, count 3
    const bytes = encodeLeases([{ from: 5, to: 7, leaseMs: 300, count: 3 }]);
    expect([...bytes]).toEqual([1, 1, 0xac, 0x02, 5, 2, 0, 3]);
    expect(decodeLeases(bytes)).toEqual([{ from: 5, to: 7, leaseMs: 300, count: 3 }]);
  });

  it('writes later ranges relative to the previous range and to the smallest lease', () => {
    const leases: Lease[] = [
      { from: 1, to: 1, leaseMs: 1000, count: 1 },
      { from: 3, to: 4, leaseMs: 900, count: 2 },
    ];
    // base = 900 (0x84 0x07); range 1: gap 1, len-1 0, delta 100, count 1; range 2: gap 2, len-1 1, delta 0, count 2
    expect([...encodeLeases(leases)]).toEqual([1, 2, 0x84, 0x07, 1, 0, 100, 1, 2, 1, 0, 2]);
    expect(decodeLeases(encodeLeases(leases))).toEqual(leases);
  });

  it('round-trips many ranges', () => {
    const r = prng(11);
    for (let c = 0; c < 200; c++) {
      const leases: Lease[] = [];
      let pos = r.int(1, 1000);
      for (let i = r.int(0, 60); i > 0; i--) {
        const len = r.int(1, 20_000);
        leases.push({ from: pos, to: pos + len - 1, leaseMs: T0 + r.int(-H12, 2 * H12), count: r.int(0, 100) });
        pos += len + r.int(0, 5000);
      }
      expect(decodeLeases(encodeLeases(leases))).toEqual(leases);
    }
  });

  it('round-trips sequence numbers near 2^53', () => {
    const leases: Lease[] = [
      { from: 1, to: 1, leaseMs: T0, count: 1 },
      { from: TOP - 1000, to: TOP - 3, leaseMs: T0 + 5, count: 2 },
      { from: TOP - 1, to: TOP, leaseMs: T0 + 1, count: 100 },
    ];
    expect(decodeLeases(encodeLeases(leases))).toEqual(leases);
    const single: Lease[] = [{ from: TOP, to: TOP, leaseMs: T0, count: 1 }];
    const bytes = encodeLeases(single);
    expect(bytes.length).toBe(1 + 1 + varintLen(T0) + 8 + 1 + 1 + 1); // 2^53-1 takes 8 varint bytes
    expect(decodeLeases(bytes)).toEqual(single);
  });

  it('round-trips large lease deltas and lease expiries near 2^53', () => {
    const leases: Lease[] = [
      { from: 10, to: 19, leaseMs: 0, count: 1 },
      { from: 20, to: 29, leaseMs: TOP, count: 2 },
      { from: 40, to: 49, leaseMs: 2 ** 40 + 7, count: 3 },
    ];
    expect(decodeLeases(encodeLeases(leases))).toEqual(leases);
    const ms = [
      { from: 1, to: 1, leaseMs: T0 + 400 * 86_400_000, count: 1 },
      { from: 2, to: 2, leaseMs: T0, count: 1 },
    ];
    expect(decodeLeases(encodeLeases(ms))).toEqual(ms);
  });

  it('rejects values it cannot encode (unsorted or overlapping ranges, negative numbers)', () => {
    expect(() =>
      encodeLeases([
        { from: 5, to: 6, leaseMs: 1, count: 1 },
        { from: 2, to: 3, leaseMs: 1, count: 1 },
      ]),
    ).toThrow(RangeError);
    expect(() => encodeLeases([{ from: 5, to: 4, leaseMs: 1, count: 1 }])).toThrow(RangeError);
    expect(() => encodeLeases([{ from: 1, to: 1, leaseMs: 1, count: -1 }])).toThrow(RangeError);
    expect(() => encodeLeases([{ from: 1.5, to: 2, leaseMs: 1, count: 1 }])).toThrow(RangeError);
  });

  it('rejects truncated input and unknown versions', () => {
    const bytes = encodeLeases([{ from: 5, to: 7, leaseMs: T0, count: 3 }]);
    expect(() => decodeLeases(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => decodeLeases(Uint8Array.from([2, 0, 0]))).toThrow(/version/);
    expect(() => decodeLeases(Uint8Array.from([0x81]))).toThrow(/truncated/); // a varint that never ends
  });
});

describe('dead-letter list codec', () => {
  it('round-trips empty, one and many ranges', () => {
    expect([...encodeDead([])]).toEqual([1, 0]);
    expect(decodeDead(encodeDead([]))).toEqual([]);
    expect(decodeDead(undefined)).toEqual([]);
    const one: DeadRange[] = [{ from: 200, to: 200, count: 5 }];
    // version 1, n 1, gap 200 (0xC8 0x01), len-1 0, count 5
    expect([...encodeDead(one)]).toEqual([1, 1, 0xc8, 0x01, 0, 5]);
    expect(decodeDead(encodeDead(one))).toEqual(one);
    const many: DeadRange[] = [];
    for (let i = 0; i < 500; i++) many.push({ from: 10 * i + 1, to: 10 * i + 1 + (i % 7), count: 1 + (i % 100) });
    expect(decodeDead(encodeDead(many))).toEqual(many);
  });

  it('round-trips sequence numbers near 2^53', () => {
    const d: DeadRange[] = [
      { from: 3, to: 3, count: 1 },
      { from: TOP - 2, to: TOP, count: 100 },
    ];
    expect(decodeDead(encodeDead(d))).toEqual(d);
  });

  it('rejects truncated input and unknown versions', () => {
    const bytes = encodeDead([{ from: 5, to: 7, count: 3 }]);
    expect(() => decodeDead(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/);
    expect(() => decodeDead(Uint8Array.from([9, 0]))).toThrow(/version/);
  });
});

describe('ack mark codec', () => {
  it('writes from-to@atMs and reads it back', () => {
    expect(encodeAckMark({ from: 1, to: 20, atMs: 1732500000000 })).toBe('1-20@1732500000000');
    expect(decodeAckMark('1-20@1732500000000')).toEqual({ from: 1, to: 20, atMs: 1732500000000 });
    expect(decodeAckMark('7-7@0')).toEqual({ from: 7, to: 7, atMs: 0 });
  });

  it('round-trips marks, sequence numbers up to 2^53', () => {
    const r = prng(17);
    const marks = [
      { from: TOP, to: TOP, atMs: T0 },
      { from: 1, to: TOP, atMs: TOP },
    ];
    for (let i = 0; i < 200; i++) {
      const from = r.int(1, 2 ** 40);
      marks.push({ from, to: from + r.int(0, 10_000), atMs: T0 + r.int(-H12, H12) });
    }
    for (const m of marks) {
      const text = encodeAckMark(m);
      expect(text).toBe(`${m.from}-${m.to}@${m.atMs}`);
      expect(decodeAckMark(text)).toEqual(m);
    }
    // distinct marks stay distinct elements of the stored set
    expect(new Set(marks.map(encodeAckMark)).size).toBe(new Set(marks.map((m) => JSON.stringify(m))).size);
  });

  it('rejects malformed text with a RangeError', () => {
    for (const bad of [
      '1-2',
      'a-b@3',
      '',
      '1-2@',
      '-2@3',
      '1@3',
      '1-2-3@4',
      '1.5-2@3',
      '-1-2@3',
      ' 1-2@3',
      '1-2@3 ',
      '1-2@3\n',
      '1-2@3@4',
      '0x1-2@3',
      '1e3-2@3',
      '5-1@3',
      '1-9007199254740993@3',
    ]) {
      expect(() => decodeAckMark(bad), JSON.stringify(bad)).toThrow(RangeError);
    }
  });
});

describe('encoded size bounds (quoted in the README)', () => {
  const N = 10_000; // maxInFlight upper bound

  it('worst out-of-order-ack pattern: 10000 single-record leases, distinct expiries over 12 h, counts up to 100', () => {
    const r = prng(42);
    // every other record acked: in flight are 1, 3, 5, ... 19999
    const expiries = new Set<number>();
    while (expiries.size < N) expiries.add(T0 + r.int(1, H12 - 1));
    const sorted = [...expiries];
    // make sure the spread really is 12 h: the smallest is the base, the largest H12 after it
    sorted[0] = T0;
    sorted[1] = T0 + H12;
    const leases: Lease[] = sorted.map((leaseMs, i) => ({ from: 2 * i + 1, to: 2 * i + 1, leaseMs, count: 1 + (i % 100) }));
    const bytes = encodeLeases(leases);
    console.log(`[codec] 10000 leases, every other record acked, expiries over 12 h: ${bytes.length} bytes`);
    // per range: gap 2 (1 B) + len-1 0 (1 B) + delta < 2^28 (<= 4 B) + count <= 100 (1 B) = at most 7 B
    expect(bytes.length).toBeLessThanOrEqual(1 + varintLen(N) + varintLen(T0) + 7 * N);
    expect(bytes.length).toBeLessThan(80_000);
    expect(decodeLeases(bytes)).toEqual(leases);
  });

  it('adversarial spread: 10000 singleton leases with gaps of 2^30', () => {
    const r = prng(43);
    const leases: Lease[] = [];
    for (let i = 0; i < N; i++) {
      leases.push({ from: 1 + i * (2 ** 30 + 1), to: 1 + i * (2 ** 30 + 1), leaseMs: T0 + r.int(0, H12), count: 1 + (i % 100) });
    }
    leases[0]!.leaseMs = T0;
    leases[1]!.leaseMs = T0 + H12;
    const bytes = encodeLeases(leases);
    console.log(`[codec] 10000 leases with gaps of 2^30 between them: ${bytes.length} bytes`);
    // per range: gap 2^30+1 (5 B) + 1 + 4 + 1 = 11 B
    expect(bytes.length).toBeLessThanOrEqual(1 + varintLen(N) + varintLen(T0) + 11 * N);
    expect(bytes.length).toBeLessThan(150_000);
    expect(decodeLeases(bytes)).toEqual(leases);
  });

  it('old expired leases that no receive picked up cost one more byte per range', () => {
    // An expired lease stays in the list until a receive redelivers it; if none comes for
    // days (acks keep the session alive) the lease delta passes 2^28 ms (3.1 days).
    const leases: Lease[] = [];
    for (let i = 0; i < N; i++) {
      leases.push({ from: 2 * i + 1, to: 2 * i + 1, leaseMs: i === 0 ? T0 - 7 * 86_400_000 : T0 + (i % H12), count: 1 + (i % 100) });
    }
    const bytes = encodeLeases(leases);
    console.log(`[codec] 10000 leases, one expired 7 days before the rest: ${bytes.length} bytes`);
    expect(bytes.length).toBeLessThanOrEqual(1 + varintLen(N) + varintLen(T0) + 8 * N);
    expect(bytes.length).toBeLessThan(90_000);
  });

  it('10000 dead ranges', () => {
    const dense: DeadRange[] = [];
    const spread: DeadRange[] = [];
    for (let i = 0; i < N; i++) {
      dense.push({ from: 2 * i + 1, to: 2 * i + 1, count: 1 + (i % 100) });
      spread.push({ from: 1 + i * (2 ** 30 + 1), to: 1 + i * (2 ** 30 + 1), count: 1 + (i % 100) });
    }
    const d = encodeDead(dense);
    const s = encodeDead(spread);
    console.log(`[codec] 10000 dead ranges: every other record ${d.length} bytes, gaps of 2^30 ${s.length} bytes`);
    expect(d.length).toBeLessThanOrEqual(1 + varintLen(N) + 3 * N);
    expect(d.length).toBeLessThan(31_000);
    expect(s.length).toBeLessThanOrEqual(1 + varintLen(N) + 7 * N);
    expect(s.length).toBeLessThan(71_000);
    expect(decodeDead(d)).toEqual(dense);
    expect(decodeDead(s)).toEqual(spread);
  });
});

describe('mutation survivor: empty (not absent) stored buffers', () => {
  // A binary attribute can come back as a zero-length buffer (an older item, a local store):
  // both lists must read it as empty, not as a truncated list.
  it('decodeDead reads a zero-length buffer as the empty list, like an absent one', () => {
    expect(decodeDead(new Uint8Array(0))).toEqual([]);
    expect(decodeDead(Buffer.alloc(0))).toEqual([]);
    // while a buffer cut short after its version byte is refused
    expect(() => decodeDead(Uint8Array.from([1]))).toThrow(/truncated/);
  });

  it('decodeLeases reads a zero-length Buffer as the empty list too', () => {
    expect(decodeLeases(Buffer.alloc(0))).toEqual([]);
    expect(() => decodeLeases(Uint8Array.from([1]))).toThrow(/truncated/);
  });
});
