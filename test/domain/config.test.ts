/**
 * The config profiles' schemas against the contract (shared/API.md, "Configs and bakes"), and
 * the per-request arm choice hosts make from the rollout state.
 */
import { describe, expect, it } from 'vitest';
import { compileJsonSchema } from '../../local/appconfig';
import {
  armOf,
  bucketOf,
  checkProfileContent,
  isProfile,
  liveExperiment,
  profileJsonSchema,
  PROFILES,
  resolveProfile,
  versionsFor,
  type Experiment,
  type ProfileName,
  type RolloutState,
} from '../../lambdas/domain/config';

/**
 * The contract's table, written out by hand from shared/API.md: deliberately not derived from
 * PROFILE_SCHEMAS, so a wrong range or default in the code fails here.
 */
const CONTRACT: Record<ProfileName, Record<string, { min: number; max: number; dflt: number }>> = {
  delivery: {
    maxBatchRecords: { min: 1, max: 1000, dflt: 100 },
    maxBatchBytes: { min: 1024, max: 6_291_456, dflt: 1_048_576 },
    longPollIntervalMs: { min: 50, max: 5000, dflt: 250 },
  },
  limits: {
    maxRecordsPerAppend: { min: 1, max: 500, dflt: 500 },
    maxRecordBytes: { min: 1, max: 262_144, dflt: 262_144 },
    maxRequestBytes: { min: 1024, max: 6_291_456, dflt: 1_048_576 },
    defaultAckTimeoutSeconds: { min: 1, max: 43_200, dflt: 30 },
  },
};

const CONTRACT_PROFILES = Object.keys(CONTRACT) as ProfileName[];
const validators = Object.fromEntries(CONTRACT_PROFILES.map((p) => [p, compileJsonSchema(profileJsonSchema(p))])) as Record<
  ProfileName,
  ReturnType<typeof compileJsonSchema>
>;

/** Both checks of one content: the generated JSON Schema (what AppConfig runs) and zod (admin route, hosts). */
function verdicts(profile: ProfileName, content: unknown): { jsonSchema: boolean; zod: boolean } {
  // AppConfig validates the stored JSON text, so the JSON Schema sees what JSON can carry.
  const asJson = JSON.parse(JSON.stringify(content)) as unknown;
  return { jsonSchema: validators[profile](asJson) === true, zod: checkProfileContent(profile, content).length === 0 };
}

const BOTH_ACCEPT = { jsonSchema: true, zod: true };
const BOTH_REJECT = { jsonSchema: false, zod: false };

const defaultsOf = (profile: ProfileName): Record<string, number> =>
  Object.fromEntries(Object.entries(CONTRACT[profile]).map(([f, r]) => [f, r.dflt]));

