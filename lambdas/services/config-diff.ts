/**
 * GET /configs/{profile}/versions/{version}, with `?diff=N`: the version as the bake service reads
 * it from AppConfig, plus what it changes against version N (domain/diff.ts: N is the control
 * side, this version the experimental side, as if a bake tested this version against N). Reads
 * only; nothing to race.
 *
 * Bad input answers 4xx before or instead of any work: `diff` that is not a version number is a
 * 400; a version N the profile does not have is a 404 that says it was the `diff` one. A version
 * whose stored content is not JSON (possible only for one created outside Logrelay, straight in
 * AppConfig) is a 400 that says so, not the 500 a parse error would otherwise become.
 */
import { diffContents, type ConfigDiff } from '../domain/diff';
import { clip, ServiceError, validation } from '../domain/errors';
import type { ProfileName } from '../domain/config';
import type { BakeService } from './bakes';

/** What the route needs of the bake service. */
export type VersionReader = Pick<BakeService, 'getVersion'>;

export interface VersionView {
  profile: ProfileName;
  version: string;
  content: unknown;
  /** With `?diff=N`: the fields whose effective value differs, version N as `control`, this one as `experimental`. */
  diff?: ConfigDiff[];
}

/** A version number as the service names versions: digits, no leading zero (AppConfig's VersionNumber is an int32). */
const VERSION_NUMBER = /^[1-9][0-9]{0,9}$/;
const MAX_VERSION_NUMBER = 2 ** 31 - 1;

async function read(
  versions: VersionReader,
  profile: string,
  version: string,
): Promise<{ profile: ProfileName; version: string; content: unknown }> {
  try {
    return await versions.getVersion(profile, version);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw validation(
        `Profile ${clip(profile, 50)} version ${clip(version, 20)} is stored in AppConfig as content that is not JSON (it was created outside Logrelay), so it cannot be shown or compared here. Read it with aws appconfig get-hosted-configuration-version, and create a JSON version with POST /configs/{profile}/versions.`,
      );
    }
    throw e;
  }
}

/** The route's answer; `diffParam` is the raw `diff` query parameter (undefined when not given). */
export async function versionWithDiff(
  versions: VersionReader,
  profile: string,
  version: string,
  diffParam: string | undefined,
): Promise<VersionView> {
  if (diffParam !== undefined && !VERSION_NUMBER.test(diffParam)) {
    throw validation(
      `The query parameter diff must be a version number such as 2 (a positive integer without leading zeros), given once; it is '${clip(diffParam, 40)}'. List the versions with GET /configs.`,
    );
  }
  const got = await read(versions, profile, version);
  if (diffParam === undefined) return got;
  const noSuchN = () =>
    new ServiceError(
      'VersionNotFound',
      `Profile ${got.profile} has no version ${diffParam} to compare version ${got.version} with (?diff=${diffParam}). List the versions with GET /configs.`,
    );
  // AppConfig numbers versions with an int32: a larger N names none, and is not sent to it.
  if (Number(diffParam) > MAX_VERSION_NUMBER) throw noSuchN();
  let against: { content: unknown };
  try {
    against = await read(versions, profile, diffParam);
  } catch (e) {
    if (e instanceof ServiceError && e.code === 'VersionNotFound') throw noSuchN();
    throw e;
  }
  return { ...got, diff: diffContents(got.profile, against.content, got.content) };
}
