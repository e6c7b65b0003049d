/**
 * The local runtime's principals: what IAM users/roles are when the API runs in AWS.
 *
 * They live in `.logrelay/credentials.json` (relative to the working directory unless another
 * path is given):
 *
 *   {"principals": [{"name": "admin", "accessKeyId": "LR...", "secretAccessKey": "...", "admin": true}]}
 *
 * On first start the file is created (mode 0600, directory 0700) with one admin principal.
 * While the runtime runs, a PrincipalStore re-reads the file when it changes (its size, mtime or
 * inode), so a principal added to it can call at once, without a restart.
 */
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';

export interface Principal {
  /** The caller's identity: owner of the logs and sessions it creates. */
  name: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** May use the admin routes (configs and bakes). */
  admin: boolean;
}

export interface LoadedCredentials {
  principals: Principal[];
  /** True when the file did not exist and was created by this call. */
  created: boolean;
  /** Absolute path of the credentials file. */
  path: string;
}

export const DEFAULT_CREDENTIALS_PATH = '.logrelay/credentials.json';

/** Thrown when the credentials file exists but cannot be used; the message says how to fix it. */
export class CredentialsFileError extends Error {
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(
      `The credentials file ${path} cannot be used: ${problem}. ` +
        `Fix the file (it must look like {"principals": [{"name": "admin", "accessKeyId": "LR…", ` +
        `"secretAccessKey": "…", "admin": true}]}), or delete it to have a new one created with a fresh admin principal.`,
    );
    this.name = 'CredentialsFileError';
  }
}

/** IAM's own constraint on access key ids: 16 to 128 word characters. */
const ACCESS_KEY_ID = /^\w{16,128}$/;
const MIN_SECRET_LENGTH = 16;
const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomString(alphabet: string, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** A fresh access key id in AWS's format: 20 uppercase alphanumerics, here starting with "LR". */
export function newAccessKeyId(): string {
  return `LR${randomString(UPPER_ALNUM, 18)}`;
}

/** A fresh 40-character secret (alphanumerics only, so it is easy to paste into a shell). */
export function newSecretAccessKey(): string {
  return randomString(ALNUM, 40);
}

function describe(value: unknown): string {
  if (value === undefined) return 'it is missing';
  return `got ${JSON.stringify(value)}`;
}

/** Checks the parsed file; returns the principals or throws CredentialsFileError. */
export function parseCredentials(text: string, path: string): Principal[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CredentialsFileError(path, `it is not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new CredentialsFileError(path, 'the top level must be an object with a "principals" array');
  }
  const list = (doc as { principals?: unknown }).principals;
  if (!Array.isArray(list)) {
    throw new CredentialsFileError(path, `"principals" must be an array (${describe(list)})`);
  }
  if (list.length === 0) {
    throw new CredentialsFileError(path, '"principals" is empty, so nobody could call the API; add at least one principal');
  }
  const principals: Principal[] = [];
  const names = new Set<string>();
  const keys = new Set<string>();
  list.forEach((entry: unknown, i) => {
    const at = `principals[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new CredentialsFileError(path, `${at} must be an object with name, accessKeyId, secretAccessKey and admin`);
    }
    const p = entry as Record<string, unknown>;
    const label = typeof p.name === 'string' && p.name ? `${at} ("${p.name}")` : at;
    if (typeof p.name !== 'string' || p.name.trim() === '' || p.name !== p.name.trim()) {
      throw new CredentialsFileError(path, `${at}.name must be a non-empty string without surrounding spaces (${describe(p.name)})`);
    }
    if (typeof p.accessKeyId !== 'string' || !ACCESS_KEY_ID.test(p.accessKeyId)) {
      throw new CredentialsFileError(
        path,
        `${label}.accessKeyId must be 16 to 128 letters, digits or underscores, like an AWS access key id (${describe(p.accessKeyId)})`,
      );
    }
    if (
      typeof p.secretAccessKey !== 'string' ||
      p.secretAccessKey.length < MIN_SECRET_LENGTH ||
      // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters in a secret is the point of this check
      /[\s\x00-\x1f\x7f]/.test(p.secretAccessKey)
    ) {
      throw new CredentialsFileError(
        path,
        `${label}.secretAccessKey must be a string of at least ${MIN_SECRET_LENGTH} characters with no spaces or control characters` +
          (typeof p.secretAccessKey === 'string'
            ? ` (it has ${p.secretAccessKey.length})`
            : ` (${p.secretAccessKey === undefined ? 'it is missing' : 'it is not a string'})`),
      );
    }
    if (typeof p.admin !== 'boolean') {
      throw new CredentialsFileError(path, `${label}.admin must be true or false (${describe(p.admin)})`);
    }
    if (names.has(p.name))
      throw new CredentialsFileError(path, `the name "${p.name}" is used by more than one principal; names must be unique`);
    if (keys.has(p.accessKeyId)) {
      throw new CredentialsFileError(
        path,
        `the accessKeyId ${p.accessKeyId} is used by more than one principal; access key ids must be unique`,
      );
    }
    names.add(p.name);
    keys.add(p.accessKeyId);
    principals.push({ name: p.name, accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey, admin: p.admin });
  });
  return principals;
}

