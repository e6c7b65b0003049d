/**
 * Receiver sessions: create, receive, ack/nack/extend, describe, dead letters, delete.
 *
 * A session is one item with a compacted state and two pending lists (see settle in
 * domain/session.ts). Fresh records are taken with an atomic claim and acks are recorded with
 * an atomic update: neither is ever refused because of the other or of a concurrent one of its
 * kind, so workers on one session do not serialize on it. Everything else (redelivery, nack,
 * extend, dead letters, folding the pending lists) is a compaction: one write conditional on
 * the version read, which only other compactions can make fail. A claim never hands out a
 * record another receive leased (its limit is computed so that it cannot), and a crash after
 * it leaves the records leased until their lease ends, never lost.
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, sessionNotFound, logNotFound, busy, isBusy, validation } from '../domain/errors';
import {
  isExpired,
  planReceive,
  refreshExpiry,
  sweepDead,
  dropMissing,
  skipTo,
  view,
  ack as ackLeases,
  nack,
  extend,
  settle,
  expiryAfterUseMs,
  ackCount,
  claimLimit,
  claimFromView,
  afterClaim,
  freshRoom,
  unsend,
  type SessionSettings,
  type SessionState,
  type SessionView,
  type StoredSession,
  type Grant,
  type AckMark,
} from '../domain/session';
import { countOf, normalizeRanges, type DeadRange, type Range } from '../domain/ranges';
import { decodeSegment, type DeliveredRecord, type ReceivedRecord } from '../domain/records';
import { RECORDS_ENVELOPE_BUDGET, recordEnvelopeBytes } from '../domain/envelope';
import type { ChunkRef } from '../domain/log-index';
import type { DeliveryConfig } from '../domain/config';
import { sleep, systemClock, type Clock, type LogHead, type Store } from '../ports';
import { LogService } from './logs';

/** Dead-letter ranges kept in the session item before they move to a page item. */
export const DEAD_SPILL_RANGES = 1024;
/** Conditional-write attempts before a request gives up with 503. */
const MAX_ATTEMPTS = 25;
const DEAD_PAGE_KEEP_SECONDS = 365 * 86_400;

export type StartAt = 'oldest' | 'latest' | { afterSeq: number };

export type { ReceivedRecord };

export interface ReceiveStats {
  /** Conditional writes lost to another request during this call. */
  conflicts: number;
  /** Rounds of a long poll. */
  polls: number;
  /** Milliseconds spent sleeping between the rounds of a long poll. */
  idleMs: number;
}

