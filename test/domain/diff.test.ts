/**
 * domain/diff.ts: the fields whose effective value (what hosts serve: the content over the
 * defaults) differs between two versions of a profile, in path order. Checked case by case and
 * against resolveProfile, the function hosts resolve their config with, on random contents.
 */
import { describe, expect, it } from 'vitest';
import { diffContents, sameJson } from '../../lambdas/domain/diff';
import {
  DEFAULT_CONFIG,
  PROFILES,
  checkProfileContent,
  profileJsonSchema,
  resolveProfile,
  type ProfileName,
} from '../../lambdas/domain/config';

describe('diffContents', () => {
  it('is empty for the same content, and for contents that differ only in key order', () => {
    expect(diffContents('delivery', { maxBatchRecords: 50 }, { maxBatchRecords: 50 })).toEqual([]);
    expect(
      diffContents('delivery', { maxBatchRecords: 50, longPollIntervalMs: 100 }, { longPollIntervalMs: 100, maxBatchRecords: 50 }),
    ).toEqual([]);
  });

  it('names each changed field with both effective values', () => {
    expect(diffContents('delivery', { maxBatchRecords: 50 }, { maxBatchRecords: 20 })).toEqual([
      { path: 'maxBatchRecords', control: 50, experimental: 20 },
    ]);
  });

  it('a field left out is its default: no difference against the default written out, the default shown against anything else', () => {
    // Left out on one side, the default on the other: hosts serve 100 under both.
    expect(diffContents('delivery', {}, { maxBatchRecords: 100 })).toEqual([]);
    expect(diffContents('delivery', { maxBatchRecords: 100 }, {})).toEqual([]);
    // Left out against another value: the side that left it out shows the default.
    expect(diffContents('delivery', {}, { maxBatchRecords: 50 })).toEqual([{ path: 'maxBatchRecords', control: 100, experimental: 50 }]);
    expect(diffContents('limits', { defaultAckTimeoutSeconds: 77 }, {})).toEqual([
      { path: 'defaultAckTimeoutSeconds', control: 77, experimental: 30 },
    ]);
  });

  it('orders entries by path, whatever order the contents write their fields in', () => {
    const a = { maxRequestBytes: 2048, maxRecordsPerAppend: 9, defaultAckTimeoutSeconds: 5, maxRecordBytes: 10 };
    const b = { maxRecordBytes: 11, defaultAckTimeoutSeconds: 6, maxRecordsPerAppend: 8, maxRequestBytes: 4096 };
    const paths = diffContents('limits', a, b).map((d) => d.path);
    expect(paths).toEqual(['defaultAckTimeoutSeconds', 'maxRecordBytes', 'maxRecordsPerAppend', 'maxRequestBytes']);
    expect(diffContents('limits', b, a).map((d) => d.path)).toEqual(paths);
  });

  it('swapping the versions swaps the sides', () => {
    const a = { maxBatchRecords: 5, maxBatchBytes: 4096 };
    const b = { longPollIntervalMs: 60 };
    const swapped = diffContents('delivery', b, a).map(({ path, control, experimental }) => ({
      path,
      control: experimental,
      experimental: control,
    }));
    expect(swapped).toEqual(diffContents('delivery', a, b));
    expect(swapped).toHaveLength(3);
  });

  it('compares a field outside the schema (a version made outside Logrelay) as written; a side without it has no property', () => {
    const d = diffContents('delivery', { note: 'x' }, { maxBatchRecords: 1 });
    expect(d).toEqual([
      { path: 'maxBatchRecords', control: 100, experimental: 1 },
      { path: 'note', control: 'x' },
    ]);
    expect('experimental' in d[1]!).toBe(false);
    expect(JSON.parse(JSON.stringify(d[1]))).toEqual({ path: 'note', control: 'x' });
    // Nested values are compared whole, their key order ignored.
    expect(diffContents('delivery', { extra: { a: 1, b: [1, { c: 2 }] } }, { extra: { b: [1, { c: 2 }], a: 1 } })).toEqual([]);
    expect(diffContents('delivery', { extra: { a: 1 } }, { extra: { a: 2 } })).toEqual([
      { path: 'extra', control: { a: 1 }, experimental: { a: 2 } },
    ]);
  });

  it('compares a content that is not an object whole, at the empty path', () => {
    expect(diffContents('delivery', { maxBatchRecords: 50 }, [1])).toEqual([
      { path: '', control: { ...DEFAULT_CONFIG.delivery, maxBatchRecords: 50 }, experimental: [1] },
    ]);
    expect(diffContents('delivery', 'x', 'x')).toEqual([]);
    expect(diffContents('delivery', null, {})).toEqual([{ path: '', control: null, experimental: DEFAULT_CONFIG.delivery }]);
  });

  it('on random valid contents, lists exactly the fields where the configs hosts resolve differ, with their values', () => {
    // A small seeded generator: each field left out, set to its default, or set to another value.
    let seed = 20_240_615;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const minimum = (profile: ProfileName, field: string): number =>
      (profileJsonSchema(profile) as { properties: Record<string, { minimum: number }> }).properties[field]!.minimum;
    const sample = (profile: ProfileName): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const [field, dflt] of Object.entries(DEFAULT_CONFIG[profile] as unknown as Record<string, number>)) {
        const r = rand();
        if (r < 1 / 3) continue;
        // Another value: the field's minimum or one above it (no default is either).
        out[field] = r < 2 / 3 ? dflt : minimum(profile, field) + (rand() < 0.5 ? 0 : 1);
      }
      return out;
    };
    let differing = 0;
    for (let i = 0; i < 500; i++) {
      const profile = PROFILES[i % PROFILES.length]!;
      const [a, b] = [sample(profile), sample(profile)];
      expect(checkProfileContent(profile, a)).toEqual([]);
      expect(checkProfileContent(profile, b)).toEqual([]);
      const ra = resolveProfile(profile, a) as unknown as Record<string, number>;
      const rb = resolveProfile(profile, b) as unknown as Record<string, number>;
      const expected = Object.keys(ra)
        .filter((f) => ra[f] !== rb[f])
        .sort()
        .map((f) => ({ path: f, control: ra[f], experimental: rb[f] }));
      expect(diffContents(profile, a, b), JSON.stringify({ profile, a, b })).toEqual(expected);
      if (expected.length) differing++;
    }
    // The generator made both equal and differing pairs.
    expect(differing).toBeGreaterThan(50);
    expect(differing).toBeLessThan(500);
  });
});