describe('profile schemas against the contract table', () => {
  it('covers exactly the contract profiles', () => {
    expect([...PROFILES].sort()).toEqual([...CONTRACT_PROFILES].sort());
  });

  it('generates draft-04 JSON Schemas (the dialect of AppConfig validators)', () => {
    for (const p of CONTRACT_PROFILES) expect(profileJsonSchema(p).$schema).toMatch(/draft-04/);
  });

  for (const profile of CONTRACT_PROFILES) {
    describe(profile, () => {
      it('accepts an empty object and the full set of defaults', () => {
        expect(verdicts(profile, {})).toEqual(BOTH_ACCEPT);
        expect(verdicts(profile, defaultsOf(profile))).toEqual(BOTH_ACCEPT);
      });

      for (const [field, r] of Object.entries(CONTRACT[profile])) {
        describe(field, () => {
          it(`accepts the default ${r.dflt} and in-range values ${r.min}..${r.max}`, () => {
            const inRange = [r.min, r.min + 1, Math.floor((r.min + r.max) / 2), r.dflt, r.max - 1, r.max];
            for (const v of inRange) expect({ v, ...verdicts(profile, { [field]: v }) }).toEqual({ v, ...BOTH_ACCEPT });
            // A whole number written with a fraction part is still an integer in JSON.
            expect(validators[profile](JSON.parse(`{"${field}": ${r.dflt}.0}`))).toBe(true);
          });

          it(`rejects each bound ±1 outside the range (${r.min - 1}, ${r.max + 1})`, () => {
            for (const v of [r.min - 1, r.max + 1]) expect({ v, ...verdicts(profile, { [field]: v }) }).toEqual({ v, ...BOTH_REJECT });
          });

          it('rejects non-integers and wrong types', () => {
            const bad: unknown[] = [
              r.min + 0.5,
              r.max - 0.5,
              r.dflt + 0.001,
              String(r.dflt),
              `${r.dflt}ms`,
              true,
              null,
              [r.dflt],
              { value: r.dflt },
            ];
            for (const v of bad) expect({ v, ...verdicts(profile, { [field]: v }) }).toEqual({ v, ...BOTH_REJECT });
          });

          it('names the field in the zod problems', () => {
            const problems = checkProfileContent(profile, { [field]: r.max + 1 });
            expect(problems).toHaveLength(1);
            expect(problems[0]).toMatch(new RegExp(`^${field}:`));
          });
        });
      }

      it("rejects unknown fields, including a typo of a real field and the other profile's fields", () => {
        const [first] = Object.keys(CONTRACT[profile]);
        const other = CONTRACT_PROFILES.find((p) => p !== profile)!;
        const [otherField, otherRange] = Object.entries(CONTRACT[other])[0]!;
        const unknown: Record<string, unknown>[] = [
          { unknownField: 1 },
          { [`${first}s`]: CONTRACT[profile][first!]!.dflt },
          { ...defaultsOf(profile), extra: true },
          { [otherField]: otherRange.dflt },
        ];
        for (const c of unknown) expect({ c, ...verdicts(profile, c) }).toEqual({ c, ...BOTH_REJECT });
      });

      it('rejects content that is not an object', () => {
        for (const c of [null, [], [defaultsOf(profile)], 'x', 1, true])
          expect({ c, ...verdicts(profile, c) }).toEqual({ c, ...BOTH_REJECT });
      });
    });
  }

  it('zod and the JSON Schema agree on a mixed set of cases', () => {
    const cases: [ProfileName, unknown][] = [
      ['delivery', { maxBatchRecords: 1, maxBatchBytes: 6_291_456, longPollIntervalMs: 5000 }],
      ['delivery', { maxBatchRecords: 1001, maxBatchBytes: 1024 }],
      ['delivery', { maxBatchRecords: 10, longPollIntervalMs: 49 }],
      ['delivery', { maxBatchBytes: 1023 }],
      ['delivery', { maxBatchRecords: -1 }],
      ['delivery', { maxBatchRecords: 0 }],
      ['delivery', { maxBatchRecords: 1e3 }],
      ['delivery', { maxBatchRecords: 2 ** 53 }],
      ['limits', { maxRecordsPerAppend: 1 }],
      ['limits', { maxRecordsPerAppend: 501 }],
      ['limits', { maxRecordBytes: 262_145, maxRequestBytes: 1024 }],
      ['limits', { defaultAckTimeoutSeconds: 43_200, maxRequestBytes: 6_291_457 }],
      ['limits', { defaultAckTimeoutSeconds: 30.5 }],
      ['limits', { maxRecordsPerAppend: '500' }],
      ['limits', { maxRecordsPerAppend: 500, maxBatchRecords: 100 }],
      ['limits', {}],
      ['limits', []],
    ];
    for (const [profile, content] of cases) {
      const v = verdicts(profile, content);
      expect({ profile, content, agree: v.jsonSchema === v.zod }).toEqual({ profile, content, agree: true });
    }
    // And the set is not trivially one-sided.
    const accepted = cases.filter(([p, c]) => verdicts(p, c).zod).length;
    expect(accepted).toBeGreaterThan(2);
    expect(accepted).toBeLessThan(cases.length - 2);
  });
});