export class SessionService {
  /** sessionId -> log key: immutable, so a warm host reads session and head in one round trip. */
  private readonly logKeys = new Map<string, string>();
  /**
   * sessionId -> the session exactly as this host's last claim on it left it (the claim's write
   * returns the session as it stood before), with the log's head the claim was planned from.
   * The host's next receive on the session claims from it without reading when that is as safe
   * as a fresh read (claimFromView): a busy session's receive is then one claim and one query.
   */
  private readonly views = new Map<string, ClaimView>();
  private readonly logs: LogService;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock = systemClock,
  ) {
    this.logs = new LogService(store, clock);
  }

  async create(
    owner: string,
    logId: string,
    start: StartAt,
    settings: SessionSettings,
  ): Promise<{ sessionId: string; logId: string; expiresAt: string; cursor: number } & SessionSettings> {
    const head = await this.logs.head(owner, logId);
    let cursor: number;
    if (start === 'latest') cursor = head.lastSeq + 1;
    else if (start === 'oldest') cursor = await this.logs.firstSeq(head);
    else if (start.afterSeq > head.lastSeq) {
      // A cursor past the end would skip, unseen, every record appended up to it.
      throw validation(
        `The session cannot start after record ${start.afterSeq}: log '${logId}' ends at lastSeq ${head.lastSeq}. Use "start": "latest" to read only records appended from now on, or {"afterSeq": n} with n <= ${head.lastSeq}.`,
      );
    } else cursor = start.afterSeq + 1;
    const now = this.clock.now();
    const s: SessionState = {
      sessionId: `s-${randomBytes(16).toString('base64url')}`,
      owner,
      logId,
      logKey: head.logKey,
      settings,
      createdMs: now,
      cursor,
      leases: [],
      dead: [],
      deadPages: [],
      deadSpilled: 0,
      skipped: 0,
      releases: 0,
      expiresMs: now + settings.idleTimeoutSeconds * 1000,
      version: 0,
    };
    await this.store.createSession(s);
    this.logKeys.set(s.sessionId, s.logKey);
    return { sessionId: s.sessionId, logId, expiresAt: new Date(s.expiresMs).toISOString(), cursor, ...settings };
  }

  /** Loads a live session of `owner`, or throws 404. */
  private async load(owner: string, sessionId: string, withHead: true): Promise<{ stored: StoredSession; head: LogHead }>;
  private async load(owner: string, sessionId: string, withHead: false): Promise<{ stored: StoredSession; head?: LogHead }>;
  private async load(owner: string, sessionId: string, withHead: boolean): Promise<{ stored: StoredSession; head?: LogHead }> {
    let stored: StoredSession | undefined;
    let head: LogHead | undefined;
    const cachedKey = withHead ? this.logKeys.get(sessionId) : undefined;
    if (cachedKey) {
      ({ session: stored, head } = await this.store.getSessionWithHead(sessionId, cachedKey));
    } else {
      stored = await this.store.getSession(sessionId);
      if (stored && withHead && stored.state.owner === owner) head = await this.store.getHead(stored.state.logKey);
    }
    this.checkLive(owner, sessionId, stored);
    if (this.logKeys.size > 10_000) this.logKeys.clear();
    this.logKeys.set(sessionId, stored.state.logKey);
    if (withHead && !head) throw logNotFound(stored.state.logId);
    return head ? { stored, head } : { stored };
  }

  private checkLive(owner: string, sessionId: string, stored: StoredSession | undefined): asserts stored is StoredSession {
    if (!stored || stored.state.owner !== owner || isExpired(stored.state, this.clock.now())) throw sessionNotFound(sessionId);
  }

  async receive(
    owner: string,
    sessionId: string,
    req: { maxRecords?: number; waitSeconds?: number },
    delivery: DeliveryConfig,
    stats: ReceiveStats = { conflicts: 0, polls: 0, idleMs: 0 },
  ): Promise<ReceivedRecord[]> {
    return (await this.receiveAndAck(owner, sessionId, { ...req, ack: [] }, delivery, stats)).records;
  }

  /**
   * A receive that first acknowledges `req.ack`, exactly as `ack` would, in the same request:
   * the records it names are out of flight before this receive chooses what to hand out. When
   * the receive claims fresh records the acks ride on the claim's write, so a worker that acks
   * its last batch this way costs one request and one write less per batch. A long poll applies
   * them at once, not when records arrive.
   */
  async receiveAndAck(
    owner: string,
    sessionId: string,
    req: { maxRecords?: number; waitSeconds?: number; ack: readonly Range[] },
    delivery: DeliveryConfig,
    stats: ReceiveStats = { conflicts: 0, polls: 0, idleMs: 0 },
  ): Promise<{ records: ReceivedRecord[]; acked: number }> {
    let sel = normalizeRanges(req.ack);
    let acked = 0;
    if (sel.length > ATOMIC_ACK_RANGES) {
      // Scattered: applied as its own compaction (see ack), before the receive looks.
      acked = await this.ack(owner, sessionId, sel);
      sel = [];
    }
    const carried: CarriedAck | undefined = sel.length ? { selection: sel, acked: 0, applied: false } : undefined;
    const waitUntil = this.clock.now() + (req.waitSeconds ?? 0) * 1000;
    const maxRecords = Math.min(req.maxRecords ?? delivery.maxBatchRecords, delivery.maxBatchRecords);
    let records: ReceivedRecord[];
    for (;;) {
      stats.polls++;
      try {
        records = await this.receiveOnce(owner, sessionId, maxRecords, delivery.maxBatchBytes, stats, carried && !carried.applied ? carried : undefined);
      } catch (e) {
        // Acks already written are not failed with the request (the worker could not tell it
        // need not send them again): too busy to hand out records, it returns none.
        if (!(carried?.applied && isBusy(e))) throw e;
        records = [];
        break;
      }
      // An empty answer only once the whole wait has passed: every early one is a request the
      // worker pays for and did not need. The last sleep is cut to what is left of the wait.
      const left = waitUntil - this.clock.now();
      if (records.length || left <= 0) break;
      const before = this.clock.now();
      await sleep(Math.min(delivery.longPollIntervalMs, left));
      stats.idleMs += this.clock.now() - before;
    }
    return { records, acked: acked + (carried?.acked ?? 0) };
  }

  /**
   * This host's view of the session (see views), if this receive may claim from it without
   * reading: it is `owner`'s, and claimFromView allows a full batch.
   */
  private viewFor(
    owner: string,
    sessionId: string,
    now: number,
    maxRecords: number,
    carried?: CarriedAck,
  ): { stored: StoredSession; settled: SessionState; head: LogHead } | undefined {
    const v = this.views.get(sessionId);
    if (!v || v.owner !== owner || compactionOverdue(v.stored)) return undefined;
    const settled = settle(v.stored);
    const ackedUpTo = carried && !carried.applied ? carried.selection[carried.selection.length - 1]![1] : 0;
    return claimFromView(settled, now - v.atMs, now, v.head.lastSeq, maxRecords, ackedUpTo) > 0 ? { stored: v.stored, settled, head: v.head } : undefined;
  }

  /**
   * One round of a receive. Expired leases go first, through a compaction (a write conditional
   * on the version, like every change other than claims and acks). Otherwise fresh records are
   * taken with an atomic claim, which concurrent receives never lose to each other, and read
   * after it: a crash after the claim leaves the records leased, to be redelivered when the
   * lease ends.
   */
  private async receiveOnce(
    owner: string,
    sessionId: string,
    maxRecords: number,
    maxBytes: number,
    stats: ReceiveStats,
    /** Acks to apply before choosing records (at most once: `applied` is set by the write that does). */
    carried?: CarriedAck,
  ): Promise<ReceivedRecord[]> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      // `now` is taken before the read: an ack that lands after the read is later than `now`,
      // so a lease this receive dead-letters had already ended when that ack was made, and the
      // ack (which counted it as dead, not acked) agrees with what is written.
      const now = this.clock.now();
      const hot = this.viewFor(owner, sessionId, now, maxRecords, carried);
      const { stored, head } = hot ?? (await this.load(owner, sessionId, true));
      const settled = hot?.settled ?? settle(stored);
      const s = clone(settled);
      const swept = sweepDead(s, now);
      // Carried acks count as of `now`, after expired poison was dead-lettered, as `ack` does.
      // Records at or past the cursor this read saw were never sent before the request was
      // made (the read is strongly consistent and follows it), so they count 0: they may be
      // the very records this receive is about to hand out.
      const ack = carried && !carried.applied ? clipBelow(carried.selection, s.cursor) : undefined;
      const ackedHere = ack ? ackLeases(s, ack) : 0;
      const applied = (): void => {
        if (carried && ack) Object.assign(carried, { applied: true, acked: ackedHere });
      };
      // Redeliveries only: fresh records are never planned here (s.cursor - 1 as the log's end).
      const redeliver = planReceive(s, now, s.cursor - 1, maxRecords);
      if (redeliver.length) {
        const out = await this.redeliver(head, stored, settled, redeliver, now, maxBytes, stats, ack);
        if (out === 'retry') continue;
        applied();
        if (out === 'again') {
          attempt = -1; // retention removed everything planned: look again at once
          continue;
        }
        return out;
      }
      const n = freshRoom(s, head.lastSeq, maxRecords);
      if (n === 0) {
        // Nothing to hand out: write only to record carried acks, dead-letter expired poison,
        // fold a long pending list, or keep the session alive. An empty poll usually costs no write.
        if (!refreshExpiry(s, now) && !swept && !compactionOverdue(stored)) {
          // Only acks to record: the atomic ack update, which no other write can make fail
          // (a compaction here would race the others at the log's end).
          if (carried && ack && ackedHere) {
            if (await this.recordCarried(sessionId, owner, carried, ack, now)) return [];
            continue; // the session expired meanwhile: the next read says so
          }
          applied();
          return [];
        }
        if (await this.compact(stored, s, stats, !!ackedHere)) {
          applied();
          return [];
        }
        continue;
      }
      let marks = ackedHere ? ack : undefined;
      if (compactionOverdue(stored)) {
        // The receives whose claims reached multiples of COMPACT_AT did not fold the list (they
        // crashed, or lost to other compactions): do it now. Losing this race is fine: the
        // winner folded it.
        if (await this.compact(stored, s, stats, !!ackedHere)) {
          applied();
          marks = undefined;
        }
      } else if (!ackedHere) applied(); // nothing the read saw in flight: nothing to write
      const out = await this.claimFresh(owner, sessionId, s, head, n, now, maxBytes, stats, marks);
      if (out === 'retry') {
        // A refused claim wrote nothing, so its acks are not recorded either. Record them now
        // with the ack update, which nothing refuses: else a session near maxInFlight would
        // keep its workers' acked records in flight while they retry, and refuse more claims.
        if (carried && marks) await this.recordCarried(sessionId, owner, carried, marks, now);
        continue;
      }
      if (marks && carried) Object.assign(carried, { applied: true, acked: out.acked });
      if (out.records === 'again') {
        attempt = -1;
        continue;
      }
      return out.records;
    }
    throw busy('Too many workers are changing this session at once.', 1);
  }

  /**
   * Takes `n` fresh records (or as many as `s` has room for) with one atomic claim, then reads
   * them. A crash after the claim leaves them leased, to be redelivered when the lease ends.
   */
  private async claimFresh(
    owner: string,
    sessionId: string,
    s: SessionState,
    head: LogHead,
    n: number,
    now: number,
    maxBytes: number,
    stats: ReceiveStats,
    /** Carried acks to record in the claim's write (already applied to `s`, all below its cursor). */
    ack?: readonly Range[],
  ): Promise<{ records: ReceivedRecord[] | 'again'; acked: number } | 'retry'> {
    const leaseMs = now + s.settings.ackTimeoutSeconds * 1000;
    const expiresMs = now + expiryAfterUseMs(s.settings);
    const marks = ack ? marksOf(ack, now) : [];
    let claimed: { cursor: number; pending: number; before: StoredSession };
    try {
      claimed = await this.store.claimSession(sessionId, n, claimLimit(s, head.lastSeq, n), s.releases, leaseMs, expiresMs, now, marks);
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      // Another receive took the last records, leases were released since the read (or since
      // this host's view), or the session expired: look again, reading.
      this.views.delete(sessionId);
      stats.conflicts++;
      return 'retry';
    }
    // Counted from the session just before the write, exactly as a standalone ack counts.
    const acked = ack ? ackCount(settle(claimed.before), ack, now) : 0;
    const after = afterClaim(claimed.before, n, leaseMs, expiresMs, marks);
    if (this.views.size > 10_000) this.views.clear();
    this.views.set(sessionId, { owner, stored: after, head, atMs: now });
    const cursor = claimed.cursor;
    const grant: Grant = { from: cursor - n, to: cursor - 1, count: 1, leaseMs };
    // Exactly one claim brings the pending list to each multiple of COMPACT_AT: that receive
    // folds it, alongside reading its records, from the session as the claim left it (what the
    // receive read before it is likely older than the last fold when many workers share the
    // session). A multiple, not the first one only: with many workers, COMPACT_AT or more claims
    // can land while a fold is under way, and the list it leaves would then never be exactly
    // COMPACT_AT long again.
    // Housekeeping only: a fold that fails (throttled, session gone) must not fail a receive
    // whose claim succeeded, or its records would wait out their lease; a later multiple, or
    // the overdue backstop, folds the list.
    const folding = claimed.pending % COMPACT_AT === 0 ? this.fold(owner, sessionId, stats, after).catch(() => undefined) : undefined;
    const [read] = await Promise.all([this.readGrants(head, [grant], grant.from), folding]);
    const { sent, missing, unsent } = cutToBudget([grant], read.records, maxBytes);
    if (missing.length || unsent.length) {
      // Retention removed some of the claimed records, or the byte budget left some unsent:
      // forget the former, and give the latter back without counting a delivery.
      const skipFrom = read.freshAllMissing ? await this.logs.firstSeq(head) : 0;
      await this.mutate(
        owner,
        sessionId,
        (x) => dropMissing(x, missing) + (skipFrom && x.cursor === cursor ? skipTo(x, skipFrom) : 0),
        // Before the sweep: with maxDeliveries 1 and a receive slower than the ack timeout, the
        // unsent records' lease has ended, and the sweep would dead-letter them unsent.
        (x, at) => unsend(x, unsent, leaseMs, at),
      );
    }
    return { records: sent.length ? toReceived(sent) : 'again', acked };
  }

  /**
   * Records carried acks (all below the cursor the receive read) with the atomic ack update,
   * counted from the session just before it; false if the session expired meanwhile.
   */
  private async recordCarried(sessionId: string, owner: string, carried: CarriedAck, ack: readonly Range[], now: number): Promise<boolean> {
    try {
      const { acked } = await this.writeAcks(sessionId, owner, ack, now);
      Object.assign(carried, { applied: true, acked });
      return true;
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      return false;
    }
  }

  /**
   * Records acks of `sel` (normalized, all below the cursor) made at `now` with the atomic ack
   * update; counts them from the session just before it. Throws ConflictError as ackSession does.
   */
  private async writeAcks(sessionId: string, owner: string, sel: readonly Range[], now: number): Promise<{ acked: number; pending: number }> {
    const before = await this.store.ackSession(sessionId, owner, marksOf(sel, now), sel[sel.length - 1]![1], now);
    return { acked: ackCount(settle(before), sel, now), pending: before.acks.length };
  }

  /** Hands out expired leases (a compaction), reading their records first. */
  private async redeliver(
    head: LogHead,
    stored: StoredSession,
    settled: SessionState,
    plan: readonly Grant[],
    now: number,
    maxBytes: number,
    stats: ReceiveStats,
    /** Carried acks, applied before planning (as the plan was made). */
    ack?: readonly Range[],
  ): Promise<ReceivedRecord[] | 'retry' | 'again'> {
    const read = await this.readGrants(head, plan, -1);
    const { sent, missing, taken } = cutToBudget(plan, read.records, maxBytes);
    // Plan again with exactly what is sent: planning is deterministic, so this is a prefix.
    const final = clone(settled);
    sweepDead(final, now);
    if (ack) ackLeases(final, ack);
    planReceive(final, now, final.cursor - 1, taken);
    if (missing.length) dropMissing(final, missing);
    refreshExpiry(final, now);
    if (!(await this.compact(stored, final, stats, !!ack?.length))) return 'retry';
    if (!sent.length) return 'again';
    return toReceived(sent);
  }

  /**
   * Folds the pending claims and acks into the compacted state: one compaction, from `known`
   * (the session as this receive's claim left it; claims and acks since only appended to the
   * lists, which the compaction leaves pending). A fold that loses to another compaction reads
   * and tries once more: with many workers folds overlap, and the winner left what landed while
   * it ran.
   */
  private async fold(owner: string, sessionId: string, stats: ReceiveStats, known: StoredSession): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const now = this.clock.now();
      const { stored } = attempt === 0 ? { stored: known } : await this.load(owner, sessionId, false);
      if (attempt > 0 && !compactionDue(stored)) return; // the winner's fold left a short list
      const s = settle(stored);
      sweepDead(s, now);
      if (await this.compact(stored, s, stats)) return;
    }
  }

  /**
   * Writes `next` as the compacted state of `stored`; false if another compaction won, or, when
   * `countsAcks` (acks were applied to `next` and counted from `stored`), if any ack landed since
   * the read: that ack was counted against the session before this write, so this one must count
   * again from a fresh read or a record would be counted acked twice.
   */
  private async compact(stored: StoredSession, next: SessionState, stats: ReceiveStats, countsAcks = false): Promise<boolean> {
    await this.spillDead(next);
    try {
      await this.store.compactSession(stored, next, countsAcks ? { noAcksSince: true } : {});
      return true;
    } catch (e) {
      if (e instanceof ConflictError) {
        stats.conflicts++;
        return false;
      }
      throw e;
    }
  }

  /** Moves the dead-letter list to a page item once it passes DEAD_SPILL_RANGES ranges. */
  private async spillDead(s: SessionState): Promise<void> {
    if (s.dead.length <= DEAD_SPILL_RANGES) return;
    // Keyed by the version this write expects: a page written by a request that then loses
    // the race is never referenced, so it cannot disagree with the session.
    const key = `${s.sessionId}#dl#${s.version}`;
    await this.store.putDeadPage(key, s.dead, Math.floor(this.clock.now() / 1000) + DEAD_PAGE_KEEP_SECONDS);
    s.deadPages = [...s.deadPages, key];
    s.deadSpilled += countOf(s.dead);
    s.dead = [];
  }

  /**
   * Reads the committed records a plan names: where they are from the log's index (the head's
   * tail, and index pages this host caches), then the chunks that hold them in one strongly
   * consistent batch read. Records retention removed are left out.
   */
  private async readGrants(
    head: LogHead,
    plan: readonly Grant[],
    /** The first record of the plan's fresh grant (none: -1). */
    fresh: number,
  ): Promise<{ records: Map<number, DeliveredRecord>; freshAllMissing: boolean }> {
    // Only a head that has a record's index entry can locate it. The head a receive reads is
    // eventually consistent, and another host may have claimed records past it (its head was
    // fresher): those would look removed by retention and be skipped. Read the head again,
    // strongly, when the plan goes past it (rare: a lease has ended since).
    if (plan.some((g) => g.to > head.lastSeq)) head = await this.logs.head(head.owner, head.logId);
    const refs = new Map<string, ChunkRef>();
    for (const g of plan) for (const c of await this.logs.locate(head, g.from, g.to)) refs.set(`${c.batchId}/${c.index}`, c);
    const chunks = await this.logs.readChunks(head.logKey, [...refs.values()]);
    const nowSec = Math.floor(this.clock.now() / 1000);
    const records = new Map<number, DeliveredRecord>();
    let freshAllMissing = false;
    for (const g of plan) {
      let got = 0;
      for (const seg of chunks) {
        if (seg.expiresSec <= nowSec) continue; // retention passed; TTL deletes lazily
        if (seg.first > g.to || seg.first + seg.count - 1 < g.from) continue;
        for (const r of decodeSegment(seg.first, seg.text, g.from, g.to)) {
          records.set(r.seq, r);
          got++;
        }
      }
      if (g.from === fresh && got === 0) freshAllMissing = true;
    }
    return { records, freshAllMissing };
  }

  /**
   * A change other than a claim or an ack (nack, extend, the fix-ups after a receive): read,
   * settle, change, and write the result as a compaction, again if another compaction won.
   */
  private async mutate(
    owner: string,
    sessionId: string,
    change: (s: SessionState, now: number) => number,
    /** A change to make before expired poison is dead-lettered (giving back records never sent). */
    first?: (s: SessionState, now: number) => number,
    /** `change` acks records and counts them (see compact). */
    countsAcks = false,
  ): Promise<number> {
    const stats: ReceiveStats = { conflicts: 0, polls: 0, idleMs: 0 };
    // A release bumps the counter every claim requires unchanged: a claim from the view this
    // host holds would only be refused.
    this.views.delete(sessionId);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      const now = this.clock.now(); // before the read: see receiveOnce
      const { stored } = await this.load(owner, sessionId, false);
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

  /**
   * Records an ack with one atomic update that no concurrent receive or ack can make fail, and
   * counts from the session as it stood just before it. An ack naming records the cursor has not
   * reached is refused by the update's condition and retried without them.
   */
  async ack(owner: string, sessionId: string, selection: readonly Range[]): Promise<number> {
    let sel = normalizeRanges(selection);
    // A scattered selection would make a long pending list: apply it directly instead.
    if (sel.length > ATOMIC_ACK_RANGES) return this.mutate(owner, sessionId, (s) => ackLeases(s, sel), undefined, true);
    for (let attempt = 0; attempt < MAX_ATTEMPTS && sel.length; attempt++) {
      const now = this.clock.now();
      try {
        const { acked: n, pending } = await this.writeAcks(sessionId, owner, sel, now);
        if (pending >= ACKS_HARD_LIMIT) await this.mutate(owner, sessionId, () => 0);
        return n;
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
      }
      // Refused: not this owner's, expired, or naming records never sent. Read to tell which.
      const { stored } = await this.load(owner, sessionId, false);
      sel = clipBelow(sel, settle(stored).cursor);
    }
    if (sel.length) throw busy('Too many workers are changing this session at once.', 1);
    await this.load(owner, sessionId, false); // nothing left to ack: still 404 for a session that is gone
    return 0;
  }

  nack(owner: string, sessionId: string, selection: readonly Range[], delaySeconds: number): Promise<number> {
    return this.mutate(owner, sessionId, (s, now) => nack(s, selection, now, delaySeconds));
  }

  extend(owner: string, sessionId: string, selection: readonly Range[], seconds: number): Promise<number> {
    return this.mutate(owner, sessionId, (s, now) => extend(s, selection, now, seconds));
  }

  async describe(owner: string, sessionId: string): Promise<SessionView> {
    const { stored, head } = await this.load(owner, sessionId, true);
    return view(settle(stored), this.clock.now(), head.lastSeq);
  }

  async deadLetters(owner: string, sessionId: string): Promise<[number, number, number][]> {
    const { stored } = await this.load(owner, sessionId, false);
    const current = settle(stored);
    sweepDead(current, this.clock.now());
    const pages = current.deadPages.length ? await this.store.getDeadPages(current.deadPages) : [];
    const all: DeadRange[] = [...pages.flat(), ...current.dead].sort((a, b) => a.from - b.from);
    return all.map((d) => [d.from, d.to, d.count]);
  }

  async delete(owner: string, sessionId: string): Promise<void> {
    const { stored } = await this.load(owner, sessionId, false);
    await this.store.deleteSession(sessionId, stored.state.deadPages);
    this.logKeys.delete(sessionId);
    this.views.delete(sessionId);
  }
}


