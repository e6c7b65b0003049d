/**
 * Compact binary encoding of a session's lease and dead-letter lists, stored as one DynamoDB
 * binary attribute each. Every number is an unsigned LEB128 varint and every range is written
 * relative to the one before it, so a typical range costs 4-7 bytes:
 *
 *   leases: version(1) n base  then per range: gap len-1 (leaseMs-base) count
 *   dead:   version(1) n       then per range: gap len-1 count
 *
 * where gap = from - previous `to` (the first range's previous `to` is 0) and base is the
 * smallest lease expiry in the list. Bytes per range: gap 1-8 (any 53-bit value; 1 while
 * in-flight records are close together), len-1 1-2 (ranges under 16384 records), lease
 * delta 1-4 while leases are within 3.1 days of each other (5 beyond: an expired lease that
 * no receive has picked up can sit far behind live ones), count 1. Measured (test/domain/
 * codec.test.ts) for 10,000 single-record ranges: about 70 KB with a distinct lease on
 * every range, about 110 KB with gaps of 2^30 between them; 48 KB as real receives
 * store them (test/integration/bounds.test.ts).
 */
import type { DeadRange, Lease } from './ranges';
import type { AckMark } from './session';

const VERSION = 1;

class Writer {
  private bytes: number[] = [];
  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`cannot encode ${value}`);
    let v = value;
    while (v >= 0x80) {
      this.bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.bytes.push(v);
  }
  done(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

class Reader {
  private pos = 0;
  constructor(private readonly bytes: Uint8Array) {}
  varint(): number {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.bytes.length) throw new RangeError('truncated range list');
      const b = this.bytes[this.pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
  }
}

export function encodeLeases(leases: readonly Lease[]): Uint8Array {
  const w = new Writer();
  w.varint(VERSION);
  w.varint(leases.length);
  const base = leases.length ? Math.min(...leases.map((l) => l.leaseMs)) : 0;
  w.varint(base);
  let prev = 0;
  for (const l of leases) {
    w.varint(l.from - prev);
    w.varint(l.to - l.from);
    w.varint(l.leaseMs - base);
    w.varint(l.count);
    prev = l.to;
  }
  return w.done();
}

export function decodeLeases(bytes: Uint8Array | undefined): Lease[] {
  if (!bytes || bytes.length === 0) return [];
  const r = new Reader(bytes);
  const version = r.varint();
  if (version !== VERSION) throw new RangeError(`unknown lease list version ${version}`);
  const n = r.varint();
  const base = r.varint();
  const out: Lease[] = [];
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const from = prev + r.varint();
    const to = from + r.varint();
    out.push({ from, to, leaseMs: base + r.varint(), count: r.varint() });
    prev = to;
  }
  return out;
}

export function encodeDead(dead: readonly DeadRange[]): Uint8Array {
  const w = new Writer();
  w.varint(VERSION);
  w.varint(dead.length);
  let prev = 0;
  for (const d of dead) {
    w.varint(d.from - prev);
    w.varint(d.to - d.from);
    w.varint(d.count);
    prev = d.to;
  }
  return w.done();
}

export function decodeDead(bytes: Uint8Array | undefined): DeadRange[] {
  if (!bytes || bytes.length === 0) return [];
  const r = new Reader(bytes);
  const version = r.varint();
  if (version !== VERSION) throw new RangeError(`unknown dead-letter list version ${version}`);
  const n = r.varint();
  const out: DeadRange[] = [];
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const from = prev + r.varint();
    const to = from + r.varint();
    out.push({ from, to, count: r.varint() });
    prev = to;
  }
  return out;
}

/**
 * A pending ack as one element of the session's ack string set: `from-to@atMs`. Equal acks
 * made in the same millisecond are one element, which is harmless: they remove the same records.
 */
export const encodeAckMark = (m: AckMark): string => `${m.from}-${m.to}@${m.atMs}`;

export function decodeAckMark(text: string): AckMark {
  const m = /^(\d+)-(\d+)@(\d+)$/.exec(text);
  const mark = m ? { from: Number(m[1]), to: Number(m[2]), atMs: Number(m[3]) } : undefined;
  if (!mark || mark.from > mark.to || !Number.isSafeInteger(mark.to) || !Number.isSafeInteger(mark.atMs)) {
    throw new RangeError(`malformed ack mark '${text}'`);
  }
  return mark;
}
