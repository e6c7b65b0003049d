/**
 * Logs: create, describe, and the append protocol.
 *
 * Append, all-or-nothing and gap-free without transactions:
 *   1. read the log's head (committed `lastSeq`, any pending reservation);
 *   2. reserve `lastSeq+1 .. lastSeq+n` with a conditional update of the head
 *      (`last = L AND no pending`): at most one append per log is between 2 and 4;
 *   3. write the records as segments (batch puts, tagged with the reservation's batch id);
 *   4. commit: `SET last = L+n REMOVE pend IF pend.b = mine`.
 * Readers never look past the committed `last`, so a crash before 4 exposes nothing. A
 * reservation carries a deadline (the invocation's own, plus a margin); after it, any appender
 * deletes the dead batch's segments and removes the reservation, and the sequence numbers are
 * reused, so there is never a gap. An appender never writes after its own deadline.
 *
 * With an idempotencyKey, an idempotency item is created first (PENDING, with the same
 * deadline), records the reserved range before the segments are written, and is completed
 * after the commit. A retry finds COMPLETE (answer the stored range), live PENDING (409, retry
 * later) or dead PENDING: then it looks at the head and the range to learn whether the dead
 * attempt committed, answers that, or cleans up and appends afresh.
 */
import { randomUUID } from 'node:crypto';
import { ApiError, ConflictError, appendInProgress, busy, logExists, logNotFound } from '../domain/errors';
import { encodeAppend, toSegments, type InputRecord } from '../domain/records';
import type { LimitsConfig } from '../domain/config';
import type { LogHead, Segment, Store } from '../adapters/store';
import { BOUNDS_KEPT, sleep } from '../adapters/store';

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Time the writer keeps after its own deadline before others may take its reservation over. */
export const RESERVATION_MARGIN_MS = 5_000;
/** How long an append waits behind another append's reservation before answering 503. */
export const MAX_WAIT_FOR_RESERVATION_MS = 1_000;

export const logKeyOf = (owner: string, logId: string): string => `${owner}|${logId}`;

export interface LogView {
  logId: string;
  firstSeq: number;
  lastSeq: number;
  retentionHours: number;
  createdAt: string;
}

