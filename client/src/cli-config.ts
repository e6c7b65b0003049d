/**
 * Where the CLI sends requests and with which credentials: flags, then environment, then the
 * local runtime's credentials file. (Documented in `logrelay --help`; keep the two in step.)
 */
import { existsSync } from 'node:fs';
import { defaultCredentials } from './client';
import type { Credentials, CredentialsProvider } from './http';
import { credentialsFileLocation, readPrincipals, type LocalPrincipal } from './local';

export interface ConnectionFlags {
  endpoint?: string;
  region?: string;
  profile?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  credentialsFile?: string;
  principal?: string;
}

export interface Connection {
  endpoint: string;
  region?: string;
  credentials: Credentials | CredentialsProvider;
  /** Where the credentials came from, for --verbose and error messages. */
  source: string;
}

/** Raised for a configuration the user must fix; the CLI prints the message and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const isLoopback = (endpoint: string): boolean => {
  try {
    const h = new URL(endpoint).hostname;
    return h === '127.0.0.1' || h === 'localhost' || h === '[::1]' || h === '::1';
  } catch {
    return false;
  }
};

/**
 * Resolves endpoint and credentials:
 * 1. `--access-key-id` with `--secret-access-key` (and `--session-token`): those keys;
 * 2. `--profile`: the AWS provider chain with that shared-config profile;
 * 3. `--principal NAME` (or LOGRELAY_PRINCIPAL): that principal of the local credentials file;
 * 4. AWS_ACCESS_KEY_ID or AWS_PROFILE in the environment: the AWS provider chain;
 * 5. a local credentials file (`--credentials-file`, LOGRELAY_CREDENTIALS_FILE, or
 *    `.logrelay/credentials.json` here or in a parent folder), when the endpoint is unset or on
 *    this machine: its first admin principal, else its first principal;
 * 6. otherwise the AWS provider chain (SSO, web identity, container and instance roles...).
 * The endpoint is `--endpoint`, else LOGRELAY_ENDPOINT, else (with local credentials)
 * http://127.0.0.1:$PORT (8787).
 */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv, cwd: string): Connection {
  const endpointGiven = flags.endpoint ?? env.LOGRELAY_ENDPOINT;
  const region = flags.region ?? undefined;
  const base = { ...(region ? { region } : {}) };
  const localEndpoint = `http://127.0.0.1:${env.PORT || 8787}`;
  const needEndpoint = (how: string): string => {
    if (endpointGiven) return endpointGiven;
    throw new UsageError(`No endpoint: pass --endpoint URL or set LOGRELAY_ENDPOINT (the stack's ApiUrl output) when using ${how}.`);
  };

  if (flags.accessKeyId || flags.secretAccessKey) {
    if (!flags.accessKeyId || !flags.secretAccessKey) throw new UsageError('Pass --access-key-id and --secret-access-key together.');
    const credentials: Credentials = {
      accessKeyId: flags.accessKeyId,
      secretAccessKey: flags.secretAccessKey,
      ...(flags.sessionToken ? { sessionToken: flags.sessionToken } : {}),
    };
    return {
      ...base,
      endpoint: endpointGiven ?? localEndpoint,
      credentials,
      source: `access key ${flags.accessKeyId} from the command line`,
    };
  }
  if (flags.profile) {
    return {
      ...base,
      endpoint: needEndpoint(`--profile ${flags.profile}`),
      credentials: defaultCredentials(flags.profile),
      source: `AWS profile ${flags.profile}`,
    };
  }

  const where = credentialsFileLocation({ ...(flags.credentialsFile ? { path: flags.credentialsFile } : {}), env, cwd });
  const explicitFile = where.explicit;
  const principalName = flags.principal ?? env.LOGRELAY_PRINCIPAL;
  const file = where.path;
  if (principalName) {
    if (!file || !existsSync(file)) {
      throw new UsageError(
        `--principal ${principalName} needs the local credentials file, and ${file ?? where.named} does not exist. Start the local runtime once (npm start) to create it.`,
      );
    }
    const principals = readPrincipals(file);
    const p = principals.find((x) => x.name === principalName);
    if (!p)
      throw new UsageError(`There is no principal '${principalName}' in ${file}; it has ${principals.map((x) => x.name).join(', ')}.`);
    return { ...base, endpoint: endpointGiven ?? localEndpoint, credentials: keysOf(p), source: `principal '${p.name}' of ${file}` };
  }
  if (env.AWS_ACCESS_KEY_ID || env.AWS_PROFILE) {
    return {
      ...base,
      endpoint: needEndpoint('AWS credentials from the environment'),
      credentials: defaultCredentials(),
      source: 'the AWS provider chain (environment)',
    };
  }
  if (file && existsSync(file) && (!endpointGiven || isLoopback(endpointGiven) || explicitFile)) {
    const principals = readPrincipals(file);
    const p = principals.find((x) => x.admin) ?? principals[0]!;
    return { ...base, endpoint: endpointGiven ?? localEndpoint, credentials: keysOf(p), source: `principal '${p.name}' of ${file}` };
  }
  if (explicitFile) throw new UsageError(`The credentials file ${file} does not exist.`);
  return { ...base, endpoint: needEndpoint('the AWS provider chain'), credentials: defaultCredentials(), source: 'the AWS provider chain' };
}

function keysOf(p: LocalPrincipal): Credentials {
  return { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey };
}