/** Pending claims or acks past which a receive folds them into the compacted state. */
export const COMPACT_AT = 12;
/** Pending acks past which an ack folds them itself (no receive came by to do it). */
const ACKS_HARD_LIMIT = 4 * COMPACT_AT;
/** Most ranges one ack records atomically; a more scattered ack is applied with a compaction. */
const ATOMIC_ACK_RANGES = 8;

const compactionDue = (stored: StoredSession): boolean => stored.claims.length >= COMPACT_AT || stored.acks.length >= COMPACT_AT;
/**
 * Three times the usual: a fold leaves the claims that landed while it ran (up to about
 * COMPACT_AT more with many workers), so a list between COMPACT_AT and twice it is normal; one
 * past 3 × COMPACT_AT means the receives that should have folded it did not. Every receive that
 * sees it tries, so this must stay rare: those compactions race each other.
 */
const compactionOverdue = (stored: StoredSession): boolean => stored.claims.length >= 3 * COMPACT_AT || stored.acks.length >= 3 * COMPACT_AT;

/** The session as a claim of this host left it (see SessionService.views). */
interface ClaimView {
  owner: string;
  stored: StoredSession;
  /** The log's head the claim was planned from: it may have grown since, never shrunk. */
  head: LogHead;
  /** When the claim was made. */
  atMs: number;
}