/**
 * Reads the principals file, or creates it (directory 0700, file 0600) with one admin principal
 * named "admin" when it does not exist. Throws CredentialsFileError when the file is malformed.
 * Synchronous: it runs once, at startup.
 */
export function loadOrCreateCredentials(path: string = DEFAULT_CREDENTIALS_PATH): LoadedCredentials {
  const abs = nodePath.resolve(path);
  try {
    return { principals: parseCredentials(fs.readFileSync(abs, 'utf8'), abs), created: false, path: abs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (e instanceof CredentialsFileError) throw e;
      throw new CredentialsFileError(abs, `it cannot be read (${(e as Error).message})`);
    }
  }
  const principals: Principal[] = [{ name: 'admin', accessKeyId: newAccessKeyId(), secretAccessKey: newSecretAccessKey(), admin: true }];
  fs.mkdirSync(nodePath.dirname(abs), { recursive: true, mode: 0o700 });
  try {
    // 'wx': never overwrite a file another process created in the meantime.
    fs.writeFileSync(abs, `${JSON.stringify({ principals }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateCredentials(abs);
    throw e;
  }
  return { principals, created: true, path: abs };
}

/** How often, at most, a request with a known key makes the store look at the file again. */
export const CREDENTIALS_CHECK_INTERVAL_MS = 1000;

/** What identifies a version of the file without reading it. */
function signature(st: fs.Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/**
 * The runtime's principals, kept in step with the credentials file while it runs.
 *
 * `current()` (every signed request) looks at the file's stat at most once per
 * `checkIntervalMs`, so removing a principal or changing a secret takes effect within about a
 * second. `refresh()` looks at once; the server calls it when a request's access key is unknown,
 * so a principal just added is found by the very request that first uses it. A stat costs
 * microseconds and the file is re-read only when its stat changed, so checking on every miss
 * costs nothing worth throttling.
 *
 * A change that cannot be used (the file half written, malformed, or deleted) keeps the
 * principals last read, so a runtime never ends up with none; the problem is logged once and said
 * in the 403 for an unknown key (`unknownKeyNote`). The signature of a broken version is not
 * remembered as read, so each later check tries it again until it is whole.
 */
export class PrincipalStore {
  private list: Principal[];
  private seen: string | undefined;
  private checkedAt: number;
  private problem: string | undefined;
  private readonly checkIntervalMs: number;
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(
    /** Absolute path of the credentials file. */
    readonly path: string,
    principals: Principal[],
    opts: { checkIntervalMs?: number; now?: () => number; log?: (line: string) => void } = {},
  ) {
    this.list = principals;
    this.checkIntervalMs = opts.checkIntervalMs ?? CREDENTIALS_CHECK_INTERVAL_MS;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.checkedAt = this.now();
    this.seen = this.stat();
  }

  /** The principals, after looking at the file if the last look is older than the interval. */
  current(): Principal[] {
    if (this.now() - this.checkedAt >= this.checkIntervalMs) this.refresh();
    return this.list;
  }

  /** Re-reads the file if it changed since it was last read; true when the principals changed. */
  refresh(): boolean {
    this.checkedAt = this.now();
    const sig = this.stat();
    if (sig === this.seen) return false;
    if (sig === undefined) {
      this.report(
        `the file is gone (the runtime keeps the ${this.list.length} principal${this.list.length === 1 ? '' : 's'} it read before)`,
      );
      return false;
    }
    let next: Principal[];
    try {
      next = parseCredentials(fs.readFileSync(this.path, 'utf8'), this.path);
    } catch (e) {
      this.report(e instanceof CredentialsFileError ? e.message : `it cannot be read (${(e as Error).message})`);
      return false;
    }
    this.seen = sig;
    this.problem = undefined;
    const before = new Map(this.list.map((p) => [p.accessKeyId, p]));
    const changed =
      next.length !== this.list.length ||
      next.some((p) => {
        const b = before.get(p.accessKeyId);
        return !b || b.name !== p.name || b.secretAccessKey !== p.secretAccessKey || b.admin !== p.admin;
      });
    if (changed) {
      this.log(`credentials: re-read ${this.path}: ${next.map((p) => `${p.name}${p.admin ? ' (admin)' : ''}`).join(', ')}`);
      this.list = next;
    }
    return changed;
  }

  /**
   * For the 403 of an unknown access key: where the principals come from and which access key
   * ids the runtime knows (ids only: never a secret).
   */
  unknownKeyNote(): string {
    const ids = this.list.map((p) => p.accessKeyId);
    const shown = ids.length > 10 ? `${ids.slice(0, 10).join(', ')} and ${ids.length - 10} more` : ids.join(', ');
    return (
      `This runtime reads its principals from ${this.path} (re-read when the file changes, no restart needed) ` +
      `and knows ${ids.length} access key id${ids.length === 1 ? '' : 's'}: ${shown}.` +
      (this.problem ? ` The file's latest change is not in use: ${this.problem}` : '')
    );
  }

  private stat(): string | undefined {
    try {
      return signature(fs.statSync(this.path));
    } catch {
      return undefined;
    }
  }

  private report(problem: string): void {
    if (problem !== this.problem) this.log(`credentials: ${this.path}: ${problem}`);
    this.problem = problem;
  }
}
