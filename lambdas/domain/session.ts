/**
 * A receiver session's delivery state and the pure operations on it. Storage adapters load
 * and conditionally save a `SessionState`; everything that decides which records a worker
 * gets, what an ack removes and when a record is dead-lettered lives here.
 */
import { addDead, countOf, insertLeases, mapSelected, normalizeRanges, rangeSize, type DeadRange, type Lease, type Range } from './ranges';

export interface SessionSettings {
  ackTimeoutSeconds: number;
  maxInFlight: number;
  maxDeliveries: number;
  idleTimeoutSeconds: number;
}

export interface SessionState {
  sessionId: string;
  owner: string;
  logId: string;
  /** Storage key of the log (owner-scoped). */
  logKey: string;
  settings: SessionSettings;
  createdMs: number;
  /** The next never-sent sequence number. */
  cursor: number;
  /** Sent and not acknowledged, sorted by sequence number. */
  leases: Lease[];
  /** Dead-lettered, sorted; older pages may have been spilled to `deadPages`. */
  dead: DeadRange[];
  /** Keys of spilled dead-letter pages, oldest first. */
  deadPages: string[];
  /** Records spilled into `deadPages`. */
  deadSpilled: number;
  /** Records skipped because retention removed them before the session reached them. */
  skipped: number;
  /**
   * Counts changes that end leases early (nack, unsend). A claim requires it unchanged since
   * its read, so a receive never takes fresh records past records released after that read.
   */
  releases: number;
  /** Idle expiry, epoch ms. */
  expiresMs: number;
  /** Optimistic-concurrency version of the stored item. */
  version: number;
}

/**
 * A fresh grant recorded by an atomic claim: `n` records from wherever the cursor stood when
 * the claim landed, delivered once, leased until `leaseMs`. Claims are appended to the stored
 * session in cursor order, so the i-th claim covers the n records after the claims before it.
 */
export interface Claim {
  n: number;
  leaseMs: number;
}

/** An ack recorded by an atomic update at `atMs`, not yet folded into `leases`. */
export interface AckMark {
  from: number;
  to: number;
  atMs: number;
}

/**
 * A session as stored: the compacted `state` (its `cursor` is where the pending claims start)
 * plus what atomic updates appended since the last compaction. `settle` folds them together.
 */
export interface StoredSession {
  state: SessionState;
  claims: Claim[];
  acks: AckMark[];
}

/**
 * The session as it stands: the compacted state with the pending claims turned into leases
 * (count 1, in cursor order) and the pending acks applied. An ack removes what it names,
 * except records that were already dead letters when it was made (lease over, deliveries used
 * up), exactly as an ack applied at that moment would have.
 */
export function settle(stored: StoredSession): SessionState {
  const s: SessionState = {
    ...stored.state,
    leases: [...stored.state.leases],
    dead: [...stored.state.dead],
    deadPages: [...stored.state.deadPages],
  };
  let pos = s.cursor;
  const fresh: Lease[] = [];
  for (const c of stored.claims) {
    if (c.n > 0) fresh.push({ from: pos, to: pos + c.n - 1, leaseMs: c.leaseMs, count: 1 });
    pos += c.n;
  }
  if (fresh.length) s.leases = insertLeases(s.leases, fresh);
  s.cursor = pos;
  const max = s.settings.maxDeliveries;
  if (!stored.acks.length) return s;
  if (s.leases.every((l) => l.count < max)) {
    // The usual case: no lease could have been a dead letter when an ack was made, so every ack
    // removes all it names, whenever it was made: one pass with all of them.
    s.leases = mapSelected(
      s.leases,
      stored.acks.map((a): Range => [a.from, a.to]),
      () => null,
    ).leases;
    return s;
  }
  for (const a of stored.acks) {
    s.leases = mapSelected(s.leases, [[a.from, a.to]], (part) => (part.leaseMs <= a.atMs && part.count >= max ? part : null)).leases;
  }
  return s;
}

/** How many records of `selection` an ack made at `now` removes from this (settled) session. */
export function ackCount(settled: SessionState, selection: readonly Range[], now: number): number {
  const s: SessionState = { ...settled, leases: [...settled.leases], dead: [...settled.dead] };
  sweepDead(s, now);
  return mapSelected(s.leases, selection, () => null).touched;
}

/**
 * The largest cursor position at which a claim of `n` fresh records may still land: its
 * records must exist (`lastSeq`) and the session must stay within `maxInFlight`. Acks since the
 * snapshot only lower the true in-flight count, so a claim under this bound is always allowed.
 */
export function claimLimit(settled: SessionState, lastSeq: number, n: number): number {
  const room = settled.settings.maxInFlight - countOf(settled.leases);
  return Math.min(lastSeq + 1 - n, settled.cursor + room - n);
}

