/**
 * What one version of a profile changes against another: the fields whose effective value
 * differs. Pure: two contents in, a list out. `GET /configs/{profile}/versions/{version}?diff=N`
 * shows it (services/config-diff.ts), and the bake can record it on a phase when the phase
 * starts (control content against the experiment's).
 *
 * Effective values are compared, not the JSON as written: a version's content may leave any
 * field out, and a host then serves that field's default (domain/config.ts, `resolveProfile`,
 * `DEFAULT_CONFIG`). So
 * - a field one version leaves out and the other sets to its default is no difference (hosts
 *   serve the same value under both);
 * - a field one version leaves out and the other sets to something else is a difference whose
 *   side that left it out shows the default;
 * - a field the profile does not have (only a version created outside Logrelay, straight in
 *   AppConfig, can carry one: the admin route refuses them) is compared as written; a side
 *   that lacks it has no `control` / `experimental` property in the entry;
 * - a content that is not a JSON object (again, only from outside Logrelay) is compared whole,
 *   as one entry with the empty path, each side its effective value.
 * Profiles are flat, so a path is a field name; a nested value (outside the schema) is compared
 * whole, its key order ignored. Entries are ordered by path (code-unit order, not locale).
 */
import { DEFAULT_CONFIG, type ProfileName } from './config';

/** One field whose effective value differs. A side without the field (outside the schema only) has no property. */
export interface ConfigDiff {
  path: string;
  control?: unknown;
  experimental?: unknown;
}

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: JsonObject, k: string): boolean => Object.hasOwn(o, k) && o[k] !== undefined;

/** JSON equality: objects by their members whatever their order, arrays element by element. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => has(a, k));
    const kb = Object.keys(b).filter((k) => has(b, k));
    return ka.length === kb.length && ka.every((k) => has(b, k) && sameJson(a[k], b[k]));
  }
  return false;
}

/** The content's effective value of `field`: as written, else the profile's default; undefined when neither has it. */
function effective(profile: ProfileName, content: JsonObject, field: string): { value: unknown } | undefined {
  if (has(content, field)) return { value: content[field] };
  const defaults = DEFAULT_CONFIG[profile] as unknown as JsonObject;
  return has(defaults, field) ? { value: defaults[field] } : undefined;
}

/** A whole content's effective value: an object over the defaults; anything else as it is. */
function effectiveWhole(profile: ProfileName, content: unknown): unknown {
  return isObject(content) ? { ...(DEFAULT_CONFIG[profile] as unknown as JsonObject), ...content } : content;
}

/**
 * The fields whose effective value differs between `control` and `experimental` (two versions'
 * contents of `profile`), ordered by path. [] when hosts would serve the same under both.
 */
export function diffContents(profile: ProfileName, control: unknown, experimental: unknown): ConfigDiff[] {
  if (!isObject(control) || !isObject(experimental)) {
    const c = effectiveWhole(profile, control);
    const e = effectiveWhole(profile, experimental);
    return sameJson(c, e) ? [] : [{ path: '', control: c, experimental: e }];
  }
  const fields = new Set([...Object.keys(DEFAULT_CONFIG[profile]), ...Object.keys(control), ...Object.keys(experimental)]);
  const out: ConfigDiff[] = [];
  for (const path of [...fields].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const c = effective(profile, control, path);
    const e = effective(profile, experimental, path);
    if (!c && !e) continue;
    if (c && e && sameJson(c.value, e.value)) continue;
    out.push({ path, ...(c ? { control: c.value } : {}), ...(e ? { experimental: e.value } : {}) });
  }
  return out;
}
