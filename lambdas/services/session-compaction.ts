/**
 * Compactions: every change to a session other than a claim or an atomic ack (redelivery,
 * nack, extend, dead letters, folding the pending lists) is one write of the whole compacted
 * state, conditional on the version read, which only other compactions can make fail.
 * Flow: read, settle (fold pending claims and acks), sweep expired poison into dead letters,
 * change, spill dead letters past DEAD_SPILL_RANGES to a page, write; read again when another
 * compaction won.
 */
import { ConflictError, busy } from '../domain/errors';
import { countOf } from '../domain/ranges';
import { refreshExpiry, settle, sweepDead, type SessionState, type StoredSession } from '../domain/session';
import { backoff, MAX_ATTEMPTS, newStats, type ReceiveStats, type SessionContext } from './session-context';

/** Pending claims or acks past which a receive folds them into the compacted state. */
export const COMPACT_AT = 12;
/** Dead-letter ranges kept in the session item before they move to a page item. */
export const DEAD_SPILL_RANGES = 1024;
const DEAD_PAGE_KEEP_SECONDS = 365 * 86_400;

export const compactionDue = (stored: StoredSession): boolean => stored.claims.length >= COMPACT_AT || stored.acks.length >= COMPACT_AT;
/**
 * Three times the usual: a fold leaves the claims that landed while it ran (up to about
 * COMPACT_AT more with many workers), so a list between COMPACT_AT and twice it is normal; one
 * past 3 × COMPACT_AT means the receives that should have folded it did not. Every receive that
 * sees it tries, so this must stay rare: those compactions race each other.
 */
export const compactionOverdue = (stored: StoredSession): boolean =>
  stored.claims.length >= 3 * COMPACT_AT || stored.acks.length >= 3 * COMPACT_AT;

/** A change written as a compaction (see Compactions.mutate). */
export interface SessionChange {
  /** The change; returns how many records it affected (the caller's answer). */
  change: (s: SessionState, now: number) => number;
  /** A change to make before expired poison is dead-lettered (giving back records never sent). */
  first?: (s: SessionState, now: number) => number;
  /** `change` acks records and counts them (see Compactions.compact). */
  countsAcks?: boolean;
}

export class Compactions {
  constructor(private readonly cx: SessionContext) {}

  /**
   * Writes `next` as the compacted state of `stored`; false if another compaction won, or, when
   * `countsAcks` (acks were applied to `next` and counted from `stored`), if any ack landed since
   * the read: that ack was counted against the session before this write, so this one must count
   * again from a fresh read or a record would be counted acked twice.
   */
  async compact(stored: StoredSession, next: SessionState, stats: ReceiveStats, countsAcks = false): Promise<boolean> {
    await this.spillDead(next);
    try {
      await this.cx.store.compactSession(stored, next, countsAcks ? { noAcksSince: true } : {});
      return true;
    } catch (e) {
      if (e instanceof ConflictError) {
        stats.conflicts++;
        return false;
      }
      throw e;
    }
  }

  /**
   * Folds the pending claims and acks into the compacted state: one compaction, from `known`
   * (the session as this receive's claim left it; claims and acks since only appended to the
   * lists, which the compaction leaves pending). A fold that loses to another compaction reads
   * and tries once more: with many workers folds overlap, and the winner left what landed while
   * it ran.
   */
  async fold(owner: string, sessionId: string, stats: ReceiveStats, known: StoredSession): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const now = this.cx.clock.now();
      const { stored } = attempt === 0 ? { stored: known } : await this.cx.load(owner, sessionId, false);
      if (attempt > 0 && !compactionDue(stored)) return; // the winner's fold left a short list
      const s = settle(stored);
      sweepDead(s, now);
      if (await this.compact(stored, s, stats)) return;
    }
  }

  /**
   * A change other than a claim or an ack (nack, extend, a scattered ack, the fix-ups after a
   * receive): read, settle, change, and write the result as a compaction, again if another
   * compaction won. Returns what the change counted.
   */
  async mutate(owner: string, sessionId: string, { change, first, countsAcks = false }: SessionChange): Promise<number> {
    const stats = newStats();
    // A release bumps the counter every claim requires unchanged: a claim from the view this
    // host holds would only be refused.
    this.cx.views.delete(sessionId);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      // `now` before the read: see the receive's look step (session-receive.ts).
      const now = this.cx.clock.now();
      const { stored } = await this.cx.load(owner, sessionId, false);
      const s = settle(stored);
      const early = first ? first(s, now) : 0;
      // Expired poison records are dead letters before anything else can touch them.
      const swept = sweepDead(s, now);
      const n = change(s, now) + early;
      if (!refreshExpiry(s, now) && n === 0 && swept === 0 && !compactionDue(stored)) return 0;
      if (await this.compact(stored, s, stats, countsAcks)) return n;
    }
    throw busy('Too many workers are changing this session at once.', 1);
  }

  /** Moves the dead-letter list to a page item once it passes DEAD_SPILL_RANGES ranges. */
  private async spillDead(s: SessionState): Promise<void> {
    if (s.dead.length <= DEAD_SPILL_RANGES) return;
    // Keyed by the version this write expects: a page written by a request that then loses
    // the race is never referenced, so it cannot disagree with the session.
    const key = `${s.sessionId}#dl#${s.version}`;
    await this.cx.store.putDeadPage(key, s.dead, Math.floor(this.cx.clock.now() / 1000) + DEAD_PAGE_KEEP_SECONDS);
    s.deadPages = [...s.deadPages, key];
    s.deadSpilled += countOf(s.dead);
    s.dead = [];
  }
}
