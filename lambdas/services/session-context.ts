/**
 * What every session use case shares: the store and clock, the log service (heads, index,
 * chunks), this host's caches (log keys, claim views), and reading a live session.
 * Flow: load reads the session (with its log's head when asked, in one round trip once the
 * log key is cached) and answers 404 for a session that is gone, expired or another caller's.
 */
import { logNotFound, sessionNotFound } from '../domain/errors';
import { isExpired, type SessionState, type StoredSession } from '../domain/session';
import { sleep, type Clock, type LogHead, type Store } from '../ports';
import { LogService } from './logs';

/** Conditional-write attempts before a request gives up with 503. */
export const MAX_ATTEMPTS = 25;

/** What a receive (or another session call) cost, for its metrics. */
export interface ReceiveStats {
  /** Conditional writes lost to another request during this call. */
  conflicts: number;
  /** Rounds of a long poll. */
  polls: number;
  /** Milliseconds spent sleeping between the rounds of a long poll. */
  idleMs: number;
}

export const newStats = (): ReceiveStats => ({ conflicts: 0, polls: 0, idleMs: 0 });

/** The session as a claim of this host left it (see SessionContext.views). */
export interface ClaimView {
  owner: string;
  stored: StoredSession;
  /** The log's head the claim was planned from: it may have grown since, never shrunk. */
  head: LogHead;
  /** When the claim was made. */
  atMs: number;
}

export class SessionContext {
  /** sessionId -> log key: immutable, so a warm host reads session and head in one round trip. */
  readonly logKeys = new Map<string, string>();
  /**
   * sessionId -> the session exactly as this host's last claim on it left it (the claim's write
   * returns the session as it stood before), with the log's head the claim was planned from.
   * The host's next receive on the session claims from it without reading when that is as safe
   * as a fresh read (claimFromView): a busy session's receive is then one claim and one query.
   */
  readonly views = new Map<string, ClaimView>();
  readonly logs: LogService;

  constructor(
    readonly store: Store,
    readonly clock: Clock,
  ) {
    this.logs = new LogService(store, clock);
  }

  /** Loads a live session of `owner`, or throws 404. */
  async load(owner: string, sessionId: string, withHead: true): Promise<{ stored: StoredSession; head: LogHead }>;
  async load(owner: string, sessionId: string, withHead: false): Promise<{ stored: StoredSession; head?: LogHead }>;
  async load(owner: string, sessionId: string, withHead: boolean): Promise<{ stored: StoredSession; head?: LogHead }> {
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
    this.rememberLogKey(sessionId, stored.state.logKey);
    if (withHead && !head) throw logNotFound(stored.state.logId);
    return head ? { stored, head } : { stored };
  }

  rememberLogKey(sessionId: string, logKey: string): void {
    if (this.logKeys.size > 10_000) this.logKeys.clear();
    this.logKeys.set(sessionId, logKey);
  }

  /** Forgets what this host knows of a session (deleted). */
  forget(sessionId: string): void {
    this.logKeys.delete(sessionId);
    this.views.delete(sessionId);
  }

  private checkLive(owner: string, sessionId: string, stored: StoredSession | undefined): asserts stored is StoredSession {
    if (!stored || stored.state.owner !== owner || isExpired(stored.state, this.clock.now())) throw sessionNotFound(sessionId);
  }
}

/** A copy of `s` whose lists a change may modify. */
export const clone = (s: SessionState): SessionState => ({ ...s, leases: [...s.leases], dead: [...s.dead], deadPages: [...s.deadPages] });

/** Jittered exponential wait before attempt `attempt` of a write that lost a race (at most 100 ms). */
export const backoff = (attempt: number): Promise<void> => sleep(Math.min(100, 2 * 2 ** Math.min(attempt, 6)) * Math.random());
