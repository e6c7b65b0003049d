import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, drain } from '../support/harness';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

describe('smoke', () => {
  it('appends, receives in order and acks', async () => {
    await h.createLog('smoke');
    const a = await h.append('smoke', [1, 2, 3, { x: 'y' }]);
    expect(a).toEqual({ firstSeq: 1, lastSeq: 4 });
    const b = await h.append(
      'smoke',
      Array.from({ length: 300 }, (_, i) => 'x'.repeat(200) + i),
    );
    expect(b).toEqual({ firstSeq: 5, lastSeq: 304 });
    const sid = await h.openSession('smoke');
    const got = await drain(h, sid, 37);
    expect(got.map((r) => r.seq)).toEqual(Array.from({ length: 304 }, (_, i) => i + 1));
    expect(got[3]!.data).toEqual({ x: 'y' });
    expect(got[303]!.data).toBe('x'.repeat(200) + 299);
    const d = await h.describe(sid);
    expect(d).toMatchObject({ cursor: 305, ackFloor: 304, inFlight: 0, lag: 0 });
  });
});
