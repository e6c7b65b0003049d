/**
 * Rough edges a new user hit with the client library (issue 16, item 3): `localCredentials()`
 * finds the credentials file by the same rule as the CLI, and methods taking ids refuse a
 * missing id at once instead of sending `/sessions/undefined`.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogrelayClient } from '../../client/src/client';
import { resolveConnection } from '../../client/src/cli-config';
import { credentialsFileLocation, localCredentials } from '../../client/src/local';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('localCredentials and the CLI agree on the credentials file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'logrelay-rough-'));
  const file = join(dir, 'elsewhere.json');
  writeFileSync(
    file,
    JSON.stringify({
      principals: [
        { name: 'from-env', accessKeyId: 'LRENVFILE0000000', secretAccessKey: 'env-file-secret-00000000000000000', admin: true },
      ],
    }),
  );

  it('honours LOGRELAY_CREDENTIALS_FILE, as the CLI does', () => {
    vi.stubEnv('LOGRELAY_CREDENTIALS_FILE', file);
    expect(localCredentials()).toEqual({ accessKeyId: 'LRENVFILE0000000', secretAccessKey: 'env-file-secret-00000000000000000' });
    // The CLI, given the same environment, picks the same file and keys.
    expect(resolveConnection({}, process.env, process.cwd()).credentials).toEqual(localCredentials());
    expect(credentialsFileLocation()).toMatchObject({ path: file, explicit: true });
  });

  it('an explicit path wins over the variable; a named file that is missing says which', () => {
    vi.stubEnv('LOGRELAY_CREDENTIALS_FILE', join(dir, 'missing.json'));
    expect(localCredentials({ path: file }).accessKeyId).toBe('LRENVFILE0000000');
    expect(() => localCredentials()).toThrow(`No local credentials file ${join(dir, 'missing.json')}`);
  });
});

describe('ids are checked before any request', () => {
  const sent: string[] = [];
  const client = new LogrelayClient({
    endpoint: 'http://127.0.0.1:1',
    credentials: { accessKeyId: 'AK', secretAccessKey: 'S' },
    fetch: async (url) => {
      sent.push(String(url));
      throw new Error('no request should be sent');
    },
  });

  it('client.session(undefined) throws a TypeError naming the argument and what to pass', () => {
    expect(() => client.session(undefined as unknown as string)).toThrow(TypeError);
    expect(() => client.session(undefined as unknown as string)).toThrow(
      /^client\.session\(sessionId\): sessionId must be a non-empty string \(the sessionId that createSession returned, or session\.id\); got undefined\.$/,
    );
    expect(() => client.session('')).toThrow("got ''");
    expect(sent).toEqual([]);
  });

  it('every method taking a logId, sessionId, bakeId or profile rejects a missing one the same way, sending nothing', async () => {
    const u = undefined as unknown as string;
    const calls: [string, () => Promise<unknown>][] = [
      ['describeLog(logId)', () => client.describeLog(u)],
      ['append(logId)', () => client.append(u, [{ data: 1 }])],
      ['appendMany(logId)', () => client.appendMany(u, [{ data: 1 }])],
      ['createSession(logId)', () => client.createSession(u)],
      ['receive(sessionId)', () => client.receive(u)],
      ['receiveAndAck(sessionId)', () => client.receiveAndAck(u)],
      ['ack(sessionId)', () => client.ack(u, [1])],
      ['nack(sessionId)', () => client.nack(u, [1])],
      ['extend(sessionId)', () => client.extend(u, [1], 30)],
      ['describeSession(sessionId)', () => client.describeSession(u)],
      ['deadLetters(sessionId)', () => client.deadLetters(u)],
      ['deleteSession(sessionId)', () => client.deleteSession(u)],
      ['putConfigVersion(profile)', () => client.putConfigVersion(u, {})],
      ['getConfigVersion(profile)', () => client.getConfigVersion(u, 1)],
      ['getConfigVersion(version)', () => client.getConfigVersion('delivery', u)],
      ['describeBake(bakeId)', () => client.describeBake(u)],
      ['abortBake(bakeId)', () => client.abortBake(u)],
    ];
    for (const [name, call] of calls) {
      const e = await call().then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e, name).toBeInstanceOf(TypeError);
      expect((e as Error).message, name).toContain(`client.${name}: ${/\((\w+)\)/.exec(name)![1]} must be a non-empty string`);
    }
    expect(sent).toEqual([]);
  });
});
