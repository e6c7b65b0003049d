/**
 * Receive: hands a worker records leased to it alone, after recording the acks it carried.
 * Flow, per round: look (this host's view of its last claim, or read session and head), plan
 * (dead-letter expired poison, apply the carried acks, then: expired leases to redeliver, else
 * fresh records to claim, else nothing), and take the plan's step: redeliver (a compaction,
 * after reading the records), claim (the atomic claim, then reading the records) or idle
 * (record the acks, or housekeeping). A round ends in records sent (none, for idle), a
 * conflict (a conditional write lost: back off and look again) or a rescan (retention removed
 * every record planned: look again at once). A long poll repeats rounds that sent nothing
 * until its wait is over.
 */
import { busy, ConflictError, isBusy } from '../domain/errors';
import { normalizeRanges, type Range } from '../domain/ranges';
import {
  ack as ackLeases,
  ackCount,
  afterClaim,
  claimFromView,
  claimLimit,
  dropMissing,
  expiryAfterUseMs,
  freshRoom,
  planReceive,
  refreshExpiry,
  settle,
  skipTo,
  sweepDead,
  unsend,
  type Grant,
  type SessionState,
  type StoredSession,
} from '../domain/session';
import { decodeSegment, type DeliveredRecord, type ReceivedRecord } from '../domain/records';
import { RECORDS_ENVELOPE_BUDGET, recordEnvelopeBytes } from '../domain/envelope';
import type { ChunkRef } from '../domain/log-index';
import type { DeliveryConfig } from '../domain/config';
import { sleep, type LogHead } from '../ports';
import { ATOMIC_ACK_RANGES, clipBelow, marksOf, type Acks } from './session-acks';
import { COMPACT_AT, compactionOverdue, type Compactions } from './session-compaction';
import { backoff, clone, MAX_ATTEMPTS, type ReceiveStats, type SessionContext } from './session-context';

/** What a worker asks of one receive. */
export interface ReceiveRequest {
  maxRecords?: number;
  waitSeconds?: number;
  /** Acks of earlier deliveries, recorded before this receive chooses what to hand out. */
  ack: readonly Range[];
}

/** Acks carried on a receive, and what became of them. */
interface CarriedAck {
  selection: Range[];
  /** Set by the write that recorded them (so a retry or a later poll round does not again). */
  applied: boolean;
  acked: number;
}

/** One receive's fixed inputs, shared by its rounds. */
interface Receipt {
  owner: string;
  sessionId: string;
  maxRecords: number;
  /** Bytes of record data a batch may carry (the delivery profile's maxBatchBytes). */
  maxBytes: number;
  stats: ReceiveStats;
  /** The acks carried on the request, if any (see unrecorded). */
  carried: CarriedAck | undefined;
}

/** The carried acks while no write has recorded them yet; after that, a round has none to apply. */
const unrecorded = (r: Receipt): CarriedAck | undefined => (r.carried && !r.carried.applied ? r.carried : undefined);

/** How one round ended. */
type Round = { kind: 'sent'; records: ReceivedRecord[] } | { kind: 'conflict' } | { kind: 'rescan' };

const CONFLICT: Round = { kind: 'conflict' };
const RESCAN: Round = { kind: 'rescan' };
const sent = (records: ReceivedRecord[]): Round => ({ kind: 'sent', records });

/** What a round looked at. */
interface Look {
  /** Taken before the read (see look). */
  now: number;
  stored: StoredSession;
  settled: SessionState;
  head: LogHead;
}

/** A round's working copy of the session: settled, poison swept, carried acks applied. */
interface Work {
  s: SessionState;
  /** Records the sweep dead-lettered. */
  swept: number;
  /** The carried acks this round applies (the part below the cursor it read), if any. */
  ack: Range[] | undefined;
  /** How many records they acked, counted from what this round read. */
  ackedHere: number;
}

/** What a round decided to do. */
type Plan = { kind: 'redeliver'; grants: Grant[] } | { kind: 'claim'; n: number } | { kind: 'idle' };

export class Receiver {
  constructor(
    private readonly cx: SessionContext,
    private readonly compactions: Compactions,
    private readonly acks: Acks,
  ) {}