export class LogService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock = systemClock,
  ) {}

  async create(owner: string, logId: string | undefined, retentionHours: number): Promise<{ logId: string; createdAt: string; retentionHours: number }> {
    const id = logId ?? `log-${randomUUID()}`;
    const createdMs = this.clock.now();
    try {
      await this.store.createLog({ logKey: logKeyOf(owner, id), owner, logId: id, retentionHours, createdMs, lastSeq: 0 });
    } catch (e) {
      if (e instanceof ConflictError) throw logExists(id);
      throw e;
    }
    return { logId: id, createdAt: new Date(createdMs).toISOString(), retentionHours };
  }

  async head(owner: string, logId: string): Promise<LogHead> {
    const head = await this.store.getHead(logKeyOf(owner, logId));
    if (!head) throw logNotFound(logId);
    return head;
  }

  /** First sequence number retention has not removed (lastSeq + 1 when none is left). */
  async firstSeq(head: LogHead): Promise<number> {
    if (head.lastSeq === 0) return 1;
    const seg = await this.store.firstLiveSegment(head.logKey, Math.floor(this.clock.now() / 1000));
    if (!seg || seg.first > head.lastSeq) return head.lastSeq + 1;
    return seg.first;
  }

  async describe(owner: string, logId: string): Promise<LogView> {
    const head = await this.head(owner, logId);
    return {
      logId,
      firstSeq: await this.firstSeq(head),
      lastSeq: head.lastSeq,
      retentionHours: head.retentionHours,
      createdAt: new Date(head.createdMs).toISOString(),
    };
  }

  async append(
    owner: string,
    logId: string,
    records: readonly InputRecord[],
    opts: { limits: LimitsConfig; requestBytes: number; idempotencyKey?: string; deadlineMs: number },
  ): Promise<{ firstSeq: number; lastSeq: number }> {
    const encoded = encodeAppend(records, opts.limits, opts.requestBytes);
    const logKey = logKeyOf(owner, logId);
    const token = randomUUID();
    const untilMs = opts.deadlineMs + RESERVATION_MARGIN_MS;
    const key = opts.idempotencyKey;

    if (key !== undefined) {
      const done = await this.beginIdempotent(logKey, logId, key, token, untilMs, opts.deadlineMs);
      if (done) return done;
    }

    const drafts = toSegments(encoded);
    const n = encoded.length;
    const waitUntil = this.clock.now() + MAX_WAIT_FOR_RESERVATION_MS;
    for (let attempt = 0; ; attempt++) {
      this.checkDeadline(opts.deadlineMs);
      const head = await this.store.getHead(logKey);
      if (!head) throw logNotFound(logId);
      if (head.pending) {
        const now = this.clock.now();
        if (head.pending.untilMs > now) {
          // Another append is between reserve and commit: normally a few milliseconds. If it
          // lasts, its writer likely died; tell the caller when the reservation lapses.
          if (now >= waitUntil) {
            throw busy('Another append to this log is still being written.', Math.max(1, Math.ceil((head.pending.untilMs - now) / 1000)));
          }
          await sleep(Math.min(40, 2 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random()));
          continue;
        }
        await this.clearDeadReservation(head);
        continue;
      }
      const first = head.lastSeq + 1;
      const last = head.lastSeq + n;
      const expiresSec = Math.floor(this.clock.now() / 1000) + head.retentionHours * 3600;
      try {
        this.checkDeadline(opts.deadlineMs);
        await this.store.reserve(logKey, head.lastSeq, { batchId: token, first, last, untilMs });
      } catch (e) {
        if (e instanceof ConflictError) continue;
        throw e;
      }
      if (key !== undefined) await this.store.setIdemRange(logKey, key, token, first, last);
      const segments: Segment[] = drafts.map((d) => ({
        first: first + d.offset,
        count: d.count,
        text: d.text,
        batchId: token,
        expiresSec,
      }));
      this.checkDeadline(opts.deadlineMs);
      await this.store.putSegments(logKey, segments);
      this.checkDeadline(opts.deadlineMs);
      try {
        // Only the reservation's holder commits, so the head's bounds read above are current.
        const bounds = [...(head.bounds ?? []), ...segments.map((seg) => seg.first)].slice(-BOUNDS_KEPT);
        await this.store.commit(logKey, token, last, bounds);
      } catch (e) {
        // Only possible if we outlived our own reservation and someone cleared it.
        if (e instanceof ConflictError) throw busy('The append took too long and was rolled back.', 1);
        throw e;
      }
      if (key !== undefined) await this.store.completeIdem(logKey, key, token, first, last);
      return { firstSeq: first, lastSeq: last };
    }
  }

  /**
   * Starts an idempotent append. Returns the earlier attempt's result when there is one;
   * undefined when this call must write the records (holding the idempotency item).
   */
  private async beginIdempotent(
    logKey: string,
    logId: string,
    key: string,
    token: string,
    untilMs: number,
    deadlineMs: number,
  ): Promise<{ firstSeq: number; lastSeq: number } | undefined> {
    for (;;) {
      this.checkDeadline(deadlineMs);
      let previous;
      try {
        previous = await this.store.beginIdem(logKey, key, token, untilMs, this.clock.now());
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
        const item = await this.store.getIdem(logKey, key);
        if (!item) continue;
        if (item.status === 'COMPLETE') return { firstSeq: item.first!, lastSeq: item.last! };
        if (item.untilMs >= this.clock.now()) throw appendInProgress(Math.max(1, Math.ceil((item.untilMs - this.clock.now()) / 1000)));
        continue; // it died just now: take it over
      }
      if (!previous) return undefined;
      // We took over an attempt whose writer died. Did it commit?
      const head = await this.store.getHead(logKey);
      if (!head) throw logNotFound(logId);
      if (head.pending?.batchId === previous.token) {
        await this.clearDeadReservation(head);
        return undefined;
      }
      if (previous.first !== undefined && previous.last !== undefined && head.lastSeq >= previous.last) {
        const seg = await this.store.segmentAtOrBefore(logKey, previous.first, true);
        if (seg && seg.first === previous.first && seg.batchId === previous.token) {
          await this.store.completeIdem(logKey, key, token, previous.first, previous.last);
          return { firstSeq: previous.first, lastSeq: previous.last };
        }
      }
      return undefined;
    }
  }

  /** Deletes the segments of a reservation whose writer is past its deadline, then frees the head. */
  private async clearDeadReservation(head: LogHead): Promise<void> {
    const p = head.pending!;
    const segs = await this.store.segmentsBetween(head.logKey, p.first, p.last, true);
    const dead = segs.filter((s) => s.batchId === p.batchId).map((s) => s.first);
    if (dead.length) await this.store.deleteSegments(head.logKey, dead);
    try {
      await this.store.abandon(head.logKey, p.batchId);
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e; // someone else cleared it first
    }
  }

  private checkDeadline(deadlineMs: number): void {
    if (this.clock.now() >= deadlineMs) throw new ApiError(503, 'ServiceBusy', 'The log is busy with other appends. Retry in 1 second.', 1);
  }
}
