/**
 * A short run of the chaos checker (bin/chaos.ts, `npm run chaos`): producers and crashing
 * workers on the local runtime under throttles, lost responses and slow calls, the history
 * checked against the contract's model. Every check must pass; the counts show the faults and
 * the failures the run went through, so a run that exercised nothing cannot pass quietly.
 */
import { describe, expect, it } from 'vitest';
import { parseChaosArgs, runChaos } from '../../bin/chaos';

describe('npm run chaos', () => {
  it('a 12 s run under the default faults passes every check', async () => {
    const lines: string[] = [];
    const r = await runChaos({ seconds: 12, seed: 20261206, log: (l) => lines.push(l) });
    const summary = lines.filter((l) => /^\d+ passed, \d+ failed$/.test(l));
    expect(summary).toEqual([`${r.checks.length} passed, 0 failed`]);
    expect(r.failed, lines.join('\n')).toBe(0);
    expect(r.checks.length).toBeGreaterThanOrEqual(12);
    // It went through what it is meant to: faults of every kind, redeliveries, dead letters, crashes.
    expect(r.counts['faults throttle']).toBeGreaterThan(0);
    expect(r.counts['faults applied-then-error']).toBeGreaterThan(0);
    expect(r.counts['faults slow']).toBeGreaterThan(0);
    expect(r.counts.deliveries).toBeGreaterThan(500);
    expect(r.counts.redeliveries).toBeGreaterThan(0);
    expect(r.counts['dead letters']).toBeGreaterThan(0);
    expect((r.counts['workers crashed'] ?? 0) + (r.counts['workers stopped'] ?? 0)).toBeGreaterThan(0);
    expect(r.replay).toBe(`npm run chaos -- --seconds 12 --seed 20261206 --faults 'throttle=0.05,applied-then-error=0.02,slow=0.01:800ms'`);
  }, 240_000);

  it('refuses bad arguments, naming them', () => {
    expect(parseChaosArgs(['--seconds', '30', '--seed', '7', '--faults', 'throttle=0.1'])).toEqual({
      seconds: 30,
      seed: 7,
      faults: 'throttle=0.1',
    });
    expect(() => parseChaosArgs(['--seconds', '0'])).toThrow(/--seconds must be a whole number from 1 to 3600/);
    expect(() => parseChaosArgs(['--seed', 'x'])).toThrow(/--seed must be a whole number/);
    expect(() => parseChaosArgs(['--faults', 'throttle=2'])).toThrow(/--faults gives throttle the probability '2'/);
  });
});
