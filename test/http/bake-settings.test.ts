/**
 * POST /bakes' settings for the guardrails (README "Config bake"): `finalBakeSeconds` (0, off, or
 * 60..3600, at least pollSeconds) and `dryRun`, which cannot be combined with a watch. Bad values
 * are a 400 whose message names the field and says what it can be.
 */
import { describe, expect, it } from 'vitest';
import { parse } from '../../lambdas/http/api';
import { StartBake } from '../../lambdas/http/schemas';
import { refusalOf, type Refusal } from '../support/refusal';

const CHANGES = [{ profile: 'delivery', version: '2' }];

function refusal(body: unknown): Refusal {
  try {
    parse(StartBake, body);
  } catch (e) {
    return refusalOf(e);
  }
  throw new Error(`expected ${JSON.stringify(body)} to be refused`);
}

describe('POST /bakes: finalBakeSeconds and dryRun', () => {
  it('defaults to no watch and no dry run, which older clients get without asking', () => {
    expect(parse(StartBake, { changes: CHANGES })).toMatchObject({ finalBakeSeconds: 0, dryRun: false });
  });

  it('takes a watch of 60..3600 seconds, and a dry run without a watch', () => {
    for (const finalBakeSeconds of [60, 61, 600, 3600])
      expect(parse(StartBake, { changes: CHANGES, finalBakeSeconds }).finalBakeSeconds).toBe(finalBakeSeconds);
    expect(parse(StartBake, { changes: CHANGES, dryRun: true, finalBakeSeconds: 0 })).toMatchObject({ dryRun: true, finalBakeSeconds: 0 });
  });

  it('refuses a watch outside its range with a 400 that says the range', () => {
    for (const finalBakeSeconds of [1, 59, 3601, -1]) {
      const e = refusal({ changes: CHANGES, finalBakeSeconds });
      expect(e.status).toBe(400);
      expect(e.message).toContain('finalBakeSeconds: must be 0 (no watch after promotion) or 60..3600 seconds');
    }
    expect(refusal({ changes: CHANGES, finalBakeSeconds: 90.5 }).message).toMatch(/finalBakeSeconds: /);
    expect(refusal({ changes: CHANGES, finalBakeSeconds: '600' }).message).toMatch(/finalBakeSeconds: /);
  });

  it('refuses a watch shorter than one poll', () => {
    const e = refusal({ changes: CHANGES, bakeSeconds: 600, pollSeconds: 120, finalBakeSeconds: 60 });
    expect(e.message).toContain('finalBakeSeconds: pollSeconds must not exceed finalBakeSeconds');
  });

  it('refuses a dry run with a watch: it promotes nothing, so there is nothing to watch', () => {
    const e = refusal({ changes: CHANGES, dryRun: true, finalBakeSeconds: 600 });
    expect(e.status).toBe(400);
    expect(e.message).toContain('finalBakeSeconds: a dry run promotes nothing, so there is nothing to watch after it');
    expect(refusal({ changes: CHANGES, dryRun: 'yes' }).message).toMatch(/dryRun: /);
  });
});
