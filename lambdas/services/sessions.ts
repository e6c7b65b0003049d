/**
 * Receiver sessions: create, receive, ack/nack/extend, describe, dead letters, delete.
 *
 * Every change to a session is one conditional write of its item (`v = version read`), so
 * concurrent worker hosts serialize on it: a receive that lost the race re-reads and plans
 * again, and can never hand out a record another receive leased. A receive reads the
 * records before it writes, so a crash anywhere in it changes nothing; the write then
 * records exactly what is returned (after the byte budget) and where the cursor's segment
 * starts, so the next receive reads from there with one query.
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, sessionNotFound, logNotFound, busy } from '../domain/errors';
import {
  isExpired,
  planReceive,
  refreshExpiry,
  sweepDead,
  dropMissing,
  skipTo,
  view,
  ack,
  nack,
  extend,
  type SessionSettings,
  type SessionState,
  type SessionView,
  type Grant,
} from '../domain/session';
import { countOf, type DeadRange, type Range } from '../domain/ranges';
import { decodeSegment, type DeliveredRecord } from '../domain/records';
import type { DeliveryConfig } from '../domain/config';
import { sleep, type LogHead, type Segment, type Store } from '../adapters/store';
import { LogService, systemClock, type Clock } from './logs';

/** Dead-letter ranges kept in the session item before they move to a page item. */
export const DEAD_SPILL_RANGES = 1024;
/** Conditional-write attempts before a request gives up with 503. */
const MAX_ATTEMPTS = 25;
const DEAD_PAGE_KEEP_SECONDS = 365 * 86_400;

export type StartAt = 'oldest' | 'latest' | { afterSeq: number };