  /**
   * A receive that first acknowledges `req.ack`, exactly as an ack would, in the same request:
   * the records it names are out of flight before this receive chooses what to hand out. When
   * the receive claims fresh records the acks ride on the claim's write, so a worker that acks
   * its last batch this way costs one request and one write less per batch. A long poll applies
   * them at once, not when records arrive.
   */
  async receiveAndAck(
    owner: string,
    sessionId: string,
    req: ReceiveRequest,
    delivery: DeliveryConfig,
    stats: ReceiveStats,
  ): Promise<{ records: ReceivedRecord[]; acked: number }> {
    let sel = normalizeRanges(req.ack);
    let acked = 0;
    if (sel.length > ATOMIC_ACK_RANGES) {
      // Scattered: applied as its own compaction (see Acks.ack), before the receive looks.
      acked = await this.acks.ack(owner, sessionId, sel);
      sel = [];
    }
    const carried: CarriedAck | undefined = sel.length ? { selection: sel, acked: 0, applied: false } : undefined;
    const waitUntil = this.cx.clock.now() + (req.waitSeconds ?? 0) * 1000;
    const maxRecords = Math.min(req.maxRecords ?? delivery.maxBatchRecords, delivery.maxBatchRecords);
    let records: ReceivedRecord[];
    for (;;) {
      stats.polls++;
      try {
        records = await this.receiveOnce({ owner, sessionId, maxRecords, maxBytes: delivery.maxBatchBytes, stats, carried });
      } catch (e) {
        // Acks already written are not failed with the request (the worker could not tell it
        // need not send them again): too busy to hand out records, it returns none.
        if (!(carried?.applied && isBusy(e))) throw e;
        records = [];
        break;
      }
      // An empty answer only once the whole wait has passed: every early one is a request the
      // worker pays for and did not need. The last sleep is cut to what is left of the wait.
      const left = waitUntil - this.cx.clock.now();
      if (records.length || left <= 0) break;
      const before = this.cx.clock.now();
      await sleep(Math.min(delivery.longPollIntervalMs, left));
      stats.idleMs += this.cx.clock.now() - before;
    }
    return { records, acked: acked + (carried?.acked ?? 0) };
  }

