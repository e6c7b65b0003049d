/**
 * The `npm start` banner's bake lines (local/banner.ts): the time scale in force, where it came
 * from, what it makes of a default phase, and that a phase needs traffic; and `npm start` itself
 * printing them under LOGRELAY_TIME_SCALE; and the line it prints per bake event.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bakeBannerLines, printEvents } from '../../local/banner';
import { LocalEventBridge } from '../../local/eventbridge';

describe('the bake lines of the npm start banner', () => {
  it('at time scale 1: durations are real, a default phase takes about ten minutes', () => {
    expect(bakeBannerLines(1, 'default')).toEqual([
      '  time scale: 1x (LOGRELAY_TIME_SCALE unset): bake durations pass in real time; a phase with the default bakeSeconds 600 takes about 10m 12s (LOGRELAY_TIME_SCALE=60 npm start: about 10s)',
      '  bakes need traffic: a phase is approved only with at least minExperimentRequests (default 200) experiment requests, about 2,000 requests in all at the default weight 10%; make some with npm run traffic',
    ]);
  });

  it('under LOGRELAY_TIME_SCALE: how much faster, what a default phase and a poll take, what is not scaled', () => {
    const [scale] = bakeBannerLines(60, 'LOGRELAY_TIME_SCALE');
    expect(scale).toBe(
      '  time scale: 60x (LOGRELAY_TIME_SCALE): bake durations pass 60x faster; a phase with the default bakeSeconds 600 takes about 10s, a poll every 500 ms (leases, ack and idle timeouts are not scaled)',
    );
    expect(bakeBannerLines(10, 'LOGRELAY_TIME_SCALE')[0]).toContain('takes about 1m 01s, a poll every 3s');
  });

  it('npm start prints them with the scale it runs at', async () => {
    const child = spawn(process.execPath, [join(__dirname, '../../node_modules/tsx/dist/cli.mjs'), join(__dirname, '../../bin/local.ts')], {
      cwd: mkdtempSync(join(tmpdir(), 'logrelay-banner-')),
      env: { ...process.env, PORT: '0', LOGRELAY_TIME_SCALE: '30' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    try {
      for (let i = 0; i < 600 && !out.includes('Ctrl-C stops') && child.exitCode === null; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain(
        '  time scale: 30x (LOGRELAY_TIME_SCALE): bake durations pass 30x faster; a phase with the default bakeSeconds 600 takes about 20s, a poll every 1s',
      );
      expect(out).toContain('make some with npm run traffic');
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT');
        await exited;
      }
    }
  }, 90_000);

  it('prints one line per event the bus records, in order, as it comes, until stopped', () => {
    const bus = new LocalEventBridge(() => Date.parse('2026-12-06T05:00:00Z'));
    const lines: string[] = [];
    const stop = printEvents(bus, (l) => lines.push(l));
    const put = (type: string, seq: number) =>
      bus.putEvents({ Entries: [{ Source: 'logrelay.bake', DetailType: type, Detail: JSON.stringify({ type, seq, bakeId: 'b-1' }) }] });
    put('BakeStarted', 0);
    put('PhaseRejected', 1);
    stop();
    put('BakeEnded', 2);
    expect(lines).toEqual([
      'event 2026-12-06T05:00:00.000Z logrelay.bake "BakeStarted" {"type":"BakeStarted","seq":0,"bakeId":"b-1"}',
      'event 2026-12-06T05:00:00.000Z logrelay.bake "PhaseRejected" {"type":"PhaseRejected","seq":1,"bakeId":"b-1"}',
    ]);
  });
});
