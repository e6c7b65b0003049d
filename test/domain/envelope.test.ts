/** Lambda's payload envelope as measured: escapedBytes against what JSON.stringify writes. */
import { describe, expect, it } from 'vitest';
import {
  bytesOverLimit,
  escapedBytes,
  recordEnvelopeBytes,
  resultEnvelopeBytes,
  RECORD_ENVELOPE_OVERHEAD,
} from '../../lambdas/domain/envelope';
import { receivedJson } from '../../lambdas/domain/records';

const stringified = (s: string): number => Buffer.byteLength(JSON.stringify(s), 'utf8') - 2;

describe('escapedBytes', () => {
  it('counts what JSON.stringify writes: quotes, backslashes, control characters, multi-byte and surrogates', () => {
    const cases = [
      '',
      'plain',
      '"',
      '\\',
      '"\\"',
      '\n\t\r\b\f',
      '\u0000\u0001\u001f',
      'é',
      '€',
      '😀',
      '\ud800',
      '\udc00x',
      'a\ud83dz',
      '\u2028\u2029',
      '{"a":"\\"q\\""}',
    ];
    for (const c of cases) expect(escapedBytes(c), JSON.stringify(c)).toBe(stringified(c));
  });

  it('agrees with JSON.stringify on random strings of every kind of character', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const pool = [0x00, 0x09, 0x0a, 0x1f, 0x20, 0x22, 0x41, 0x5c, 0x7f, 0xe9, 0x20ac, 0xd83d, 0xde00, 0xdfff, 0xffff];
    for (let n = 0; n < 500; n++) {
      const s = String.fromCharCode(...Array.from({ length: Math.floor(rand() * 40) }, () => pool[Math.floor(rand() * pool.length)]!));
      expect(escapedBytes(s)).toBe(stringified(s));
    }
  });
});

describe('recordEnvelopeBytes', () => {
  it("bounds a received record's share of the serialized response from above", () => {
    for (const [dataJson, key] of [
      ['"\\"\\""', undefined],
      ['{"k":[1,2,3]}', 'a"key\u0001'],
      ['1', undefined],
    ] as const) {
      const one = receivedJson([
        {
          seq: 9_007_199_254_740_991,
          dataJson,
          deliveryCount: 2_147_483_647,
          leaseExpiresAt: '2026-12-06T04:00:00.000Z',
          ...(key ? { key } : {}),
        },
      ]);
      // The record's element with its comma, escaped as in the result Lambda serializes.
      const element = escapedBytes(one.slice(1, -1)) + 1;
      expect(recordEnvelopeBytes(dataJson, key)).toBeGreaterThanOrEqual(element);
      expect(recordEnvelopeBytes(dataJson, key) - element).toBeLessThan(RECORD_ENVELOPE_OVERHEAD);
    }
  });
});

describe('bytesOverLimit', () => {
  it('is undefined for a document that fits and its exact serialized size for one that does not, whatever side of the bound it falls', () => {
    const doc = (body: string) => ({ statusCode: 200, headers: { 'content-type': 'application/json' }, body });
    for (const body of ['', 'plain', '"'.repeat(1000), '\u0001'.repeat(100), 'x'.repeat(5000)]) {
      const exact = resultEnvelopeBytes(doc(body));
      expect(bytesOverLimit(doc(body), exact)).toBeUndefined(); // at the limit: fits
      expect(bytesOverLimit(doc(body), exact - 1)).toBe(exact); // one byte under: over, by its exact size
      expect(bytesOverLimit(doc(body), exact * 7)).toBeUndefined(); // far under: the bound alone says so
    }
  });
});

describe('mutation survivors: the edges of each UTF-16 range, a key, an undefined result', () => {
  it('counts the characters at each boundary of the UTF-8 widths and of the surrogate ranges as JSON.stringify writes them', () => {
    // Each boundary once alone and once before a low surrogate (what a high surrogate pairs with).
    const edges = [0x1f, 0x20, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000];
    for (const c of edges) {
      for (const s of [String.fromCharCode(c), String.fromCharCode(c, 0xdc00), `x${String.fromCharCode(c)}`]) {
        expect(
          escapedBytes(s),
          s
            .split('')
            .map((u) => u.charCodeAt(0).toString(16))
            .join(' '),
        ).toBe(stringified(s));
      }
    }
  });

  it("adds a key's escaped JSON bytes to a record's envelope, exactly", () => {
    for (const key of ['k', 'a"key\u0001', 'é'.repeat(10)]) {
      expect(recordEnvelopeBytes('1', key) - recordEnvelopeBytes('1', undefined)).toBe(escapedBytes(JSON.stringify(key)));
    }
  });

  it('serializes a result as Lambda does: exact UTF-8 bytes, and none for undefined', () => {
    expect(resultEnvelopeBytes({ body: 'é' })).toBe(Buffer.byteLength('{"body":"é"}', 'utf8'));
    expect(resultEnvelopeBytes(undefined)).toBe(0);
  });
});
