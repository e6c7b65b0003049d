/**
 * The README's worker launch (issue 16, item 3): a process manager's SIGTERM, sent to the process
 * it started, must reach the worker so it can stop cleanly. `npx tsx worker.ts` does not do that:
 * npm exec dies of the SIGTERM without passing it on, and the worker runs on, orphaned (measured
 * with npm 11.19.1 and tsx 4.23.15; see the README's quick start). The launches the READMEs
 * show instead are checked here: each starts a TypeScript worker (the README worker's signal
 * handling, without the service), SIGTERM goes to the launched pid, and the worker must run its
 * handler and exit 0. (With `npx tsx` in the table, that case fails: npm exits by the signal.)
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'logrelay-launch-'));
const WORKER = join(dir, 'worker.ts');
// A user's project: tsx in its node_modules (here, the repository's own).
symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
// The README worker's shape: SIGTERM aborts, the worker finishes and says so.
writeFileSync(
  WORKER,
  `const stop: AbortController = new AbortController(); // TypeScript: only runs through tsx
process.once('SIGTERM', () => stop.abort());
const keepAlive = setInterval(() => {}, 1000);
stop.signal.addEventListener('abort', () => {
  clearInterval(keepAlive);
  console.log('stopped');
});
console.log('ready', process.pid);
`,
);

const started: ChildProcess[] = [];
afterAll(() => {
  // Whatever a failed case left running: its whole process group (spawned detached).
  for (const c of started) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Starts `command` in the worker's project folder, in its own process group. */
function launch(command: string, args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(command, args, { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
  return { child, output: () => out, exited };
}

async function until(what: string, cond: () => boolean, child: ChildProcess, output: () => string): Promise<void> {
  for (let i = 0; i < 600 && !cond() && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  if (!cond()) throw new Error(`${what} did not happen (exit code ${child.exitCode}); output so far:\n${output()}`);
}

describe('a worker launched as the READMEs show stops on SIGTERM to the launched process', () => {
  for (const [name, command, args] of [
    ["node --import tsx worker.ts (one process: the signal is the worker's own)", process.execPath, ['--import', 'tsx', WORKER]],
    ['tsx worker.ts (tsx passes SIGTERM on to its node child)', join(dir, 'node_modules', '.bin', 'tsx'), [WORKER]],
    [
      'a shell script that ends with exec node --import tsx worker.ts (the shell becomes the worker)',
      '/bin/sh',
      ['-c', `exec node --import tsx ${WORKER}`],
    ],
  ] as const) {
    it(name, async () => {
      const w = launch(command, [...args]);
      await until('the worker starting', () => /ready \d+/.test(w.output()), w.child, w.output);
      w.child.kill('SIGTERM');
      expect(await w.exited).toBe(0);
      expect(w.output()).toContain('stopped');
    });
  }
});
