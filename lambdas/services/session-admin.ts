/**
 * A session's life outside receive and acks: open one on a log, describe it, list its dead
 * letters, delete it.
 * Flow: create places the cursor (oldest retained record, the log's end, or after a given
 * record, never past the end) and puts the item once; the others load the live session (404
 * otherwise) and settle it before they answer or delete.
 */
import { randomBytes } from 'node:crypto';
import { validation } from '../domain/errors';
import type { DeadRange } from '../domain/ranges';
import { settle, sweepDead, view, type SessionSettings, type SessionState, type SessionView } from '../domain/session';
import type { SessionContext } from './session-context';

export type StartAt = 'oldest' | 'latest' | { afterSeq: number };

export class SessionAdmin {
  constructor(private readonly cx: SessionContext) {}

  async create(
    owner: string,
    logId: string,
    start: StartAt,
    settings: SessionSettings,
  ): Promise<{ sessionId: string; logId: string; expiresAt: string; cursor: number } & SessionSettings> {
    const head = await this.cx.logs.head(owner, logId);
    let cursor: number;
    if (start === 'latest') cursor = head.lastSeq + 1;
    else if (start === 'oldest') cursor = await this.cx.logs.firstSeq(head);
    else if (start.afterSeq > head.lastSeq) {
      // A cursor past the end would skip, unseen, every record appended up to it.
      throw validation(
        `The session cannot start after record ${start.afterSeq}: log '${logId}' ends at lastSeq ${head.lastSeq}. Use "start": "latest" to read only records appended from now on, or {"afterSeq": n} with n <= ${head.lastSeq}.`,
      );
    } else cursor = start.afterSeq + 1;
    const now = this.cx.clock.now();
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
    await this.cx.store.createSession(s);
    this.cx.rememberLogKey(s.sessionId, s.logKey);
    return { sessionId: s.sessionId, logId, expiresAt: new Date(s.expiresMs).toISOString(), cursor, ...settings };
  }

  async describe(owner: string, sessionId: string): Promise<SessionView> {
    const { stored, head } = await this.cx.load(owner, sessionId, true);
    return view(settle(stored), this.cx.clock.now(), head.lastSeq);
  }

  async deadLetters(owner: string, sessionId: string): Promise<[number, number, number][]> {
    const { stored } = await this.cx.load(owner, sessionId, false);
    const current = settle(stored);
    sweepDead(current, this.cx.clock.now());
    const pages = current.deadPages.length ? await this.cx.store.getDeadPages(current.deadPages) : [];
    const all: DeadRange[] = [...pages.flat(), ...current.dead].sort((a, b) => a.from - b.from);
    return all.map((d) => [d.from, d.to, d.count]);
  }

  async delete(owner: string, sessionId: string): Promise<void> {
    const { stored } = await this.cx.load(owner, sessionId, false);
    await this.cx.store.deleteSession(sessionId, stored.state.deadPages);
    this.cx.forget(sessionId);
  }
}
