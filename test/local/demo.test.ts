/** `npm run demo` must keep working: it exits 0 only if its own tally adds up. */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

describe('npm run demo', () => {
  it('runs the delivery demo to a tally where appended = acked and exits 0', () => {
    const root = join(__dirname, '../..');
    const r = spawnSync(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, 'bin/demo.ts')], {
      cwd: root,
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(r.stdout).toMatch(/\| records appended \(log lastSeq\)\s+\| 2000 \|/);
    expect(r.stdout).toMatch(/\| records acked \(distinct\)\s+\| 2000 \|/);
    expect(r.stdout).toMatch(/of those, redelivered to others\s+\| (\d+) \|/);
    expect(r.stdout).toMatch(/^OK: appended = acked/m);
    // On failure, show what the demo printed: its tally says which check did not hold.
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  }, 100_000);
});