describe('resolveProfile', () => {
  it('fills every field the content leaves out with the contract default', () => {
    for (const profile of CONTRACT_PROFILES) expect(resolveProfile(profile, {})).toEqual(defaultsOf(profile));
  });

  it('keeps the fields the content sets and defaults the rest', () => {
    expect(resolveProfile('limits', { maxRecordsPerAppend: 1 })).toEqual({ ...defaultsOf('limits'), maxRecordsPerAppend: 1 });
    expect(resolveProfile('delivery', { maxBatchRecords: 1000, longPollIntervalMs: 50 })).toEqual({
      ...defaultsOf('delivery'),
      maxBatchRecords: 1000,
      longPollIntervalMs: 50,
    });
  });

  it('throws on content outside the schema', () => {
    expect(() => resolveProfile('limits', { maxRecordsPerAppend: 0 })).toThrow();
    expect(() => resolveProfile('delivery', { nope: 1 })).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// Arms
// ---------------------------------------------------------------------------------------------

const NOW = 1_700_000_000_000;
const experiment = (over: Partial<Experiment> = {}): Experiment => ({
  profile: 'limits',
  version: '7',
  weightPercent: 10,
  bakeId: 'bake-a',
  expiresAtMs: NOW + 60_000,
  ...over,
});
const KEYS = Array.from({ length: 10_000 }, (_, i) => `session-${i.toString(36)}-${(i * 7919) % 10_007}`);
const experimentKeys = (e: Experiment): Set<string> => new Set(KEYS.filter((k) => armOf(e, k) === 'experiment'));

describe('armOf', () => {
  it('puts the weight in percent of 10,000 keys in the experiment, within 2 points', () => {
    for (const weightPercent of [1, 10, 25, 50]) {
      for (const bakeId of ['bake-a', 'bake-b', '01J0000000000000000000000']) {
        const share = (100 * experimentKeys(experiment({ weightPercent, bakeId })).size) / KEYS.length;
        expect({ weightPercent, bakeId, off: Math.abs(share - weightPercent) <= 2 }).toEqual({ weightPercent, bakeId, off: true });
      }
    }
  });

  it('gives buckets in [0, 10000)', () => {
    for (const k of KEYS.slice(0, 2000)) {
      const b = bucketOf('bake-a', k);
      expect(Number.isInteger(b) && b >= 0 && b < 10_000).toBe(true);
    }
  });

  it('always gives the same key the same arm within a bake', () => {
    const e = experiment({ weightPercent: 25 });
    const first = KEYS.map((k) => armOf(e, k));
    // A fresh but equal experiment object (another host, another cache refresh) decides the same.
    const again = KEYS.map((k) => armOf({ ...e }, k));
    expect(again).toEqual(first);
    expect(first).toContain('experiment');
    expect(first).toContain('control');
  });

  it('re-samples for a different bakeId: two 10% bakes overlap in about 1% of keys, not 10%', () => {
    const a = experimentKeys(experiment({ bakeId: 'bake-a' }));
    const b = experimentKeys(experiment({ bakeId: 'bake-b' }));
    const both = [...a].filter((k) => b.has(k)).length;
    const overlapPct = (100 * both) / KEYS.length;
    expect(overlapPct).toBeGreaterThan(0.5);
    expect(overlapPct).toBeLessThan(1.6);
  });

  it('serves control with no experiment, an expired one, or no key', () => {
    const state: RolloutState = { control: { delivery: '1', limits: '1' } };
    expect(liveExperiment(state, NOW)).toBeUndefined();
    for (const k of KEYS.slice(0, 500)) expect(armOf(undefined, k)).toBe('control');

    const e = experiment({ weightPercent: 50, expiresAtMs: NOW + 1000 });
    const withExp: RolloutState = { ...state, experiment: e };
    expect(liveExperiment(withExp, NOW + 999)).toBe(e);
    expect(liveExperiment(withExp, NOW + 1000)).toBeUndefined();
    expect(liveExperiment(withExp, NOW + 5000)).toBeUndefined();
    expect(liveExperiment({ ...state, experiment: { ...e, weightPercent: 0 } }, NOW)).toBeUndefined();
    // The keys that would be in the experiment while it is live are in control once it expired.
    const wouldBe = KEYS.filter((k) => armOf(liveExperiment(withExp, NOW), k) === 'experiment');
    expect(wouldBe.length).toBeGreaterThan(0);
    for (const k of wouldBe) expect(armOf(liveExperiment(withExp, NOW + 1000), k)).toBe('control');

    expect(armOf(e, undefined)).toBe('control');
    expect(armOf(experiment({ weightPercent: 100 }), undefined)).toBe('control');
  });
});

describe('versionsFor', () => {
  const state = (exp: Experiment): RolloutState => ({ control: { delivery: '3', limits: '5' }, experiment: exp });

  for (const profile of CONTRACT_PROFILES) {
    it(`the experiment arm differs from control in exactly ${profile}`, () => {
      const exp = experiment({ profile, version: '9' });
      const s = state(exp);
      const control = versionsFor(s, 'control', exp);
      const exper = versionsFor(s, 'experiment', exp);
      expect(control).toEqual(s.control);
      const differing = CONTRACT_PROFILES.filter((p) => control[p] !== exper[p]);
      expect(differing).toEqual([profile]);
      expect(exper[profile]).toBe('9');
    });
  }

  it('does not alias the state: changing the result leaves state.control alone', () => {
    const exp = experiment();
    const s = state(exp);
    const v = versionsFor(s, 'experiment', exp);
    v.delivery = 'x';
    expect(s.control).toEqual({ delivery: '3', limits: '5' });
  });

  it('the experiment arm with no live experiment is control', () => {
    const s: RolloutState = { control: { delivery: '3', limits: '5' } };
    expect(versionsFor(s, 'experiment', undefined)).toEqual(s.control);
  });
});

describe('mutation survivors: the hash, the weight threshold, isProfile', () => {
  // Golden buckets worked outside the code: the first 4 bytes of SHA-256("<bakeId>\0<key>"),
  // big-endian, mod 10000, e.g. `printf 'bake-a\0session-0' | sha256sum` = 84ac90d5... ->
  // 0x84ac90d5 = 2225901781 -> 1781.
  it('bucketOf matches golden values of SHA-256 over the bake id, a NUL and the key', () => {
    expect(bucketOf('bake-a', 'session-0')).toBe(1781); // 84ac90d5
    expect(bucketOf('bake-a', 'session-1')).toBe(3462); // 6031e846
    expect(bucketOf('bake-a', 'log-abc')).toBe(2488); // 782ef1d8
    expect(bucketOf('bake-b', 'session-0')).toBe(2901); // bc682935
    expect(bucketOf('bake-a', 'key-5')).toBe(8018); // 17472322
  });

  it('a key whose bucket equals the weight threshold is in control; one basis point more puts it in the experiment', () => {
    // bucket 1781: the threshold is round(weightPercent * 100), and the arm is experiment below it
    expect(armOf(experiment({ bakeId: 'bake-a', weightPercent: 17.81 }), 'session-0')).toBe('control');
    expect(armOf(experiment({ bakeId: 'bake-a', weightPercent: 17.82 }), 'session-0')).toBe('experiment');
    expect(armOf(experiment({ bakeId: 'bake-a', weightPercent: 17.8 }), 'session-0')).toBe('control');
    // bucket 8018, and 80.18 * 100 is 8018.000000000001 in floating point: rounded to 8018, still control
    expect(80.18 * 100).toBeGreaterThan(8018);
    expect(armOf(experiment({ bakeId: 'bake-a', weightPercent: 80.18 }), 'key-5')).toBe('control');
    expect(armOf(experiment({ bakeId: 'bake-a', weightPercent: 80.19 }), 'key-5')).toBe('experiment');
    // the bucket is the bake's: the same key under bake-b (bucket 2901) is in control at 17.82%
    expect(armOf(experiment({ bakeId: 'bake-b', weightPercent: 17.82 }), 'session-0')).toBe('control');
  });

  it('isProfile accepts exactly the profile names, not inherited object properties', () => {
    expect(isProfile('delivery')).toBe(true);
    expect(isProfile('limits')).toBe(true);
    for (const p of ['', 'Delivery', 'limit', 'toString', 'constructor', '__proto__', 'hasOwnProperty'])
      expect(isProfile(p), p).toBe(false);
    expect(PROFILES.every((p) => isProfile(p))).toBe(true);
  });
});

describe('the served-content bound', () => {
  it('every content that fits a profile schema is under 200 bytes (each field at its widest value), far under MAX_SERVED_CONTENT_BYTES', async () => {
    const { PROFILES, profileJsonSchema, checkProfileContent, MAX_SERVED_CONTENT_BYTES } = await import('../../lambdas/domain/config');
    for (const profile of PROFILES) {
      const props = (profileJsonSchema(profile) as { properties: Record<string, { minimum: number; maximum: number }> }).properties;
      // The widest JSON text of each integer field is its minimum or its maximum, whichever has more characters.
      const widest = Object.fromEntries(
        Object.entries(props).map(([k, p]) => [k, String(p.minimum).length > String(p.maximum).length ? p.minimum : p.maximum]),
      );
      expect(checkProfileContent(profile, widest)).toEqual([]);
      const bytes = Buffer.byteLength(JSON.stringify(widest));
      expect({ profile, under200: bytes < 200 }).toEqual({ profile, under200: true });
      expect(bytes).toBeLessThan(MAX_SERVED_CONTENT_BYTES);
    }
  });
});