export interface ReceivedRecord {
  seq: number;
  data: unknown;
  key?: string;
  deliveryCount: number;
  leaseExpiresAt: string;
}

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
    let cursorSeg = 0;
    if (start === 'latest') {
      cursor = head.lastSeq + 1;
      cursorSeg = cursor; // the next committed segment starts right after the head
    } else if (start === 'oldest') {
      cursor = await this.logs.firstSeq(head);
      cursorSeg = cursor;
    } else {
      cursor = start.afterSeq + 1;
      if (start.afterSeq === head.lastSeq) cursorSeg = cursor;
    }
    const now = this.clock.now();
    const s: SessionState = {
      sessionId: `s-${randomBytes(16).toString('base64url')}`,
      owner,
      logId,
      logKey: head.logKey,
      settings,
      createdMs: now,
      cursor,
      cursorSeg,
      leases: [],
      dead: [],
      deadPages: [],
      deadSpilled: 0,
      skipped: 0,
      expiresMs: now + settings.idleTimeoutSeconds * 1000,
      version: 0,
    };
    await this.store.createSession(s);
    this.logKeys.set(s.sessionId, s.logKey);
    return { sessionId: s.sessionId, logId, expiresAt: new Date(s.expiresMs).toISOString(), cursor, ...settings };
  }

  /** Loads a live session of `owner`, or throws 404. */
  private async load(owner: string, sessionId: string, withHead: true): Promise<{ s: SessionState; head: LogHead }>;
  private async load(owner: string, sessionId: string, withHead: false): Promise<{ s: SessionState; head?: LogHead }>;
  private async load(owner: string, sessionId: string, withHead: boolean): Promise<{ s: SessionState; head?: LogHead }> {
    let s: SessionState | undefined;
    let head: LogHead | undefined;
    const cachedKey = withHead ? this.logKeys.get(sessionId) : undefined;
    if (cachedKey) {
      ({ session: s, head } = await this.store.getSessionWithHead(sessionId, cachedKey));
    } else {
      s = await this.store.getSession(sessionId);
      if (s && withHead && s.owner === owner) head = await this.store.getHead(s.logKey);
    }
    if (!s || s.owner !== owner || isExpired(s, this.clock.now())) throw sessionNotFound(sessionId);
    if (this.logKeys.size > 10_000) this.logKeys.clear();
    this.logKeys.set(sessionId, s.logKey);
    if (withHead && !head) throw logNotFound(s.logId);
    return head ? { s, head } : { s };
  }

  async receive(
    owner: string,
    sessionId: string,
    req: { maxRecords?: number; waitSeconds?: number },
    delivery: DeliveryConfig,
    stats: ReceiveStats = { conflicts: 0, polls: 0, idleMs: 0 },
  ): Promise<ReceivedRecord[]> {
    const waitUntil = this.clock.now() + (req.waitSeconds ?? 0) * 1000;
    const maxRecords = Math.min(req.maxRecords ?? delivery.maxBatchRecords, delivery.maxBatchRecords);
    for (;;) {
      stats.polls++;
      const out = await this.receiveOnce(owner, sessionId, maxRecords, delivery.maxBatchBytes, stats);
      if (out.length || this.clock.now() + delivery.longPollIntervalMs > waitUntil) return out;
      const before = this.clock.now();
      await sleep(delivery.longPollIntervalMs);
      stats.idleMs += this.clock.now() - before;
    }
  }

  private async receiveOnce(
    owner: string,
    sessionId: string,
    maxRecords: number,
    maxBytes: number,
    stats: ReceiveStats,
  ): Promise<ReceivedRecord[]> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      const { s: loaded, head } = await this.load(owner, sessionId, true);
      const now = this.clock.now();
      const s = clone(loaded);
      const plan = planReceive(s, now, head.lastSeq, maxRecords);
      if (!plan.length) {
        // Nothing to hand out: write only to dead-letter expired poison or keep the session alive.
        const swept = loaded.leases.length !== s.leases.length || loaded.dead.length !== s.dead.length;
        if (!refreshExpiry(s, now) && !swept) return [];
        await this.spillDead(s);
        if (await this.trySave(s, stats)) return [];
        continue;
      }
      const read = await this.readGrants(s.logKey, plan, loaded.cursorSeg, loaded.cursor);
      // Cut to the byte budget (always at least one record), in grant order.
      let taken = 0;
      let bytes = 0;
      const missing: Range[] = [];
      const sent: { g: Grant; r: DeliveredRecord }[] = [];
      outer: for (const g of plan) {
        for (let seq = g.from; seq <= g.to; seq++) {
          const r = read.records.get(seq);
          if (!r) {
            missing.push([seq, seq]);
            taken++;
            continue;
          }
          if (sent.length && bytes + r.dataBytes > maxBytes) break outer;
          bytes += r.dataBytes;
          sent.push({ g, r });
          taken++;
        }
      }
      // Plan again with exactly what is sent: planning is deterministic, so this is a prefix.
      const final = clone(loaded);
      planReceive(final, now, head.lastSeq, taken);
      if (missing.length) dropMissing(final, missing);
      if (read.freshAllMissing) skipTo(final, await this.logs.firstSeq(head));
      final.cursorSeg = read.segmentHolding(final.cursor);
      refreshExpiry(final, now);
      await this.spillDead(final);
      if (!(await this.trySave(final, stats))) continue;
      if (!sent.length && missing.length) {
        attempt = -1; // retention skipped everything planned: look again at once
        continue;
      }
      return sent.map(({ g, r }) => {
        const out: ReceivedRecord = {
          seq: r.seq,
          data: r.data,
          deliveryCount: g.count,
          leaseExpiresAt: new Date(g.leaseMs).toISOString(),
        };
        if (r.key !== undefined) out.key = r.key;
        return out;
      });
    }
    throw busy('Too many workers are changing this session at once.', 1);
  }

  private async trySave(s: SessionState, stats: ReceiveStats): Promise<boolean> {
    try {
      await this.store.saveSession(s);
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
   * Reads the committed records a plan names (strongly consistent: a rolled-back append's
   * segment keys can be reused, and a stale replica must never resurrect one).
   */
  private async readGrants(
    logKey: string,
    plan: readonly Grant[],
    cursorSeg: number,
    cursor: number,
  ): Promise<{ records: Map<number, DeliveredRecord>; freshAllMissing: boolean; segmentHolding: (seq: number) => number }> {
    const nowSec = Math.floor(this.clock.now() / 1000);
    const records = new Map<number, DeliveredRecord>();
    // Every segment this receive has read, so scattered redeliveries from one segment cost one query.
    const fetched: Segment[] = [];
    const holder = (seq: number): Segment | undefined => fetched.find((seg) => seg.first <= seq && seq < seg.first + seg.count);
    let freshAllMissing = false;
    for (const g of plan) {
      const isFresh = g.from === cursor;
      // Skip the start of the grant that segments already read cover.
      let from = g.from;
      for (let seg = holder(from); seg && from <= g.to; seg = holder(from)) from = seg.first + seg.count;
      if (from <= g.to) {
        let found: Segment[] = [];
        if (isFresh && from === g.from && cursorSeg > 0 && cursorSeg <= from) {
          found = await this.store.segmentsBetween(logKey, cursorSeg, g.to, true);
          // A hint that does not name a segment (retention took it) falls back to the lookup below.
          if (found[0]?.first !== cursorSeg) found = [];
        }
        if (!found.length) {
          const s0 = await this.store.segmentAtOrBefore(logKey, from, true);
          const s0end = s0 ? s0.first + s0.count - 1 : from - 1;
          found = s0 && s0end >= g.to ? [s0] : [...(s0 ? [s0] : []), ...(await this.store.segmentsBetween(logKey, s0end + 1, g.to, true))];
        }
        fetched.push(...found);
      }
      let got = 0;
      for (const seg of fetched) {
        if (seg.expiresSec <= nowSec) continue; // retention passed; TTL deletes lazily
        if (seg.first > g.to || seg.first + seg.count - 1 < g.from) continue;
        for (const r of decodeSegment(seg.first, seg.text, g.from, g.to)) {
          records.set(r.seq, r);
          got++;
        }
      }
      if (isFresh && got === 0) freshAllMissing = true;
    }
    const segs = fetched.filter((seg) => seg.expiresSec > nowSec);
    const segmentHolding = (seq: number): number => {
      for (const seg of segs) {
        const end = seg.first + seg.count - 1;
        if (seg.first <= seq && seq <= end) return seg.first;
        if (end + 1 === seq) return seq; // segments are contiguous: the next one starts here
      }
      return 0;
    };
    return { records, freshAllMissing, segmentHolding };
  }

  private async mutate(owner: string, sessionId: string, change: (s: SessionState, now: number) => number): Promise<number> {
    const stats: ReceiveStats = { conflicts: 0, polls: 0, idleMs: 0 };
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      const { s: loaded } = await this.load(owner, sessionId, false);
      const now = this.clock.now();
      const s = clone(loaded);
      // Expired poison records are dead letters before anything else can touch them.
      const swept = sweepDead(s, now);
      const n = change(s, now);
      if (!refreshExpiry(s, now) && n === 0 && swept === 0) return 0;
      await this.spillDead(s);
      if (await this.trySave(s, stats)) return n;
    }
    throw busy('Too many workers are changing this session at once.', 1);
  }

  ack(owner: string, sessionId: string, selection: readonly Range[]): Promise<number> {
    return this.mutate(owner, sessionId, (s) => ack(s, selection));
  }

  nack(owner: string, sessionId: string, selection: readonly Range[], delaySeconds: number): Promise<number> {
    return this.mutate(owner, sessionId, (s, now) => nack(s, selection, now, delaySeconds));
  }

  extend(owner: string, sessionId: string, selection: readonly Range[], seconds: number): Promise<number> {
    return this.mutate(owner, sessionId, (s, now) => extend(s, selection, now, seconds));
  }

  async describe(owner: string, sessionId: string): Promise<SessionView> {
    const { s, head } = await this.load(owner, sessionId, true);
    return view(s, this.clock.now(), head.lastSeq);
  }

  async deadLetters(owner: string, sessionId: string): Promise<[number, number, number][]> {
    const { s } = await this.load(owner, sessionId, false);
    const current = clone(s);
    sweepDead(current, this.clock.now());
    const pages = s.deadPages.length ? await this.store.getDeadPages(s.deadPages) : [];
    const all: DeadRange[] = [...pages.flat(), ...current.dead].sort((a, b) => a.from - b.from);
    return all.map((d) => [d.from, d.to, d.count]);
  }

  async delete(owner: string, sessionId: string): Promise<void> {
    const { s } = await this.load(owner, sessionId, false);
    await this.store.deleteSession(sessionId, s.deadPages);
    this.logKeys.delete(sessionId);
  }
}


const clone = (s: SessionState): SessionState => ({ ...s, leases: [...s.leases], dead: [...s.dead], deadPages: [...s.deadPages] });

const backoff = (attempt: number): Promise<void> => sleep(Math.min(100, 2 * 2 ** Math.min(attempt, 6)) * Math.random());