/** Acks carried on a receive, and what became of them. */
interface CarriedAck {
  selection: Range[];
  /** Set by the write that recorded them (so a retry or a later poll round does not again). */
  applied: boolean;
  acked: number;
}

/** Ack marks for acks of `sel` made at `now`. */
const marksOf = (sel: readonly Range[], now: number): AckMark[] => sel.map(([from, to]) => ({ from, to, atMs: now }));

/** The parts of a normalized selection below `cursor`. */
function clipBelow(sel: readonly Range[], cursor: number): Range[] {
  const out: Range[] = [];
  for (const [from, to] of sel) if (from < cursor) out.push([from, Math.min(to, cursor - 1)]);
  return out;
}

/**
 * Cuts what a plan read to the byte budget (always at least one record), in grant order:
 * `sent` records, `missing` (retention removed them), and `unsent` ranges past the cut.
 *
 * Two budgets: `maxBytes` of record data (the delivery profile's maxBatchBytes), and Lambda's
 * response envelope (RECORDS_ENVELOPE_BUDGET), where each record's JSON text is escaped once
 * more. Without the second, a batch of quote-heavy records under a maxBatchBytes near 6 MiB
 * was claimed, and then its response was dropped by Lambda after the handler returned: leased,
 * counted as a delivery, never seen by a worker. One record always fits: maxRecordBytes is at
 * most 256 KiB, so its envelope is at most about 512 KiB.
 */
