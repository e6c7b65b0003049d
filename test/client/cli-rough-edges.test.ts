/**
 * The CLI's rough edges a new user hit (issue 16, item 3), in process with an injected fetch (as
 * test/client/cli-bake.test.ts): `append` gives a bad line the same exit code (2) wherever it is,
 * appending the lines before it; `--key-field` refuses a line without the field unless
 * `--allow-missing-key`; counts read in the singular for one and an empty log reads as empty;
 * subcommand help points to the global options instead of repeating them.
 */
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { EXIT, run, type CliIo } from '../../client/src/cli';
import { count } from '../../client/src/cli-render';
import type { FetchLike } from '../../client/src/http';
import type { AppendRecord } from '../../client/src/types';

const KEYS = ['--endpoint', 'http://logrelay.test', '--access-key-id', 'AKIDTEST', '--secret-access-key', 'secret'];

/** A service that appends (numbering records from 1) and answers other routes from `other`. */
function service(opts: { failAppendNumber?: number; other?: (method: string, url: URL) => { status: number; body: unknown } } = {}) {
  const appended: AppendRecord[][] = [];
  let lastSeq = 0;
  const fetch: FetchLike = async (url, init) => {
    const u = new URL(url);
    let status = 200;
    let body: unknown;
    if (init.method === 'POST' && /^\/logs\/[^/]+\/records$/.test(u.pathname)) {
      if (appended.length + 1 === opts.failAppendNumber) {
        status = 500;
        body = { error: { code: 'InternalError', message: 'The service failed.' } };
      } else {
        const records = (JSON.parse(String(init.body)) as { records: AppendRecord[] }).records;
        appended.push(records);
        const firstSeq = lastSeq + 1;
        lastSeq += records.length;
        body = { firstSeq, lastSeq };
      }
    } else ({ status, body } = opts.other?.(init.method, u) ?? { status: 404, body: { error: { code: 'NotFound', message: 'no' } } });
    return { status, headers: { get: () => null }, text: async () => JSON.stringify(body) };
  };
  return { fetch, appended };
}

function io(fetch: FetchLike, stdin = ''): CliIo & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out: () => out.join(''),
    err: () => err.join(''),
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    stdin: Readable.from([stdin]),
    env: {},
    cwd: process.cwd(),
    onInterrupt: () => () => {},
    client: { fetch, retry: { maxAttempts: 1 } },
  };
}

async function append(stdin: string, args: string[] = [], svc = service()) {
  const x = io(svc.fetch, stdin);
  const code = await run([...KEYS, 'append', 'orders', ...args], x);
  return { code, out: x.out(), err: x.err(), appended: svc.appended.flat() };
}