describe('sameJson', () => {
  it('ignores key order, not array order or types', () => {
    expect(sameJson({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(sameJson([1, 2], [2, 1])).toBe(false);
    expect(sameJson(1, '1')).toBe(false);
    expect(sameJson({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameJson(null, {})).toBe(false);
    expect(sameJson([], {})).toBe(false);
  });
});

describe('mutation survivors: sameJson on absent members, element-wise arrays, and non-arrays against arrays', () => {
  it('treats a member whose value is undefined as absent, on either side', () => {
    expect(sameJson({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(sameJson({ a: 1 }, { a: 1, b: undefined })).toBe(true);
  });

  it('compares every element and every member, not some', () => {
    expect(sameJson([1, 2], [1, 3])).toBe(false);
    expect(sameJson({ a: 1, b: 2 }, { a: 1, b: 3 })).toBe(false);
  });

  it('never equates an array with a string of the same length, whichever side it is on', () => {
    expect(sameJson('ab', ['a', 'b'])).toBe(false);
    expect(sameJson(['a', 'b'], 'ab')).toBe(false);
  });
});

describe('mutation survivor: diffContents on a member that is undefined on both sides', () => {
  it('lists no difference for a field neither side nor the defaults has (a member whose value is undefined)', () => {
    expect(diffContents('delivery', { extra: undefined }, {})).toEqual([]);
    expect(diffContents('delivery', { extra: undefined }, { extra: undefined })).toEqual([]);
  });
});