/** Fresh records one claim may take: within `maxRecords`, `maxInFlight` and the log's end. */
export function freshRoom(settled: SessionState, lastSeq: number, maxRecords: number): number {
  const room = settled.settings.maxInFlight - countOf(settled.leases);
  return Math.max(0, Math.min(maxRecords, room, lastSeq - settled.cursor + 1));
}

/**
 * The session exactly as a claim left it: the session as it stood just before the claim (the
 * claim's write returns it) with the claim of `n` records and its carried ack `marks` added.
 */
export function afterClaim(before: StoredSession, n: number, leaseMs: number, expiresMs: number, marks: readonly AckMark[]): StoredSession {
  return {
    state: { ...before.state, expiresMs },
    claims: [...before.claims, { n, leaseMs }],
    acks: [...before.acks, ...marks],
  };
}

/** Oldest a host's view of a session may be for a receive to claim from it (see claimFromView). */
export const VIEW_MAX_AGE_MS = 1000;

/**
 * How many fresh records a receive may claim from a view of the session, without reading it:
 * `maxRecords`, or 0 when it must read. `view` is the session (settled) as one of this host's
 * claims left it `ageMs` ago; `lastSeq` the log's end as that host last read it; `ackedUpTo`
 * the highest record the receive's carried acks name (0: none).
 *
 * A claim from a view is as safe as one from a fresh read, because what may have changed since
 * is either harmless or refused by the claim's write:
 * - claims by other hosts advance the cursor, and claimLimit's bound counts every record the
 *   cursor moved past as in flight, so `maxInFlight` holds; acks only lower the real count;
 * - releases (nack, records given back) bump the counter the claim requires unchanged;
 * - idle expiry and deletion fail the claim's condition;
 * - leases that end before `now`: none of the view's (checked here), and none of those taken
 *   since, because the view is younger than half the ack timeout and every lease taken since
 *   lasts a whole ack timeout from then.
 * Anything else needs the session as it is now: redeliveries or expired poison due, the log's
 * end near (the view cannot see appends since), or carried acks that name records sent after
 * the view (only a read tells those from records never sent).
 */
export function claimFromView(
  view: SessionState,
  ageMs: number,
  now: number,
  lastSeq: number,
  maxRecords: number,
  ackedUpTo: number,
): number {
  const maxAge = Math.min(VIEW_MAX_AGE_MS, (view.settings.ackTimeoutSeconds * 1000) / 2);
  if (!(ageMs >= 0 && ageMs < maxAge) || isExpired(view, now)) return 0;
  if (ackedUpTo >= view.cursor) return 0;
  if (view.leases.some((l) => l.leaseMs <= now)) return 0;
  return freshRoom(view, lastSeq, maxRecords) === maxRecords ? maxRecords : 0;
}

/**
 * Gives back records a receive claimed but did not send (the byte budget cut them): their
 * lease ends now and the delivery that never happened is not counted. Only touches leases that
 * are still exactly that claim's (count 1, `leaseMs`). Returns the records released.
 */
export function unsend(s: SessionState, ranges: readonly Range[], leaseMs: number, now: number): number {
  const r = mapSelected(s.leases, ranges, (part) =>
    part.count === 1 && part.leaseMs === leaseMs ? { ...part, count: 0, leaseMs: now } : part,
  );
  s.leases = r.leases;
  if (r.touched) s.releases++;
  return r.touched;
}

export interface Grant {
  from: number;
  to: number;
  count: number;
  leaseMs: number;
}

export const isExpired = (s: SessionState, now: number): boolean => s.expiresMs <= now;

/**
 * Moves the idle expiry forward after a use at `now`. A session is never expired sooner than
 * `idleTimeoutSeconds` after its last use; to keep busy sessions (and empty polls) from
 * writing on every request, the expiry is set a tenth of the idle timeout further out and
 * only moved again once that slack is used up. So a session lives between 1.0 and 1.1 idle
 * timeouts after its last use, and is written for this at most once per tenth of a timeout.
 */
export function refreshExpiry(s: SessionState, now: number): boolean {
  if (s.expiresMs >= now + s.settings.idleTimeoutSeconds * 1000) return false;
  s.expiresMs = now + expiryAfterUseMs(s.settings);
  return true;
}

/** How far after a use the idle expiry is set: the idle timeout plus a tenth (see refreshExpiry). */
export function expiryAfterUseMs(settings: SessionSettings): number {
  const idleMs = settings.idleTimeoutSeconds * 1000;
  return idleMs + Math.floor(idleMs / 10);
}

/** Dead-letters every expired lease that has used up its deliveries. Returns records moved. */
export function sweepDead(s: SessionState, now: number): number {
  const dead: DeadRange[] = [];
  const keep: Lease[] = [];
  for (const l of s.leases) {
    if (l.leaseMs <= now && l.count >= s.settings.maxDeliveries) dead.push({ from: l.from, to: l.to, count: l.count });
    else keep.push(l);
  }
  if (!dead.length) return 0;
  s.leases = keep;
  s.dead = addDead(s.dead, dead);
  return countOf(dead);
}