describe('append: the same mistake, the same exit code, wherever it is', () => {
  it('a line that is not JSON exits 2 on the first line, on a later line in the same batch, and after batches were sent', async () => {
    const first = await append('not json\n{"n":2}\n');
    expect(first.code).toBe(EXIT.usage);
    expect(first.err).toContain('line 1 of stdin is not JSON');
    expect(first.err).toContain('Nothing was appended.');
    expect(first.appended).toEqual([]);

    // Later, in the first batch: the lines before it are appended, nothing from it on.
    const sameBatch = await append('{"n":1}\n{"n":2}\nnot json\n{"n":4}\n');
    expect(sameBatch.code).toBe(EXIT.usage);
    expect(sameBatch.appended.map((r) => r.data)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(sameBatch.err).toContain('line 3 of stdin is not JSON');
    expect(sameBatch.err).toContain('The 2 records before it were appended (seq 1..2); nothing from line 3 on');

    // Later, after whole batches went: still 2, the same message.
    const later = await append('{"n":1}\n{"n":2}\nnot json\n', ['--batch-size', '1']);
    expect(later.code).toBe(EXIT.usage);
    expect(later.appended.map((r) => r.data)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(later.err).toContain('line 3 of stdin is not JSON');
    expect(later.err).toContain('The 2 records before it were appended (seq 1..2)');
  });

  it('a failed request is still 1 (not the input: running again may work), and says what was appended', async () => {
    const failed = await append('{"n":1}\n{"n":2}\n', ['--batch-size', '1'], service({ failAppendNumber: 2 }));
    expect(failed.code).toBe(EXIT.failed);
    expect(failed.err).toContain('1 record was appended (up to seq 1), then: The service failed.');
  });

  it('--key-field refuses a line without the field (exit 2, naming the line and the field) unless --allow-missing-key', async () => {
    const input = '{"k":"a","n":1}\n{"n":2}\n{"k":"c","n":3}\n';
    const refused = await append(input, ['--key-field', 'k']);
    expect(refused.code).toBe(EXIT.usage);
    expect(refused.err).toContain("line 2 of stdin has no field 'k' (--key-field k)");
    expect(refused.err).toContain('--allow-missing-key');
    expect(refused.appended).toEqual([{ key: 'a', data: { k: 'a', n: 1 } }]);

    const notAnObject = await append('[1,2]\n', ['--key-field', 'k']);
    expect(notAnObject.code).toBe(EXIT.usage);
    expect(notAnObject.err).toContain("line 1 of stdin has no field 'k' (--key-field k): it is not a JSON object");

    const allowed = await append(input, ['--key-field', 'k', '--allow-missing-key']);
    expect(allowed.code).toBe(EXIT.ok);
    expect(allowed.appended).toEqual([{ key: 'a', data: { k: 'a', n: 1 } }, { data: { n: 2 } }, { key: 'c', data: { k: 'c', n: 3 } }]);
  });

  it('documents both in its help', async () => {
    const x = io(service().fetch);
    expect(await run(['append', '--help'], x)).toBe(0);
    expect(x.out()).toContain('--allow-missing-key');
    expect(x.out()).toMatch(/exits 2/);
    const root = io(service().fetch);
    await run(['--help'], root);
    expect(root.out()).toMatch(/2 bad\s+usage, configuration or input/);
  });
});

describe('counts read as a person says them', () => {
  it('count(): singular for one, plural otherwise, with thousands separators', () => {
    expect(count(1, 'record')).toBe('1 record');
    expect(count(0, 'record')).toBe('0 records');
    expect(count(1000, 'record')).toBe('1,000 records');
    expect(count(1, 'delivery', 'deliveries')).toBe('1 delivery');
    expect(count(3, 'delivery', 'deliveries')).toBe('3 deliveries');
  });

  it('appended 1 record, in 1 request', async () => {
    const one = await append('{"n":1}\n');
    expect(one.out).toBe('appended 1 record to orders (seq 1..1) in 1 request\n');
    const two = await append('{"n":1}\n{"n":2}\n', ['--batch-size', '1']);
    expect(two.out).toBe('appended 2 records to orders (seq 1..2) in 2 requests\n');
  });

  it('logs describe: an empty log has no records retained, one record is one', async () => {
    const describeLog = async (firstSeq: number, lastSeq: number) => {
      const svc = service({
        other: () => ({
          status: 200,
          body: { logId: 'orders', firstSeq, lastSeq, retentionHours: 24, createdAt: '2026-01-01T00:00:00.000Z' },
        }),
      });
      const x = io(svc.fetch);
      expect(await run([...KEYS, 'logs', 'describe', 'orders'], x)).toBe(0);
      return x.out();
    };
    const empty = await describeLog(1, 0);
    expect(empty).toContain('records    none retained (the next append gets seq 1)');
    expect(empty).not.toContain('1..0');
    // Retention removed all 7: still none, and the numbering goes on.
    expect(await describeLog(8, 7)).toContain('records    none retained (the next append gets seq 8)');
    expect(await describeLog(5, 5)).toContain('records    1 retained (seq 5)');
    expect(await describeLog(1, 1000)).toContain('records    1,000 retained (seq 1..1000)');
  });

  it('sessions dead-letters: after 1 delivery', async () => {
    const svc = service({
      other: () => ({
        status: 200,
        body: {
          ranges: [
            [3, 3, 1],
            [5, 9, 2],
          ],
        },
      }),
    });
    const x = io(svc.fetch);
    expect(await run([...KEYS, 'sessions', 'dead-letters', 's-1'], x)).toBe(0);
    expect(x.out()).toBe('3  after 1 delivery\n5..9  after 2 deliveries\n');
  });
});

describe('global options are shown once', () => {
  it('in logrelay --help; each subcommand help has one line pointing there instead', async () => {
    const root = io(service().fetch);
    expect(await run(['--help'], root)).toBe(0);
    expect(root.out()).toContain('--credentials-file <path>');
    expect(root.out().match(/--max-attempts/g)).toHaveLength(1);
    for (const path of [['append'], ['logs', 'create'], ['bake', 'status'], ['logs']]) {
      const x = io(service().fetch);
      expect(await run([...path, '--help'], x)).toBe(0);
      const text = x.out();
      expect(text, path.join(' ')).not.toContain('Global Options');
      expect(text, path.join(' ')).not.toContain('--credentials-file');
      expect(text.match(/logrelay --help/g), path.join(' ')).toHaveLength(1);
      expect(text, path.join(' ')).toContain(
        'Global options (endpoint, credentials, --json, --verbose, --max-attempts): see logrelay --help',
      );
    }
  });
});