function cutToBudget(
  plan: readonly Grant[],
  records: ReadonlyMap<number, DeliveredRecord>,
  maxBytes: number,
): { sent: { g: Grant; r: DeliveredRecord }[]; missing: Range[]; unsent: Range[]; taken: number } {
  let taken = 0;
  let bytes = 0;
  let envelope = 0;
  let full = false;
  const missing: Range[] = [];
  const unsent: Range[] = [];
  const sent: { g: Grant; r: DeliveredRecord }[] = [];
  for (const g of plan) {
    for (let seq = g.from; seq <= g.to; seq++) {
      if (full) {
        unsent.push([seq, g.to]);
        break;
      }
      const r = records.get(seq);
      if (!r) {
        missing.push([seq, seq]);
        taken++;
        continue;
      }
      // A record's escaped text is at most twice its bytes: stored data is JSON text (validated
      // or serialized when appended), so its only control characters are whitespace escaped as
      // two bytes, and a `"` or `\` takes two. The exact count is taken only near the limit.
      // Keys are short and counted exactly.
      const bound = 2 * r.dataBytes + recordEnvelopeBytes('', r.key);
      const inEnvelope = envelope + bound <= RECORDS_ENVELOPE_BUDGET ? bound : recordEnvelopeBytes(r.dataJson, r.key);
      if (sent.length && (bytes + r.dataBytes > maxBytes || envelope + inEnvelope > RECORDS_ENVELOPE_BUDGET)) {
        full = true;
        unsent.push([seq, g.to]);
        break;
      }
      bytes += r.dataBytes;
      envelope += inEnvelope;
      sent.push({ g, r });
      taken++;
    }
  }
  return { sent, missing, unsent, taken };
}

/** The records as the receive hands them out (a grant's records share one lease timestamp). */
function toReceived(sent: readonly { g: Grant; r: DeliveredRecord }[]): ReceivedRecord[] {
  let grant: Grant | undefined;
  let leaseExpiresAt = '';
  return sent.map(({ g, r }) => {
    if (g !== grant) {
      grant = g;
      leaseExpiresAt = new Date(g.leaseMs).toISOString();
    }
    const out: ReceivedRecord = { seq: r.seq, dataJson: r.dataJson, deliveryCount: g.count, leaseExpiresAt };
    if (r.key !== undefined) out.key = r.key;
    return out;
  });
}

const clone = (s: SessionState): SessionState => ({ ...s, leases: [...s.leases], dead: [...s.dead], deadPages: [...s.deadPages] });

const backoff = (attempt: number): Promise<void> => sleep(Math.min(100, 2 * 2 ** Math.min(attempt, 6)) * Math.random());
