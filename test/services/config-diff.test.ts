/**
 * services/config-diff.ts over the real BakeService.getVersion and an in-memory AppConfig
 * (ConfigVersions): the version as before without `diff`, the diff against N with it, and every
 * bad `diff` answered 4xx with a sentence, before AppConfig is called when the value alone is bad.
 */
import { describe, expect, it } from 'vitest';
import { BakeService } from '../../lambdas/services/bakes';
import { versionWithDiff } from '../../lambdas/services/config-diff';
import { refusalOf, type Refusal } from '../support/refusal';
import type { ConfigVersions } from '../../lambdas/adapters/appconfig';
import type { ProfileName } from '../../lambdas/domain/config';

const STORED: Record<ProfileName, Record<string, unknown>> = {
  delivery: { '1': { maxBatchRecords: 100, maxBatchBytes: 1_048_576, longPollIntervalMs: 250 }, '2': { maxBatchRecords: 50 }, '3': {} },
  limits: { '1': {}, '2': { maxRecordsPerAppend: 1 } },
};

function service(): { bakes: BakeService; calls: string[] } {
  const calls: string[] = [];
  const versions: ConfigVersions = {
    get: async (profile, version) => {
      calls.push(`${profile}:${version}`);
      if (profile === 'delivery' && version === '7') return JSON.parse('{"maxBatchRecords": 5,') as unknown; // as AppConfig content made outside Logrelay can be
      return STORED[profile][version];
    },
    create: async () => {
      throw new Error('not used');
    },
    list: async () => [],
  };
  const unused = {} as never;
  return { bakes: new BakeService(unused, versions, unused, unused, unused, { now: () => 0 }), calls };
}

async function refusal(p: Promise<unknown>): Promise<Refusal> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  return refusalOf(e);
}

describe('GET /configs/{profile}/versions/{version}[?diff=N]', () => {
  it('without diff: the version as before, no diff field', async () => {
    const got = await versionWithDiff(service().bakes, 'delivery', '2', undefined);
    expect(got).toEqual({ profile: 'delivery', version: '2', content: { maxBatchRecords: 50 } });
  });

  it('with diff=N: the fields that differ, N as control and this version as experimental', async () => {
    const { bakes } = service();
    expect(await versionWithDiff(bakes, 'delivery', '2', '1')).toEqual({
      profile: 'delivery',
      version: '2',
      content: { maxBatchRecords: 50 },
      diff: [{ path: 'maxBatchRecords', control: 100, experimental: 50 }],
    });
    // Version 3 leaves every field out, version 1 writes the defaults: hosts serve the same.
    expect((await versionWithDiff(bakes, 'delivery', '3', '1')).diff).toEqual([]);
    expect((await versionWithDiff(bakes, 'delivery', '2', '2')).diff).toEqual([]);
    expect((await versionWithDiff(bakes, 'limits', '1', '2')).diff).toEqual([
      { path: 'maxRecordsPerAppend', control: 1, experimental: 500 },
    ]);
  });

  it('refuses a diff that is not a version number with 400, without reading AppConfig', async () => {
    for (const bad of ['', '0', '01', '-1', '1.5', '1e0', '0x1', 'two', '1,2', ' 2', '12345678901']) {
      const { bakes, calls } = service();
      const e = await refusal(versionWithDiff(bakes, 'delivery', '2', bad));
      expect({ bad, status: e.status, code: e.code }).toEqual({ bad, status: 400, code: 'ValidationError' });
      expect(e.message).toMatch(/^The query parameter diff must be a version number such as 2/);
      expect(e.message).toContain(`it is '${bad}'`);
      expect(calls).toEqual([]);
    }
  });

  it('answers 404 naming the diff when version N does not exist, and 404 as before for the version itself or the profile', async () => {
    const { bakes } = service();
    const missingN = await refusal(versionWithDiff(bakes, 'delivery', '2', '9'));
    expect([missingN.status, missingN.code]).toEqual([404, 'VersionNotFound']);
    expect(missingN.message).toBe(
      'Profile delivery has no version 9 to compare version 2 with (?diff=9). List the versions with GET /configs.',
    );
    const { bakes: counted, calls } = service();
    const huge = await refusal(versionWithDiff(counted, 'delivery', '2', '9999999999'));
    expect([huge.status, huge.code]).toEqual([404, 'VersionNotFound']);
    expect(calls).toEqual(['delivery:2']); // N over AppConfig's int32 is not asked for
    const missing = await refusal(versionWithDiff(bakes, 'delivery', '9', '1'));
    expect([missing.status, missing.code]).toEqual([404, 'VersionNotFound']);
    expect(missing.message).toBe("Profile delivery has no version '9'. List the versions with GET /configs.");
    const profile = await refusal(versionWithDiff(bakes, 'nope', '1', '1'));
    expect([profile.status, profile.code]).toEqual([404, 'ProfileNotFound']);
  });

  it('answers 400, not 500, for a version whose stored content is not JSON, on either side', async () => {
    const { bakes } = service();
    for (const p of [
      versionWithDiff(bakes, 'delivery', '7', undefined),
      versionWithDiff(bakes, 'delivery', '7', '1'),
      versionWithDiff(bakes, 'delivery', '1', '7'),
    ]) {
      const e = await refusal(p);
      expect([e.status, e.code]).toEqual([400, 'ValidationError']);
      expect(e.message).toMatch(/^Profile delivery version 7 is stored in AppConfig as content that is not JSON/);
    }
  });
});
