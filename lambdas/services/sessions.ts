/**
 * Receiver sessions: create, receive, ack/nack/extend, describe, dead letters, delete. This is
 * the service the handlers call; each use case lives in a file of its own:
 *
 *   session-receive.ts     receive (and acks carried on it): look, plan, redeliver | claim | idle
 *   session-acks.ts        ack, nack, extend
 *   session-compaction.ts  compactions: folds, and every change other than a claim or an ack
 *   session-admin.ts       create, describe, dead letters, delete
 *   session-context.ts     what they share: store, clock, this host's caches, load
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
import type { DeliveryConfig } from '../domain/config';
import type { Range } from '../domain/ranges';
import type { ReceivedRecord } from '../domain/records';
import type { SessionSettings, SessionView } from '../domain/session';
import { systemClock, type Clock, type Store } from '../ports';
import { Acks } from './session-acks';
import { SessionAdmin, type StartAt } from './session-admin';
import { Compactions } from './session-compaction';
import { newStats, SessionContext, type ReceiveStats } from './session-context';
import { Receiver, type ReceiveRequest } from './session-receive';

export { COMPACT_AT, DEAD_SPILL_RANGES } from './session-compaction';
export type { ReceiveRequest, ReceiveStats, ReceivedRecord, StartAt };

export class SessionService {
  private readonly admin: SessionAdmin;
  private readonly acks: Acks;
  private readonly receiver: Receiver;

  constructor(store: Store, clock: Clock = systemClock) {
    const cx = new SessionContext(store, clock);
    const compactions = new Compactions(cx);
    this.admin = new SessionAdmin(cx);
    this.acks = new Acks(cx, compactions);
    this.receiver = new Receiver(cx, compactions, this.acks);
  }

  create(owner: string, logId: string, start: StartAt, settings: SessionSettings): ReturnType<SessionAdmin['create']> {
    return this.admin.create(owner, logId, start, settings);
  }

  async receive(
    owner: string,
    sessionId: string,
    req: Omit<ReceiveRequest, 'ack'>,
    delivery: DeliveryConfig,
    stats: ReceiveStats = newStats(),
  ): Promise<ReceivedRecord[]> {
    return (await this.receiver.receiveAndAck(owner, sessionId, { ...req, ack: [] }, delivery, stats)).records;
  }

  /** A receive that first records `req.ack` (see Receiver.receiveAndAck). */
  receiveAndAck(
    owner: string,
    sessionId: string,
    req: ReceiveRequest,
    delivery: DeliveryConfig,
    stats: ReceiveStats = newStats(),
  ): Promise<{ records: ReceivedRecord[]; acked: number }> {
    return this.receiver.receiveAndAck(owner, sessionId, req, delivery, stats);
  }

  ack(owner: string, sessionId: string, selection: readonly Range[]): Promise<number> {
    return this.acks.ack(owner, sessionId, selection);
  }

  nack(owner: string, sessionId: string, selection: readonly Range[], delaySeconds: number): Promise<number> {
    return this.acks.nack(owner, sessionId, selection, delaySeconds);
  }

  extend(owner: string, sessionId: string, selection: readonly Range[], seconds: number): Promise<number> {
    return this.acks.extend(owner, sessionId, selection, seconds);
  }

  describe(owner: string, sessionId: string): Promise<SessionView> {
    return this.admin.describe(owner, sessionId);
  }

  deadLetters(owner: string, sessionId: string): Promise<[number, number, number][]> {
    return this.admin.deadLetters(owner, sessionId);
  }

  delete(owner: string, sessionId: string): Promise<void> {
    return this.admin.delete(owner, sessionId);
  }
}