/**
 * Decides what one `receive` hands out: first expired leases, oldest sequence first, then new
 * records from the cursor up to `lastSeq`, within `maxRecords` and the session's `maxInFlight`.
 * Mutates `s` (the caller saves it conditionally) and returns the grants, in sequence order
 * within each of the two groups.
 */
export function planReceive(s: SessionState, now: number, lastSeq: number, maxRecords: number): Grant[] {
  sweepDead(s, now);
  const leaseMs = now + s.settings.ackTimeoutSeconds * 1000;
  const grants: Grant[] = [];
  let budget = maxRecords;
  const redeliver: Range[] = [];
  for (const l of s.leases) {
    if (budget <= 0) break;
    if (l.leaseMs > now) continue;
    const to = Math.min(l.to, l.from + budget - 1);
    redeliver.push([l.from, to]);
    budget -= to - l.from + 1;
  }
  if (redeliver.length) {
    s.leases = mapSelected(s.leases, redeliver, (part) => {
      const next = { ...part, leaseMs, count: part.count + 1 };
      grants.push({ from: next.from, to: next.to, count: next.count, leaseMs });
      return next;
    }).leases;
  }
  const room = s.settings.maxInFlight - countOf(s.leases);
  const fresh = Math.min(budget, room, lastSeq - s.cursor + 1);
  if (fresh > 0) {
    const g: Grant = { from: s.cursor, to: s.cursor + fresh - 1, count: 1, leaseMs };
    s.leases = insertLeases(s.leases, [{ ...g }]);
    grants.push(g);
    s.cursor += fresh;
  }
  return grants;
}

/** Forgets leased records that retention removed from the log; counts them as skipped. */
export function dropMissing(s: SessionState, ranges: readonly Range[]): number {
  const r = mapSelected(s.leases, ranges, () => null);
  s.leases = r.leases;
  s.skipped += r.touched;
  return r.touched;
}

/** Moves the cursor past records retention already removed, counting them as skipped. */
export function skipTo(s: SessionState, firstSeq: number): number {
  if (firstSeq <= s.cursor) return 0;
  const n = firstSeq - s.cursor;
  s.cursor = firstSeq;
  s.skipped += n;
  return n;
}

export function ack(s: SessionState, selection: readonly Range[]): number {
  const r = mapSelected(s.leases, selection, () => null);
  s.leases = r.leases;
  return r.touched;
}

/** Ends live leases after `delaySeconds`; expired leases are already released and count 0. */
export function nack(s: SessionState, selection: readonly Range[], now: number, delaySeconds: number): number {
  const until = now + delaySeconds * 1000;
  const r = mapSelected(s.leases, selection, (part) => (part.leaseMs > now ? { ...part, leaseMs: until } : part));
  s.leases = r.leases;
  if (r.touched) s.releases++;
  return r.touched;
}

/** Lengthens live leases to at least `seconds` from now; never shortens one. Counts live leases. */
export function extend(s: SessionState, selection: readonly Range[], now: number, seconds: number): number {
  const until = now + seconds * 1000;
  let live = 0;
  s.leases = mapSelected(s.leases, selection, (part) => {
    if (part.leaseMs <= now) return part;
    live += rangeSize(part);
    return part.leaseMs >= until ? { ...part } : { ...part, leaseMs: until };
  }).leases;
  return live;
}

export interface SessionView {
  sessionId: string;
  logId: string;
  cursor: number;
  ackFloor: number;
  inFlight: number;
  inFlightRanges: [number, number][];
  deadLettered: number;
  lag: number;
  skippedByRetention: number;
  expiresAt: string;
  settings: SessionSettings;
}

/** The session as `GET /sessions/{id}` shows it, with expired poison leases counted as dead. */
export function view(stored: SessionState, now: number, lastSeq: number): SessionView {
  const s: SessionState = { ...stored, leases: [...stored.leases], dead: [...stored.dead] };
  sweepDead(s, now);
  const first = s.leases[0];
  return {
    sessionId: s.sessionId,
    logId: s.logId,
    cursor: s.cursor,
    ackFloor: first ? first.from - 1 : s.cursor - 1,
    inFlight: countOf(s.leases),
    inFlightRanges: normalizeRanges(s.leases.map((l): Range => [l.from, l.to])) as [number, number][],
    deadLettered: countOf(s.dead) + s.deadSpilled,
    lag: Math.max(0, lastSeq - s.cursor + 1),
    skippedByRetention: s.skipped,
    expiresAt: new Date(s.expiresMs).toISOString(),
    settings: s.settings,
  };
}
