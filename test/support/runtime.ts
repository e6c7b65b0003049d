/**
 * A local runtime for a test file, with two principals of its own: `ops` (admin) and
 * `workers`, written to a fresh credentials file, and a signed HTTP client for each.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions } from '../../local/server';
import { SignedHttp } from '../../local/client';

export interface TestRuntime {
  rt: LocalRuntime;
  admin: SignedHttp;
  worker: SignedHttp;
  credentialsPath: string;
}

/** Starts the runtime on a free port, quiet unless `opts.log` is given; `tag` names its keys (uppercase letters). */
export async function startTestRuntime(
  tag: string,
  opts: Omit<LocalRuntimeOptions, 'port' | 'credentialsPath'> = {},
): Promise<TestRuntime> {
  const credentialsPath = join(mkdtempSync(join(tmpdir(), `logrelay-${tag.toLowerCase()}-`)), 'c.json');
  const key = (role: string) => `LR${tag}${role}`.toUpperCase().padEnd(16, '0');
  const secret = (role: string) => `${tag}-${role}-secret`.toLowerCase().padEnd(33, '0');
  writeFileSync(
    credentialsPath,
    JSON.stringify({
      principals: [
        { name: 'ops', accessKeyId: key('ADMIN'), secretAccessKey: secret('admin'), admin: true },
        { name: 'workers', accessKeyId: key('WORKER'), secretAccessKey: secret('worker'), admin: false },
      ],
    }),
  );
  const rt = await startLocalRuntime({ log: () => {}, ...opts, port: 0, credentialsPath });
  return {
    rt,
    credentialsPath,
    admin: new SignedHttp(rt.url, rt.principals.find((p) => p.admin)!),
    worker: new SignedHttp(rt.url, rt.principals.find((p) => !p.admin)!),
  };
}
