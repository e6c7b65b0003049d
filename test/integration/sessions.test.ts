import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CrashError, Harness, type Reply } from '../support/harness';
import { settle, VIEW_MAX_AGE_MS } from '../../lambdas/domain/session';
import { ConflictError } from '../../lambdas/domain/errors';
import { COMPACT_AT } from '../../lambdas/services/sessions';
import { DynamoStore, type Store } from '../../lambdas/adapters/store';

let h: Harness;
beforeAll(async () => {
  h = await Harness.start();
});
afterAll(async () => h?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Intercepted = 'claimSession' | 'compactSession';
type Wrapper<K extends Intercepted> = Store[K] extends (...a: infer A) => infer R ? (real: (...a: A) => R, ...args: A) => R : never;

/**
 * Replaces a store method with `impl`, which gets the real method (unwrapped: the harness's
 * proxy records the call once in h.calls, when `impl` resolves; a refused or crashed call is
 * not recorded). Returns the undo.
 */
function intercept<K extends Intercepted>(name: K, impl: Wrapper<K>): () => void {
  const own = DynamoStore.prototype[name] as unknown as (...a: unknown[]) => Promise<unknown>;
  const target = h.store as unknown as Record<string, unknown>;
  target[name] = function (this: unknown, ...args: unknown[]) {
    return (impl as unknown as (real: (...a: unknown[]) => Promise<unknown>, ...a: unknown[]) => Promise<unknown>)(
      (...a) => own.apply(this, a),
      ...args,
    );
  };
  return () => {
    delete target[name];
  };
}

/** Every compaction attempt, in the order they settled: what it read, and whether it was written. */
type Compaction = { claims: number; acks: number; ok: boolean };
function logCompactions(before?: (stored: Parameters<Store['compactSession']>[0]) => Promise<void>): {
  log: Compaction[];
  undo: () => void;
} {
  const log: Compaction[] = [];
  const undo = intercept('compactSession', async (real, stored, next, opts) => {
    if (before) await before(stored);
    const entry = { claims: stored.claims.length, acks: stored.acks.length };
    try {
      await real(stored, next, opts);
    } catch (e) {
      log.push({ ...entry, ok: false });
      throw e;
    }
    log.push({ ...entry, ok: true });
  });
  return { log, undo };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Logs compactions; the first one waits between its read and its write until `release`. */
function holdFirstCompaction(): {
  held: ReturnType<typeof deferred>;
  release: ReturnType<typeof deferred>;
  compactions: ReturnType<typeof logCompactions>;
} {
  const held = deferred();
  const release = deferred();
  let hold = true;
  const compactions = logCompactions(async () => {
    if (!hold) return;
    hold = false;
    held.resolve();
    await release.promise;
  });
  return { held, release, compactions };
}

/** Waits for `p`, failing clearly instead of hanging until the test's timeout. */
const within = (p: Promise<void>, what: string, ms = 10_000): Promise<void> =>
  Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`${what} did not happen within ${ms} ms`)))]);

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const count = (op: string): number => h.calls.filter((c) => c === op).length;

