/**
 * The local runtime follows its credentials file while it runs (issue 16, item 3): a principal
 * added to the file can call at once, without a restart; an unknown key's 403 says which file the
 * runtime reads and which access key ids it knows (never a secret); a broken edit keeps the
 * principals read before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalRuntime, type LocalRuntime } from '../../local/server';
import { SignedHttp } from '../../local/client';
import { PrincipalStore, type Principal } from '../../local/credentials';

const ADMIN: Principal = {
  name: 'ops',
  accessKeyId: 'LRRELOADADMIN000000',
  secretAccessKey: 'reload-admin-secret-00000000000000',
  admin: true,
};
const ADDED: Principal = {
  name: 'late-worker',
  accessKeyId: 'LRRELOADLATE0000000',
  secretAccessKey: 'reload-late-secret-000000000000000',
  admin: false,
};
const write = (path: string, principals: Principal[]) => writeFileSync(path, JSON.stringify({ principals }, null, 2));

describe('the runtime re-reads its credentials file', () => {
  let rt: LocalRuntime;
  let path: string;
  const logged: string[] = [];

  beforeAll(async () => {
    path = join(mkdtempSync(join(tmpdir(), 'logrelay-reload-')), 'credentials.json');
    write(path, [ADMIN]);
    rt = await startLocalRuntime({ port: 0, credentialsPath: path, log: (l) => logged.push(l) });
  });
  afterAll(async () => {
    await rt?.close();
  });

  it('a principal added while it runs can call at once; before, the 403 says where the file is and which key ids it knows', async () => {
    const late = new SignedHttp(rt.url, ADDED);
    // The admin works, so the runtime has just looked at the file (within the last second).
    expect((await new SignedHttp(rt.url, ADMIN).call('POST', '/logs', { logId: 'reload-admin' })).status).toBe(201);

    const refused = await late.call('POST', '/logs', { logId: 'reload-late' });
    expect(refused.status).toBe(403);
    const message = refused.body.error.message as string;
    expect(message).toContain(`The access key id ${ADDED.accessKeyId} is not one of this server's principals`);
    expect(message).toContain(
      `This runtime reads its principals from ${path} (re-read when the file changes, no restart needed) and knows 1 access key id: ${ADMIN.accessKeyId}.`,
    );
    expect(message).not.toContain(ADMIN.secretAccessKey);

    // Added the way a person would: edit the file in place. No restart, no wait.
    write(path, [ADMIN, ADDED]);
    const created = await late.call('POST', '/logs', { logId: 'reload-late' });
    expect(created.status).toBe(201);
    expect((await late.call('GET', '/logs/reload-late')).status).toBe(200);
    expect(rt.principals.map((p) => p.name)).toEqual(['ops', 'late-worker']);
    expect(logged.some((l) => l.includes(`credentials: re-read ${path}: ops (admin), late-worker`))).toBe(true);
    // Its admin flag is honoured: not an admin.
    expect((await late.call('GET', '/configs')).status).toBe(403);
  });

  it('a broken edit (half written, malformed) keeps the principals read before, and the 403 says why the change is not in use', async () => {
    writeFileSync(path, '{"principals": [');
    const admin = await new SignedHttp(rt.url, ADMIN).call('GET', '/logs/reload-admin');
    expect(admin.status).toBe(200);
    const unknown = await new SignedHttp(rt.url, { accessKeyId: 'LRNOBODY00000000000', secretAccessKey: 'x'.repeat(40) }).call(
      'GET',
      '/logs/reload-admin',
    );
    expect(unknown.status).toBe(403);
    expect(unknown.body.error.message).toContain('knows 2 access key ids');
    expect(unknown.body.error.message).toContain(
      `The file's latest change is not in use: The credentials file ${path} cannot be used: it is not valid JSON`,
    );
    // Written whole again (atomically, by rename): in use again, with nothing about a problem.
    write(`${path}.tmp`, [ADMIN, ADDED]);
    renameSync(`${path}.tmp`, path);
    const again = await new SignedHttp(rt.url, { accessKeyId: 'LRNOBODY00000000000', secretAccessKey: 'x'.repeat(40) }).call(
      'GET',
      '/logs/reload-admin',
    );
    expect(again.body.error.message).not.toContain('not in use');
  });
});

describe('PrincipalStore', () => {
  it('looks at the file on a known key at most once per interval, and at once when asked (an unknown key)', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'logrelay-store-')), 'credentials.json');
    write(path, [ADMIN, ADDED]);
    let now = 1_000_000;
    const store = new PrincipalStore(path, [ADMIN, ADDED], { now: () => now, checkIntervalMs: 1000 });
    write(path, [ADMIN]); // the worker is removed
    now += 999;
    expect(store.current()).toHaveLength(2); // not looked at yet
    now += 1;
    expect(store.current()).toEqual([ADMIN]); // a second later, the removal is in force
    write(path, [ADMIN, ADDED]);
    expect(store.current()).toEqual([ADMIN]);
    expect(store.refresh()).toBe(true); // what the server does for an unknown key
    expect(store.current()).toEqual([ADMIN, ADDED]);
    expect(store.refresh()).toBe(false); // unchanged file: nothing re-read
  });

  it('keeps the principals when the file is deleted, and says so', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'logrelay-store-')), 'credentials.json');
    write(path, [ADMIN]);
    const store = new PrincipalStore(path, [ADMIN]);
    renameSync(path, `${path}.moved`);
    expect(store.refresh()).toBe(false);
    expect(store.current()).toEqual([ADMIN]);
    expect(store.unknownKeyNote()).toContain('the file is gone (the runtime keeps the 1 principal it read before)');
  });
});

describe('the runtime finds its credentials file as the clients do', () => {
  it('LOGRELAY_CREDENTIALS_FILE names it when no path is given (npm start and the CLI then read one file)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'logrelay-env-')), 'from-env.json');
    write(file, [ADMIN]);
    const saved = process.env.LOGRELAY_CREDENTIALS_FILE;
    process.env.LOGRELAY_CREDENTIALS_FILE = file;
    try {
      const rt = await startLocalRuntime({ port: 0, log: () => {} });
      try {
        expect(rt.credentialsPath).toBe(file);
        expect(rt.credentialsCreated).toBe(false);
        expect((await new SignedHttp(rt.url, ADMIN).call('GET', '/configs')).status).toBe(200);
      } finally {
        await rt.close();
      }
    } finally {
      if (saved === undefined) delete process.env.LOGRELAY_CREDENTIALS_FILE;
      else process.env.LOGRELAY_CREDENTIALS_FILE = saved;
    }
  }, 120_000);
});
