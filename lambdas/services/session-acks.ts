/**
 * What a worker says of records it holds: ack, nack, extend. Nack and extend change leases, so
 * they are compactions (session-compaction.ts). Acks are recorded with one atomic update that no claim, compaction or other ack can refuse, and
 * counted from the session as it stood just before that update, so a record acked twice (by a
 * worker whose lease ran out and the one it went to) is counted once.
 * Flow: normalize the selection; a scattered one (over ATOMIC_ACK_RANGES ranges) is applied as a
 * compaction instead; else the atomic update, and when it is refused, a read tells an expired
 * or foreign session (404) from records never sent (clipped off, and the rest tried again).
 */
import { ConflictError, busy } from '../domain/errors';
import { normalizeRanges, type Range } from '../domain/ranges';
import { ack as ackLeases, ackCount, extend, nack, settle, type AckMark } from '../domain/session';
import { COMPACT_AT, type Compactions } from './session-compaction';
import { MAX_ATTEMPTS, type SessionContext } from './session-context';

/** Most ranges one ack records atomically; a more scattered ack is applied with a compaction. */
export const ATOMIC_ACK_RANGES = 8;
/** Pending acks past which an ack folds them itself (no receive came by to do it). */
const ACKS_HARD_LIMIT = 4 * COMPACT_AT;

/** Ack marks for acks of `sel` made at `now`. */
export const marksOf = (sel: readonly Range[], now: number): AckMark[] => sel.map(([from, to]) => ({ from, to, atMs: now }));

/** The parts of a normalized selection below `cursor`. */
export function clipBelow(sel: readonly Range[], cursor: number): Range[] {
  const out: Range[] = [];
  for (const [from, to] of sel) if (from < cursor) out.push([from, Math.min(to, cursor - 1)]);
  return out;
}

export class Acks {
  constructor(
    private readonly cx: SessionContext,
    private readonly compactions: Compactions,
  ) {}

  /**
   * Records an ack with one atomic update that no concurrent receive or ack can make fail, and
   * counts from the session as it stood just before it. An ack naming records the cursor has not
   * reached is refused by the update's condition and retried without them.
   */
  async ack(owner: string, sessionId: string, selection: readonly Range[]): Promise<number> {
    let sel = normalizeRanges(selection);
    // A scattered selection would make a long pending list: apply it directly instead.
    if (sel.length > ATOMIC_ACK_RANGES)
      return this.compactions.mutate(owner, sessionId, { change: (s) => ackLeases(s, sel), countsAcks: true });
    for (let attempt = 0; attempt < MAX_ATTEMPTS && sel.length; attempt++) {
      const now = this.cx.clock.now();
      try {
        const { acked: n, pending } = await this.write(sessionId, owner, sel, now);
        if (pending >= ACKS_HARD_LIMIT) await this.compactions.mutate(owner, sessionId, { change: () => 0 });
        return n;
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
      }
      // Refused: not this owner's, expired, or naming records never sent. Read to tell which.
      const { stored } = await this.cx.load(owner, sessionId, false);
      sel = clipBelow(sel, settle(stored).cursor);
    }
    if (sel.length) throw busy('Too many workers are changing this session at once.', 1);
    await this.cx.load(owner, sessionId, false); // nothing left to ack: still 404 for a session that is gone
    return 0;
  }

  nack(owner: string, sessionId: string, selection: readonly Range[], delaySeconds: number): Promise<number> {
    return this.compactions.mutate(owner, sessionId, { change: (s, now) => nack(s, selection, now, delaySeconds) });
  }

  extend(owner: string, sessionId: string, selection: readonly Range[], seconds: number): Promise<number> {
    return this.compactions.mutate(owner, sessionId, { change: (s, now) => extend(s, selection, now, seconds) });
  }

  /**
   * Records acks of `sel` (normalized, all below the cursor) made at `now` with the atomic ack
   * update; counts them from the session just before it. Throws ConflictError as ackSession does.
   */
  async write(sessionId: string, owner: string, sel: readonly Range[], now: number): Promise<{ acked: number; pending: number }> {
    const before = await this.cx.store.ackSession(sessionId, owner, marksOf(sel, now), sel[sel.length - 1]![1], now);
    return { acked: ackCount(settle(before), sel, now), pending: before.acks.length };
  }
}
