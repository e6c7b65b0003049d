/**
 * The local runtime's principals (`.logrelay/credentials.json`, written by `npm start`), for
 * code that talks to the local runtime: `credentials: localCredentials()`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Credentials } from './http';

/** The credentials file cannot be found or used; the message says what to do. */
export class CredentialsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsFileError';
  }
}

export interface LocalPrincipal {
  name: string;
  accessKeyId: string;
  secretAccessKey: string;
  admin: boolean;
}

export const LOCAL_CREDENTIALS = join('.logrelay', 'credentials.json');

/** `.logrelay/credentials.json` in `cwd` or the nearest parent that has one. */
export function findCredentialsFile(cwd: string): string | undefined {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const candidate = join(dir, LOCAL_CREDENTIALS);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

export function readPrincipals(path: string): LocalPrincipal[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CredentialsFileError(`The credentials file ${path} cannot be read: ${(e as Error).message}.`);
  }
  const list = (doc as { principals?: unknown })?.principals;
  if (!Array.isArray(list) || list.length === 0) throw new CredentialsFileError(`The credentials file ${path} has no "principals" list.`);
  return list.map((p: unknown, i) => {
    const x = p as Partial<LocalPrincipal>;
    if (typeof x?.name !== 'string' || typeof x.accessKeyId !== 'string' || typeof x.secretAccessKey !== 'string') {
      throw new CredentialsFileError(`principals[${i}] in ${path} needs a name, accessKeyId and secretAccessKey.`);
    }
    return { name: x.name, accessKeyId: x.accessKeyId, secretAccessKey: x.secretAccessKey, admin: x.admin === true };
  });
}

/**
 * Where the local credentials file is, the one rule the library (`localCredentials`) and the CLI
 * share: an explicit path (`--credentials-file`, `localCredentials({ path })`), else
 * LOGRELAY_CREDENTIALS_FILE, else `.logrelay/credentials.json` in `cwd` or the nearest parent that
 * has one. `explicit` says whether the path was named (so a missing file is an error to report)
 * rather than searched for; `path` is absolute, and undefined only when nothing was named and the
 * search found nothing. The file is not checked to exist when named.
 */
export function credentialsFileLocation(o: { path?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): {
  path: string | undefined;
  explicit: boolean;
  named: string;
} {
  const cwd = o.cwd ?? process.cwd();
  const named = o.path ?? (o.env ?? process.env).LOGRELAY_CREDENTIALS_FILE;
  if (named) return { path: resolve(cwd, named), explicit: true, named };
  return { path: findCredentialsFile(cwd), explicit: false, named: `${LOCAL_CREDENTIALS} (here or in a parent folder)` };
}

/**
 * Keys of a principal of the local runtime's credentials file: `principal` by name, else the
 * first admin, else the first. The file is `path`, else LOGRELAY_CREDENTIALS_FILE, else
 * `.logrelay/credentials.json` in the working directory or the nearest parent that has one (the
 * same rule as the CLI: `credentialsFileLocation`).
 */
export function localCredentials(o: { principal?: string; path?: string } = {}): Credentials {
  const where = credentialsFileLocation({ ...(o.path ? { path: o.path } : {}) });
  const path = where.path;
  if (!path || !existsSync(path)) {
    throw new CredentialsFileError(`No local credentials file ${where.named}. Start the local runtime once (npm start) to create it.`);
  }
  const principals = readPrincipals(path);
  const p = o.principal ? principals.find((x) => x.name === o.principal) : (principals.find((x) => x.admin) ?? principals[0]);
  if (!p)
    throw new CredentialsFileError(
      `There is no principal '${o.principal}' in ${path}; it has ${principals.map((x) => x.name).join(', ')}.`,
    );
  return { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey };
}