describe('receiver sessions', () => {
  it('16 concurrent workers, some crashing: every record acked exactly once, none handed to two workers while leased', async () => {
    await h.createLog('fleet');
    const total = 1500;
    for (let i = 0; i < total; i += 500)
      await h.append(
        'fleet',
        Array.from({ length: 500 }, (_, k) => ({ n: i + k + 1 })),
      );
    const ackTimeoutSeconds = 1;
    const sid = await h.openSession('fleet', { ackTimeoutSeconds, maxDeliveries: 100 });
    const deliveries = new Map<number, { worker: number; grantedMs: number; leaseMs: number }[]>();
    const ackedByHarness = new Set<number>();
    let ackedByService = 0;
    let crashes = 0;
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const deadline = Date.now() + 50_000;
    await Promise.all(
      Array.from({ length: 16 }, async (_, worker) => {
        while (ackedByHarness.size < total && Date.now() < deadline) {
          const recs = await h.receive(sid, { maxRecords: 20 });
          if (!recs.length) {
            await sleep(50);
            continue;
          }
          for (const r of recs) {
            expect(r.data).toEqual({ n: r.seq });
            const leaseMs = Date.parse(r.leaseExpiresAt);
            const list = deliveries.get(r.seq) ?? [];
            list.push({ worker, grantedMs: leaseMs - ackTimeoutSeconds * 1000, leaseMs });
            deliveries.set(r.seq, list);
          }
          if (rand() < 0.15) {
            crashes++; // this worker "crashes": it never acks this batch
            continue;
          }
          // Acks part one by one and the rest as a range list, as real workers mix both.
          const seqs = recs.map((r) => r.seq);
          const half = Math.floor(seqs.length / 2);
          const a = await h.ack(sid, { seqs: seqs.slice(0, half) });
          const b = await h.ack(sid, { ranges: seqs.slice(half).map((s) => [s, s]) });
          ackedByService += a + b;
          for (const s of seqs) ackedByHarness.add(s);
        }
      }),
    );
    expect(crashes).toBeGreaterThan(0);
    expect(ackedByHarness.size).toBe(total);
    // The service counted each record's ack once, whatever the duplicates.
    expect(ackedByService).toBe(total);
    // Never two live leases on one record: each grant came after the previous lease ended.
    let redelivered = 0;
    for (const [, list] of deliveries) {
      list.sort((a, b) => a.grantedMs - b.grantedMs);
      for (let k = 1; k < list.length; k++) {
        expect(list[k]!.grantedMs).toBeGreaterThanOrEqual(list[k - 1]!.leaseMs);
        redelivered++;
      }
    }
    expect(redelivered).toBeGreaterThan(0);
    const d = await h.describe(sid);
    expect(d).toMatchObject({ cursor: total + 1, ackFloor: total, inFlight: 0, deadLettered: 0, lag: 0 });
  }, 90_000);

  it('concurrent receives and acks never lose a write to each other; one receive in COMPACT_AT folds the pending list', async () => {
    await h.createLog('no-races');
    await h.append(
      'no-races',
      Array.from({ length: 400 }, (_, i) => i + 1),
    );
    const sid = await h.openSession('no-races');
    const workers = 8;
    const rounds = 3; // 24 claims: the receive whose claim makes the list COMPACT_AT long folds it
    h.calls = [];
    const got: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const batches = await Promise.all(Array.from({ length: workers }, () => h.receive(sid, { maxRecords: 10 })));
      const seqs = batches.map((b) => b.map((r) => r.seq));
      for (const b of seqs) expect(b).toHaveLength(10);
      got.push(...seqs.flat());
      const acked = await Promise.all(seqs.map((b) => h.ack(sid, { ranges: [[b[0]!, b[9]!]] })));
      expect(acked).toEqual(Array(workers).fill(10));
    }
    // Disjoint, and together exactly the first 240 records.
    expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: workers * rounds * 10 }, (_, i) => i + 1));
    const count = (op: string) => h.calls.filter((c) => c === op).length;
    // One claim per receive and one update per ack: no write was refused and repeated.
    expect(count('claimSession')).toBe(workers * rounds);
    expect(count('ackSession')).toBe(workers * rounds);
    expect(count('compactSession')).toBeGreaterThanOrEqual(1);
    expect(count('compactSession')).toBeLessThanOrEqual(Math.floor((workers * rounds) / COMPACT_AT));
    expect(await h.describe(sid)).toMatchObject({ cursor: 241, ackFloor: 240, inFlight: 0, lag: 160 });
  });

  it('a compaction folds exactly the claims and acks it read; those that land after it stay pending (on every engine)', async () => {
    await h.createLog('fold');
    await h.append(
      'fold',
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    const sid = await h.openSession('fold');
    const now = h.clock.now();
    const lease = now + 30_000;
    const far = now + 3_600_000;
    const owner = (await h.store.getSession(sid))!.state.owner;
    const claim5 = (leaseMs: number) =>
      h.store.claimSession({ sessionId: sid, n: 5, limit: 100, releases: 0, leaseMs, expiresMs: far, nowMs: now });
    for (let i = 0; i < 3; i++) await claim5(lease + i); // 1-5, 6-10, 11-15
    await h.store.ackSession(sid, owner, [{ from: 6, to: 10, atMs: now }], 10, now);
    const read = (await h.store.getSession(sid))!;
    expect(read.claims).toHaveLength(3);
    // After the read, before the compaction: two more claims (16-20, 21-25) and an ack of 1-2.
    await claim5(lease + 3);
    await claim5(lease + 4);
    await h.store.ackSession(sid, owner, [{ from: 1, to: 2, atMs: now + 1 }], 2, now + 1);
    const next = settle(read);
    await h.store.compactSession(read, next);
    const after = (await h.store.getSession(sid))!;
    // Folded: the three claims and the ack of 6-10; pending: the two later claims and the ack of 1-2.
    expect(after.state.cursor).toBe(16);
    expect(after.state.leases).toEqual([
      { from: 1, to: 5, leaseMs: lease, count: 1 },
      { from: 11, to: 15, leaseMs: lease + 2, count: 1 },
    ]);
    expect(after.claims).toEqual([
      { n: 5, leaseMs: lease + 3 },
      { n: 5, leaseMs: lease + 4 },
    ]);
    expect(after.acks).toEqual([{ from: 1, to: 2, atMs: now + 1 }]);
    const settled = settle(after);
    expect(settled.cursor).toBe(26);
    expect(settled.leases.map((l) => [l.from, l.to])).toEqual([
      [3, 5],
      [11, 15],
      [16, 20],
      [21, 25],
    ]);
    // A second compaction from the stale read is refused: the version moved.
    await expect(h.store.compactSession(read, settle(read))).rejects.toBeInstanceOf(ConflictError);
  });

  it('a fold that ran while COMPACT_AT more claims landed leaves a long list: the claim reaching the next multiple folds it, never the overdue path', async () => {
    await h.createLog('slow-fold');
    await h.append('slow-fold', range(1, 100));
    const sid = await h.openSession('slow-fold');
    // Pending-list length each claim returned, in order.
    const pendings: number[] = [];
    let crashAtPending: number | undefined;
    const undoClaim = intercept('claimSession', async (real, ...args) => {
      const out = await real(...args);
      pendings.push(out.pending);
      if (out.pending === crashAtPending) {
        crashAtPending = undefined;
        throw new CrashError('claimSession'); // the host dies right after its claim: its fold never runs
      }
      return out;
    });
    // The first compaction (the fold of the claim that made the list COMPACT_AT long) waits.
    const { held, release, compactions } = holdFirstCompaction();
    // Stored pending-claim count after each receive the test drives.
    const lengths: number[] = [];
    const got: number[] = [];
    const take = async (): Promise<void> => {
      const recs = await h.receive(sid, { maxRecords: 1 });
      expect(recs).toHaveLength(1);
      got.push(recs[0]!.seq);
      lengths.push((await h.store.getSession(sid))!.claims.length);
    };
    h.calls = [];
    try {
      for (let i = 1; i < COMPACT_AT; i++) await take();
      const folding = h.receive(sid, { maxRecords: 1 }); // claim 12: its fold (of the 12 claims the claim returned) waits
      await within(held.promise, "the fold's compaction");
      // 13 more claims land while the fold waits. The one that makes the list 2 × COMPACT_AT long
      // crashes right after its claim, so no other fold races this one.
      crashAtPending = 2 * COMPACT_AT;
      for (let i = 0; i < COMPACT_AT + 1; i++) {
        if (i === COMPACT_AT - 1) {
          const r = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 1 });
          expect([r.status, r.body.error.code]).toEqual([500, 'InternalError']);
          continue;
        }
        await take();
      }
      expect(compactions.log).toEqual([]);
      release.resolve();
      got.push(...(await folding).map((r) => r.seq));
      // The fold removed the 12 claims it read: the 13 that landed since stay pending.
      const left = (await h.store.getSession(sid))!;
      expect(left.claims).toHaveLength(COMPACT_AT + 1);
      expect(left.claims.length).toBeGreaterThanOrEqual(COMPACT_AT);
      expect(left.state.cursor).toBe(COMPACT_AT + 1);
      lengths.push(left.claims.length);
      // Keep receiving, one at a time: 3 × COMPACT_AT more claims.
      for (let i = 0; i < 3 * COMPACT_AT; i++) await take();
    } finally {
      release.resolve();
      undoClaim();
      compactions.undo();
    }
    // The list was folded by the claim that made it 24 long (the next multiple), then at every
    // multiple of 12 after: no receive found it overdue (3 × COMPACT_AT) and compacted itself.
    expect(compactions.log).toEqual([
      { claims: 12, acks: 0, ok: true }, // the slow fold
      { claims: 24, acks: 0, ok: true }, // claim 36: the list 13 + 11 = 24 long
      { claims: 12, acks: 0, ok: true }, // claim 48
      { claims: 12, acks: 0, ok: true }, // claim 60
    ]);
    expect(count('compactSession')).toBe(4);
    expect(pendings).toEqual([...range(1, 25), ...range(14, 24), ...range(1, 12), ...range(1, 12), 1]);
    expect(lengths).toEqual([...range(1, 11), ...range(13, 23), 25, 13, ...range(14, 23), 0, ...range(1, 11), 0, ...range(1, 11), 0, 1]);
    expect(Math.max(...lengths)).toBe(25);
    expect(Math.max(...lengths)).toBeLessThan(3 * COMPACT_AT);
    // Each record once, but 24 (its receive crashed after the claim: leased until the lease ends).
    expect(got.sort((a, b) => a - b)).toEqual(range(1, 61).filter((s) => s !== 24));
    expect(await h.describe(sid)).toMatchObject({ cursor: 62, ackFloor: 0, inFlight: 61, lag: 39 });
  });

  it('a fold that loses to a nack re-reads once and folds what landed since (the acks made the list due again)', async () => {
    await h.createLog('fold-retry');
    await h.append('fold-retry', range(1, 100));
    const sid = await h.openSession('fold-retry');
    for (let i = 1; i < COMPACT_AT; i++) expect((await h.receive(sid, { maxRecords: 2 })).map((r) => r.seq)).toEqual([2 * i - 1, 2 * i]);
    // Between the fold's read and its write: a nack (a compaction: it folds the 12 claims), then
    // 12 acks (atomic updates), which make the list due again.
    // (Checked after the receive: an assertion failing in there would only make it answer 500.)
    let inject = true;
    const injected: unknown[] = [];
    const compactions = logCompactions(async () => {
      if (!inject) return;
      inject = false;
      injected.push((await h.call('POST', `/sessions/${sid}/nack`, { seqs: [1] })).body);
      for (const seq of range(2, 13)) injected.push(await h.ack(sid, { seqs: [seq] }));
    });
    h.calls = [];
    let res: Reply;
    try {
      res = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 2 });
    } finally {
      compactions.undo();
    }
    expect(injected).toEqual([{ released: 1 }, ...Array(12).fill(1)]);
    expect(res.status).toBe(200);
    expect(res.body.records.map((r: { seq: number }) => r.seq)).toEqual([23, 24]);
    expect(compactions.log).toEqual([
      { claims: 12, acks: 0, ok: true }, // the nack
      { claims: 12, acks: 0, ok: false }, // the fold: refused, the version moved
      { claims: 0, acks: 12, ok: true }, // the fold again, from a fresh read
    ]);
    expect(count('compactSession')).toBe(2); // refused writes are not recorded
    // The fold's first try folds the session as its claim returned it (no read); its retry
    // reads once, the nack once.
    expect(count('getSession')).toBe(2);
    expect(count('claimSession')).toBe(1);
    expect(count('ackSession')).toBe(12);
    const after = (await h.store.getSession(sid))!;
    expect([after.claims, after.acks]).toEqual([[], []]);
    expect(after.state.cursor).toBe(25);
    expect(after.state.releases).toBe(1);
    expect(await h.describe(sid)).toMatchObject({
      cursor: 25,
      ackFloor: 0,
      inFlightRanges: [
        [1, 1],
        [14, 24],
      ],
    });
    // The nacked record comes back first.
    expect((await h.receive(sid, { maxRecords: 1 })).map((r) => [r.seq, r.deliveryCount])).toEqual([[1, 2]]);
  });

  it('a fold that loses to another fold re-reads once and leaves a short list alone', async () => {
    await h.createLog('fold-race');
    await h.append('fold-race', range(1, 100));
    const sid = await h.openSession('fold-race');
    const { held, release, compactions } = holdFirstCompaction();
    const got: number[] = [];
    try {
      for (let i = 1; i < COMPACT_AT; i++) got.push(...(await h.receive(sid, { maxRecords: 1 })).map((r) => r.seq));
      h.calls = [];
      const slow = h.receive(sid, { maxRecords: 1 }); // claim 12: its fold (of the 12 claims the claim returned) waits
      await within(held.promise, "the fold's compaction");
      // 13 more claims: the one that makes the list 24 long folds all 24 (the same version the
      // slow fold read), so the slow fold's write is refused.
      for (let i = 0; i < COMPACT_AT + 1; i++) got.push(...(await h.receive(sid, { maxRecords: 1 })).map((r) => r.seq));
      expect(compactions.log).toEqual([{ claims: 24, acks: 0, ok: true }]);
      release.resolve();
      got.push(...(await slow).map((r) => r.seq));
    } finally {
      release.resolve();
      compactions.undo();
    }
    expect(compactions.log).toEqual([
      { claims: 24, acks: 0, ok: true }, // the fold of claim 24
      { claims: 12, acks: 0, ok: false }, // the slow fold: refused; its re-read found 1 claim, not due
    ]);
    expect(count('compactSession')).toBe(1);
    // Only the slow fold's re-read: both folds first tried the session as their claims returned it.
    expect(count('getSession')).toBe(1);
    const after = (await h.store.getSession(sid))!;
    expect(after.claims).toHaveLength(1);
    expect(after.state.cursor).toBe(25);
    expect(got.sort((a, b) => a - b)).toEqual(range(1, 25));
  });

  it('an ack applied by a compaction is not counted again when an atomic ack of the same record landed between its read and its write', async () => {
    // Found by npm run chaos (seed 202): a compaction's condition was the version only, which
    // atomic acks do not change, so both counted the record.
    await h.createLog('ack-race');
    await h.append('ack-race', range(1, 20));
    const sid = await h.openSession('ack-race');
    expect((await h.receive(sid, { maxRecords: 18 })).map((r) => r.seq)).toEqual(range(1, 18));
    const scattered = range(1, 18).filter((n) => n % 2 === 1); // 9 ranges: applied with a compaction
    const { held, release, compactions } = holdFirstCompaction();
    let slow: Promise<number> | undefined;
    try {
      slow = h.ack(sid, { seqs: scattered });
      await within(held.promise, "the scattered ack's compaction");
      // Another worker (or the same one, retrying) acks record 1 atomically meanwhile.
      expect(await h.ack(sid, { seqs: [1] })).toBe(1);
      release.resolve();
      // The compaction is refused (an ack landed since its read), reads again, and counts 8.
      expect(await slow).toBe(scattered.length - 1);
    } finally {
      release.resolve();
      await slow?.catch(() => undefined);
      compactions.undo();
    }
    expect(compactions.log.map((c) => c.ok)).toEqual([false, true]);
    const v = await h.describe(sid);
    expect(v.inFlight).toBe(18 - scattered.length);
  });

  it('acks carried on a redelivering receive are not counted again when an atomic ack of the same record landed meanwhile', async () => {
    await h.createLog('carried-race');
    await h.append('carried-race', range(1, 4));
    const sid = await h.openSession('carried-race', { ackTimeoutSeconds: 1 });
    expect((await h.receive(sid, { maxRecords: 2 })).map((r) => r.seq)).toEqual([1, 2]);
    expect((await h.receive(sid, { maxRecords: 2 })).map((r) => r.seq)).toEqual([3, 4]);
    h.clock.advance(1500); // 1 and 2 expire; 3 and 4 are extended below, so they stay leased
    expect((await h.call('POST', `/sessions/${sid}/extend`, { seqs: [3, 4], seconds: 60 })).status).toBe(200);
    const { held, release, compactions } = holdFirstCompaction();
    let slow: Promise<{ status: number; body: any }> | undefined;
    try {
      // Redelivers 1 and 2 (a compaction) and carries the ack of 3.
      slow = h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 2, ack: { seqs: [3] } });
      await within(held.promise, "the redelivery's compaction");
      expect(await h.ack(sid, { seqs: [3] })).toBe(1);
      release.resolve();
      const r = await slow;
      expect(r.status).toBe(200);
      expect(r.body.records.map((x: { seq: number }) => x.seq)).toEqual([1, 2]);
      expect(r.body.acked ?? 0).toBe(0);
    } finally {
      release.resolve();
      await slow?.catch(() => undefined);
      compactions.undo();
    }
    expect(compactions.log.map((c) => c.ok)).toEqual([false, true]);
  });

  it('a fold retries once only: losing twice leaves a due list for the next fold', async () => {
    await h.createLog('fold-twice');
    await h.append('fold-twice', range(1, 100));
    const sid = await h.openSession('fold-twice');
    for (let i = 1; i < COMPACT_AT; i++)
      expect((await h.receive(sid, { maxRecords: 3 })).map((r) => r.seq)).toEqual(range(3 * i - 2, 3 * i));
    // Before each of the fold's writes: a nack (a compaction: it folds the list), then 12 acks,
    // which make the list due again.
    const acks = [range(2, 13), range(14, 25)];
    const injected: unknown[] = [];
    let nacking = false;
    let round = 0;
    const compactions = logCompactions(async () => {
      if (nacking || round >= acks.length) return;
      const mine = acks[round++]!;
      nacking = true;
      try {
        injected.push((await h.call('POST', `/sessions/${sid}/nack`, { seqs: [1], delaySeconds: 600 })).body);
      } finally {
        nacking = false;
      }
      for (const seq of mine) injected.push(await h.ack(sid, { seqs: [seq] }));
    });
    h.calls = [];
    let res: Reply;
    try {
      res = await h.call('POST', `/sessions/${sid}/receive`, { maxRecords: 3 });
    } finally {
      compactions.undo();
    }
    expect(injected).toEqual([{ released: 1 }, ...Array(12).fill(1), { released: 1 }, ...Array(12).fill(1)]);
    // Losing its fold twice does not fail the receive.
    expect(res.status).toBe(200);
    expect(res.body.records.map((r: { seq: number }) => r.seq)).toEqual([34, 35, 36]);
    expect(compactions.log).toEqual([
      { claims: 12, acks: 0, ok: true }, // the first nack
      { claims: 12, acks: 0, ok: false }, // the fold
      { claims: 0, acks: 12, ok: true }, // the second nack
      { claims: 0, acks: 12, ok: false }, // the fold's one retry: no third attempt
    ]);
    expect(count('compactSession')).toBe(2);
    expect(count('getSession')).toBe(3); // the fold's retry (its first try needs no read), one by each nack
    // The fold gave up: the 12 acks made after the second nack stay pending.
    const after = (await h.store.getSession(sid))!;
    expect([after.claims.length, after.acks.length]).toEqual([0, 12]);
    expect(settle(after).leases.map((l) => [l.from, l.to])).toEqual([
      [1, 1],
      [26, 27],
      [28, 30],
      [31, 33],
      [34, 36],
    ]);
  });

  it('a fold that fails (storage throttled) does not fail the receive whose claim succeeded', async () => {
    await h.createLog('fold-fails');
    await h.append('fold-fails', range(1, 40));
    const sid = await h.openSession('fold-fails');
    const version0 = (await h.store.getSession(sid))!.state.version;
    let refused = 0;
    const undo = intercept('compactSession', async () => {
      refused++;
      throw Object.assign(new Error('Throughput exceeds the current capacity of your table'), {
        name: 'ProvisionedThroughputExceededException',
      });
    });
    const got: number[] = [];
    try {
      // Claim 12 starts a fold whose compaction throws: the receive still hands out its record.
      for (let i = 1; i <= COMPACT_AT; i++) got.push(...(await h.receive(sid, { maxRecords: 1 })).map((r) => r.seq));
    } finally {
      undo();
    }
    expect(refused).toBe(1);
    expect(got).toEqual(range(1, COMPACT_AT));
    // Nothing was folded: the claims stay pending for the next multiple (or the overdue backstop).
    const after = (await h.store.getSession(sid))!;
    expect(after.claims).toHaveLength(COMPACT_AT);
    expect(after.state.version).toBe(version0);
  });

  // 'read': the receive reads the session (this host's view of its last claim is too old to
  // claim from); 'view': it claims from that view, so the nack lands between the view and the claim.
  it.each(['read', 'view'] as const)(
    'a receive never hands out fresh records past records another host released after its %s',
    async (path) => {
      const logId = `warm-${path}`;
      await h.createLog(logId);
      await h.append(
        logId,
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      const sid = await h.openSession(logId);
      expect((await h.receive(sid, { maxRecords: 5 })).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
      if (path === 'read') h.clock.advance(VIEW_MAX_AGE_MS);
      // The nack lands right before the receive's claim (on the leases function: another host).
      const real = h.store.claimSession.bind(h.store);
      let nacked = false;
      (h.store as { claimSession: typeof real }).claimSession = async (...args) => {
        if (!nacked) {
          nacked = true;
          expect((await h.call('POST', `/sessions/${sid}/nack`, { ranges: [[2, 3]] })).body).toEqual({ released: 2 });
        }
        return real(...args);
      };
      h.calls = [];
      try {
        const next = await h.receive(sid, { maxRecords: 5 });
        expect(next.map((r) => [r.seq, r.deliveryCount])).toEqual([
          [2, 2],
          [3, 2],
        ]);
      } finally {
        delete (h.store as { claimSession?: unknown }).claimSession;
      }
      // The claim was refused (refused writes are not in h.calls); the receive read (again) and
      // redelivered with a compaction.
      expect(h.calls.filter((c) => c === 'getSessionWithHead')).toHaveLength(path === 'read' ? 2 : 1);
      expect(h.calls).toContain('compactSession');
      expect(h.calls).not.toContain('claimSession');
      expect((await h.receive(sid, { maxRecords: 5 })).map((r) => r.seq)).toEqual([6, 7, 8, 9, 10]);
    },
  );

  it('redelivers after the lease expires with deliveryCount rising, then dead-letters after maxDeliveries', async () => {
    await h.createLog('poison');
    await h.append('poison', ['ok1', 'bad', 'ok2']);
    const sid = await h.openSession('poison', { ackTimeoutSeconds: 10, maxDeliveries: 3 });
    const first = await h.receive(sid);
    expect(first.map((r) => [r.seq, r.deliveryCount])).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    await h.ack(sid, { seqs: [1, 3] });
    expect(await h.receive(sid)).toEqual([]); // seq 2 still leased
    for (const expected of [2, 3]) {
      h.clock.advance(10_001);
      const again = await h.receive(sid);
      expect(again.map((r) => [r.seq, r.deliveryCount])).toEqual([[2, expected]]);
      expect(Date.parse(again[0]!.leaseExpiresAt)).toBeGreaterThan(h.clock.now() + 9_000);
    }
    h.clock.advance(10_001);
    // Its last lease ran out: it is dead-lettered, and a late ack can no longer take it back.
    expect(await h.ack(sid, { seqs: [2] })).toBe(0);
    expect(await h.receive(sid)).toEqual([]);
    const d = await h.describe(sid);
    expect(d).toMatchObject({ deadLettered: 1, inFlight: 0, ackFloor: 3 });
    const dl = await h.call('GET', `/sessions/${sid}/dead-letters`);
    expect(dl.body).toEqual({ ranges: [[2, 2, 3]] });
    // New records still flow after the poison one.
    await h.append('poison', ['ok3']);
    expect((await h.receive(sid)).map((r) => r.data)).toEqual(['ok3']);
  });

  it('nack releases a lease (after its delay); extend keeps a slow record from being redelivered', async () => {
    await h.createLog('nack');
    await h.append('nack', ['a', 'b', 'c', 'd']);
    const sid = await h.openSession('nack', { ackTimeoutSeconds: 30 });
    await h.receive(sid, { maxRecords: 4 });
    const nack = await h.call('POST', `/sessions/${sid}/nack`, { seqs: [1], ranges: [[3, 3]] });
    expect(nack.body).toEqual({ released: 2 });
    expect((await h.receive(sid)).map((r) => [r.seq, r.deliveryCount])).toEqual([
      [1, 2],
      [3, 2],
    ]);
    const delayed = await h.call('POST', `/sessions/${sid}/nack`, { seqs: [1], delaySeconds: 5 });
    expect(delayed.body).toEqual({ released: 1 });
    expect(await h.receive(sid)).toEqual([]);
    h.clock.advance(5_001);
    expect((await h.receive(sid)).map((r) => r.seq)).toEqual([1]);
    // extend: seq 2 was leased for 30 s; extend it to 120 s from now; only live leases count.
    const ext = await h.call('POST', `/sessions/${sid}/extend`, { seqs: [2, 99], seconds: 120 });
    expect(ext.body).toEqual({ extended: 1 });
    h.clock.advance(60_000);
    // 1, 3, 4 expired and come back; 2 does not.
    expect((await h.receive(sid)).map((r) => r.seq)).toEqual([1, 3, 4]);
    expect(await h.ack(sid, { seqs: [1, 3, 4] })).toBe(3);
    h.clock.advance(61_000);
    expect((await h.receive(sid)).map((r) => r.seq)).toEqual([2]);
    // acking unknown, never-sent or already-acked numbers counts 0 and is no error.
    expect(await h.ack(sid, { seqs: [2, 1000] })).toBe(1);
    expect(await h.ack(sid, { seqs: [2] })).toBe(0);
  });

  it('long-polls until records arrive', async () => {
    await h.createLog('poll');
    const sid = await h.openSession('poll', { start: 'latest' });
    const started = Date.now();
    const pending = h.receive(sid, { waitSeconds: 5 });
    await sleep(300);
    await h.append('poll', ['late']);
    const got = await pending;
    expect(got.map((r) => r.data)).toEqual(['late']);
    expect(Date.now() - started).toBeLessThan(4_000);
    // An empty long poll waits the whole waitSeconds (it answered after ~770 ms when the last
    // poll interval that would overshoot the wait was skipped instead of shortened).
    const emptyStarted = Date.now();
    const empty = await h.receive(sid, { waitSeconds: 1 });
    expect(empty).toEqual([]);
    expect(Date.now() - emptyStarted).toBeGreaterThanOrEqual(1_000);
  });

  it('respects maxInFlight and the delivery byte budget', async () => {
    await h.createLog('budget');
    await h.append(
      'budget',
      Array.from({ length: 10 }, (_, i) => 'x'.repeat(400_000 / 4) + i),
    );
    const sid = await h.openSession('budget', { maxInFlight: 15 });
    // 100 KB records under the default 1 MiB budget: 10 fit... make it tighter via config.
    h.config = { ...h.config, delivery: { ...h.config.delivery, maxBatchBytes: 250_000 } };
    try {
      const a = await h.receive(sid, { maxRecords: 10 });
      expect(a.map((r) => r.seq)).toEqual([1, 2]);
      const b = await h.receive(sid, { maxRecords: 10 });
      expect(b.map((r) => [r.seq, r.deliveryCount])).toEqual([
        [3, 1],
        [4, 1],
      ]);
    } finally {
      h.config = { ...h.config, delivery: { ...h.config.delivery, maxBatchBytes: 1_048_576 } };
    }
    await h.createLog('inflight');
    await h.append(
      'inflight',
      Array.from({ length: 30 }, (_, i) => i),
    );
    const s2 = await h.openSession('inflight', { maxInFlight: 12 });
    expect((await h.receive(s2, { maxRecords: 10 })).length).toBe(10);
    expect((await h.receive(s2, { maxRecords: 10 })).length).toBe(2);
    expect((await h.receive(s2, { maxRecords: 10 })).length).toBe(0);
    await h.ack(s2, { ranges: [[1, 5]] });
    expect((await h.receive(s2, { maxRecords: 10 })).map((r) => r.seq)).toEqual([13, 14, 15, 16, 17]);
  });

  it('an idle session expires: every route answers 404 SessionNotFound', async () => {
    await h.createLog('idle');
    await h.append('idle', [1]);
    const sid = await h.openSession('idle', { idleTimeoutSeconds: 60 });
    h.clock.advance(30_000);
    await h.receive(sid); // use keeps it alive
    h.clock.advance(45_000);
    expect((await h.call('GET', `/sessions/${sid}`)).status).toBe(200);
    h.clock.advance(61_000);
    for (const [m, p, b] of [
      ['GET', `/sessions/${sid}`, undefined],
      ['POST', `/sessions/${sid}/receive`, {}],
      ['POST', `/sessions/${sid}/ack`, { seqs: [1] }],
      ['POST', `/sessions/${sid}/nack`, { seqs: [1] }],
      ['POST', `/sessions/${sid}/extend`, { seqs: [1], seconds: 5 }],
      ['GET', `/sessions/${sid}/dead-letters`, undefined],
      ['DELETE', `/sessions/${sid}`, undefined],
    ] as const) {
      const r = await h.call(m, p, b);
      expect([m, p, r.status, r.body?.error?.code]).toEqual([m, p, 404, 'SessionNotFound']);
    }
  });

  it('another principal gets 404, never 403, on a log and a session; same principal on any host works', async () => {
    await h.createLog('mine', {}, 'alice');
    await h.append('mine', [1]);
    const sid = await h.openSession('mine');
    const asBob = async (m: string, p: string, b?: unknown) => h.call(m, p, b, 'bob');
    expect((await asBob('GET', '/logs/mine')).body.error.code).toBe('LogNotFound');
    expect((await asBob('POST', '/logs/mine/records', { records: [{ data: 1 }] })).status).toBe(404);
    expect((await asBob('POST', '/logs/mine/sessions', {})).status).toBe(404);
    for (const [m, p, b] of [
      ['GET', `/sessions/${sid}`],
      ['POST', `/sessions/${sid}/receive`, {}],
      ['POST', `/sessions/${sid}/ack`, { seqs: [1] }],
      ['DELETE', `/sessions/${sid}`],
    ] as const) {
      const r = await asBob(m, p, b);
      expect([p, r.status, r.body.error.code]).toEqual([p, 404, 'SessionNotFound']);
    }
    // Bob may have his own log of the same name: names are per principal.
    expect((await asBob('POST', '/logs', { logId: 'mine' })).status).toBe(201);
    expect((await h.receive(sid)).map((r) => r.data)).toEqual([1]);
    // An assumed role's session name is dropped: two hosts under one role are one principal.
    const { principalOf } = await import('../../lambdas/http/api');
    const ev = (arn: string) => ({ requestContext: { authorizer: { iam: { userArn: arn } } } }) as never;
    expect(principalOf(ev('arn:aws:sts::123456789012:assumed-role/worker/host-a'))).toBe(
      principalOf(ev('arn:aws:sts::123456789012:assumed-role/worker/host-b')),
    );
    expect(principalOf(ev('arn:aws:sts::123456789012:assumed-role/worker/host-a'))).not.toBe(
      principalOf(ev('arn:aws:sts::123456789012:assumed-role/other/host-a')),
    );
  });

  it('DELETE ends a session', async () => {
    await h.createLog('del');
    const sid = await h.openSession('del');
    expect((await h.call('DELETE', `/sessions/${sid}`)).status).toBe(204);
    expect((await h.call('GET', `/sessions/${sid}`)).status).toBe(404);
  });
});