  /** Rounds until one sends (records, or none to send); 503 after MAX_ATTEMPTS conflicts in a row. */
  private async receiveOnce(r: Receipt): Promise<ReceivedRecord[]> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; ) {
      if (attempt > 0) await backoff(attempt);
      const round = await this.round(r);
      if (round.kind === 'sent') return round.records;
      // A rescan looks again at once, as a first attempt: nothing was lost to another request.
      attempt = round.kind === 'conflict' ? attempt + 1 : 0;
    }
    throw busy('Too many workers are changing this session at once.', 1);
  }

  private async round(r: Receipt): Promise<Round> {
    const look = await this.look(r);
    const work = this.prepare(look, r);
    const plan = this.plan(look, work, r.maxRecords);
    switch (plan.kind) {
      case 'redeliver':
        return this.redeliver(r, look, work, plan.grants);
      case 'claim':
        return this.claim(r, look, work, plan.n);
      case 'idle':
        return this.idle(r, look, work);
    }
  }

  /**
   * The session as this host's last claim left it, when claiming from it is as safe as a read
   * (see viewFor), else read with the log's head.
   */
  private async look(r: Receipt): Promise<Look> {
    // `now` is taken before the read: an ack that lands after the read is later than `now`,
    // so a lease this receive dead-letters had already ended when that ack was made, and the
    // ack (which counted it as dead, not acked) agrees with what is written.
    const now = this.cx.clock.now();
    const hot = this.viewFor(r, now);
    if (hot) return { now, ...hot };
    const { stored, head } = await this.cx.load(r.owner, r.sessionId, true);
    return { now, stored, head, settled: settle(stored) };
  }

  /**
   * This host's view of the session (see SessionContext.views), if this receive may claim from
   * it without reading: it is the caller's, and claimFromView allows a full batch.
   */
  private viewFor(r: Receipt, now: number): Omit<Look, 'now'> | undefined {
    const v = this.cx.views.get(r.sessionId);
    if (!v || v.owner !== r.owner || compactionOverdue(v.stored)) return undefined;
    const settled = settle(v.stored);
    const carried = unrecorded(r);
    const ackedUpTo = carried ? carried.selection[carried.selection.length - 1]![1] : 0;
    return claimFromView(settled, now - v.atMs, now, v.head.lastSeq, r.maxRecords, ackedUpTo) > 0
      ? { stored: v.stored, settled, head: v.head }
      : undefined;
  }

  /** Dead-letters expired poison, then applies the carried acks, on a copy of the settled session. */
  private prepare(look: Look, r: Receipt): Work {
    const s = clone(look.settled);
    const swept = sweepDead(s, look.now);
    // Carried acks count as of `now`, after expired poison was dead-lettered, as an ack does.
    // Records at or past the cursor this read saw were never sent before the request was made
    // (the read is strongly consistent and follows it), so they count 0: they may be the very
    // records this receive is about to hand out.
    const carried = unrecorded(r);
    const ack = carried ? clipBelow(carried.selection, s.cursor) : undefined;
    return { s, swept, ack, ackedHere: ack ? ackLeases(s, ack) : 0 };
  }

  /** Expired leases first (oldest first), else fresh records if there is room, else nothing. */
  private plan(look: Look, w: Work, maxRecords: number): Plan {
    // Redeliveries only: fresh records are never planned here (s.cursor - 1 as the log's end).
    const grants = planReceive(w.s, look.now, w.s.cursor - 1, maxRecords);
    if (grants.length) return { kind: 'redeliver', grants };
    const n = freshRoom(w.s, look.head.lastSeq, maxRecords);
    return n === 0 ? { kind: 'idle' } : { kind: 'claim', n };
  }

  /** The carried acks were recorded by a write of this round, counted from what it read. */
  private recorded(r: Receipt, w: Work): void {
    if (r.carried && w.ack) Object.assign(r.carried, { applied: true, acked: w.ackedHere });
  }

  /**
   * Hands out expired leases: reads their records, then writes the redelivery (with the
   * carried acks) as a compaction.
   */
  private async redeliver(r: Receipt, look: Look, w: Work, grants: readonly Grant[]): Promise<Round> {
    const read = await this.readGrants(look.head, grants, -1);
    const cut = cutToBudget(grants, read.records, r.maxBytes);
    // Plan again with exactly what is sent: planning is deterministic, so this is a prefix.
    const final = clone(look.settled);
    sweepDead(final, look.now);
    if (w.ack) ackLeases(final, w.ack);
    planReceive(final, look.now, final.cursor - 1, cut.taken);
    if (cut.missing.length) dropMissing(final, cut.missing);
    refreshExpiry(final, look.now);
    if (!(await this.compactions.compact(look.stored, final, r.stats, !!w.ack?.length))) return CONFLICT;
    this.recorded(r, w);
    return cut.sent.length ? sent(toReceived(cut.sent)) : RESCAN;
  }

  /**
   * Nothing to hand out: writes only to record carried acks, dead-letter expired poison, fold
   * a long pending list, or keep the session alive. An empty poll usually costs no write.
   */
  private async idle(r: Receipt, look: Look, w: Work): Promise<Round> {
    const { s, swept, ack, ackedHere } = w;
    if (!refreshExpiry(s, look.now) && !swept && !compactionOverdue(look.stored)) {
      // Only acks to record: the atomic ack update, which no other write can make fail (a
      // compaction here would race the others at the log's end).
      if (r.carried && ack && ackedHere) {
        // A refusal means the session expired meanwhile: the next read says so.
        return (await this.recordCarried(r, ack, look.now)) ? sent([]) : CONFLICT;
      }
      this.recorded(r, w);
      return sent([]);
    }
    if (!(await this.compactions.compact(look.stored, s, r.stats, !!ackedHere))) return CONFLICT;
    this.recorded(r, w);
    return sent([]);
  }

  /**
   * Takes `n` fresh records with the atomic claim (carrying the acks), then reads them. A
   * claim is refused, and the round a conflict, when another receive took the last records,
   * leases were released since the look, or the session expired.
   */
  private async claim(r: Receipt, look: Look, w: Work, n: number): Promise<Round> {
    let marks = w.ackedHere ? w.ack : undefined;
    if (compactionOverdue(look.stored)) {
      // The receives whose claims reached multiples of COMPACT_AT did not fold the list (they
      // crashed, or lost to other compactions): do it now. Losing this race is fine: the
      // winner folded it.
      if (await this.compactions.compact(look.stored, w.s, r.stats, !!w.ackedHere)) {
        this.recorded(r, w);
        marks = undefined;
      }
    } else if (!w.ackedHere) this.recorded(r, w); // nothing the read saw in flight: nothing to write
    const out = await this.claimFresh(r, look, w.s, n, marks);
    if (out.kind === 'conflict') {
      // A refused claim wrote nothing, so its acks are not recorded either. Record them now
      // with the ack update, which nothing refuses: else a session near maxInFlight would
      // keep its workers' acked records in flight while they retry, and refuse more claims.
      if (r.carried && marks) await this.recordCarried(r, marks, look.now);
      return CONFLICT;
    }
    if (marks && r.carried) Object.assign(r.carried, { applied: true, acked: out.acked });
    return out.records.length ? sent(out.records) : RESCAN;
  }

  /**
   * The claim itself, then the read of what it took. A crash after the claim leaves the records
   * leased, to be redelivered when the lease ends.
   */
  private async claimFresh(
    r: Receipt,
    look: Look,
    s: SessionState,
    n: number,
    /** Carried acks to record in the claim's write (already applied to `s`, all below its cursor). */
    ack: readonly Range[] | undefined,
  ): Promise<{ kind: 'claimed'; records: ReceivedRecord[]; acked: number } | { kind: 'conflict' }> {
    const { now, head } = look;
    const leaseMs = now + s.settings.ackTimeoutSeconds * 1000;
    const expiresMs = now + expiryAfterUseMs(s.settings);
    const marks = ack ? marksOf(ack, now) : [];
    let claimed: { cursor: number; pending: number; before: StoredSession };
    try {
      claimed = await this.cx.store.claimSession({
        sessionId: r.sessionId,
        n,
        limit: claimLimit(s, head.lastSeq, n),
        releases: s.releases,
        leaseMs,
        expiresMs,
        nowMs: now,
        marks,
      });
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      // Another receive took the last records, leases were released since the read (or since
      // this host's view), or the session expired: look again, reading.
      this.cx.views.delete(r.sessionId);
      r.stats.conflicts++;
      return { kind: 'conflict' };
    }
    // Counted from the session just before the write, exactly as a standalone ack counts.
    const acked = ack ? ackCount(settle(claimed.before), ack, now) : 0;
    const after = afterClaim(claimed.before, n, leaseMs, expiresMs, marks);
    if (this.cx.views.size > 10_000) this.cx.views.clear();
    this.cx.views.set(r.sessionId, { owner: r.owner, stored: after, head, atMs: now });
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
    const folding =
      claimed.pending % COMPACT_AT === 0 ? this.compactions.fold(r.owner, r.sessionId, r.stats, after).catch(() => undefined) : undefined;
    const [read] = await Promise.all([this.readGrants(head, [grant], grant.from), folding]);
    const cut = cutToBudget([grant], read.records, r.maxBytes);
    if (cut.missing.length || cut.unsent.length) {
      // Retention removed some of the claimed records, or the byte budget left some unsent:
      // forget the former, and give the latter back without counting a delivery.
      const skipFrom = read.freshAllMissing ? await this.cx.logs.firstSeq(head) : 0;
      await this.compactions.mutate(r.owner, r.sessionId, {
        change: (x) => dropMissing(x, cut.missing) + (skipFrom && x.cursor === cursor ? skipTo(x, skipFrom) : 0),
        // Before the sweep: with maxDeliveries 1 and a receive slower than the ack timeout, the
        // unsent records' lease has ended, and the sweep would dead-letter them unsent.
        first: (x, at) => unsend(x, cut.unsent, leaseMs, at),
      });
    }
    return { kind: 'claimed', records: toReceived(cut.sent), acked };
  }

  /**
   * Records carried acks (all below the cursor the receive read) with the atomic ack update,
   * counted from the session just before it; false if the session expired meanwhile.
   */
  private async recordCarried(r: Receipt, ack: readonly Range[], now: number): Promise<boolean> {
    try {
      const { acked } = await this.acks.write(r.sessionId, r.owner, ack, now);
      Object.assign(r.carried!, { applied: true, acked });
      return true;
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      return false;
    }
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
    if (plan.some((g) => g.to > head.lastSeq)) head = await this.cx.logs.head(head.owner, head.logId);
    const refs = new Map<string, ChunkRef>();
    for (const g of plan) for (const c of await this.cx.logs.locate(head, g.from, g.to)) refs.set(`${c.batchId}/${c.index}`, c);
    const chunks = await this.cx.logs.readChunks(head.logKey, [...refs.values()]);
    const nowSec = Math.floor(this.cx.clock.now() / 1000);
    const records = new Map<number, DeliveredRecord>();
    let freshAllMissing = false;
    for (const g of plan) {
      let got = 0;
      for (const seg of chunks) {
        if (seg.expiresSec <= nowSec) continue; // retention passed; TTL deletes lazily
        if (seg.first > g.to || seg.first + seg.count - 1 < g.from) continue;
        for (const rec of decodeSegment(seg.first, seg.text, g.from, g.to)) {
          records.set(rec.seq, rec);
          got++;
        }
      }
      if (g.from === fresh && got === 0) freshAllMissing = true;
    }
    return { records, freshAllMissing };
  }
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
