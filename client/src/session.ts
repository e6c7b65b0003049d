/**
 * A receiver session handle and the worker API on top of it:
 *
 * - `consume(handler, opts)`: receive, run the handler per record (`consumeBatches`: per
 *   batch) with bounded concurrency, ack what succeeded (on the next receive when one is coming
 *   soon, else in an ack request), nack what threw, extend the leases of everything held while
 *   it waits or runs, and on abort stop receiving, release what has not started, let running
 *   handlers finish, settle them, and return a summary.
 * - `records(opts)`: `for await (const r of session.records()) { ...; await r.ack(); }`.
 *
 * Both are at-least-once: a worker that dies holds nothing anyone waits for; its leases run out
 * and its records go to another worker.
 */
import type { LogrelayClient, CallOptions } from './client';
import { ConflictError, ForbiddenError, LogrelayError, NotFoundError, ValidationError } from './errors';
import { sleep } from './retry';
import { MAX_SELECTION_ENTRIES, toRanges } from './selection';
import type { CreatedSession, DeliveredRecord, ReceiveInput, ReceiveResult, Selection, Seq, SessionInfo } from './types';

export interface HandlerContext<T = unknown> {
  /** The consume call's signal: aborted when the worker is shutting down. */
  signal: AbortSignal;
  session: Session<T>;
}

/** Throw (or reject) to have the record nacked; return anything to have it acked. */
export type RecordHandler<T> = (record: DeliveredRecord<T>, ctx: HandlerContext<T>) => unknown;

/**
 * Throw to nack the whole batch; return nothing to ack all of it, or `{ failed: seqs }` to nack
 * those and ack the rest.
 */
export type BatchHandler<T> = (
  records: DeliveredRecord<T>[],
  ctx: HandlerContext<T>,
  // biome-ignore lint/suspicious/noConfusingVoidType: `void` (not `undefined`) so that a handler declared or inferred as returning void, `() => { ... }`, is accepted: this is the public handler type
) => void | { failed?: readonly Seq[] } | Promise<void | { failed?: readonly Seq[] }>;

export type ConsumePhase = 'handler' | 'receive' | 'ack' | 'nack' | 'extend';

export interface ConsumeOptions {
  /** Handler calls (records, or batches with consumeBatches) running at once (default 1). */
  concurrency?: number;
  /**
   * Most records one receive asks for (default 100; the service may send fewer). The worker
   * receives again when everything received has started, so it holds at most `maxRecords` +
   * `concurrency` records (or batches' records).
   */
  maxRecords?: number;
  /**
   * Long-poll wait of each receive, 0..20 s (default 10). On abort, a receive already waiting is
   * allowed to finish, so that the records it may lease are released at once instead of waiting
   * out their lease: shutdown takes at most this long plus the running handlers.
   */
  waitSeconds?: number;
  /**
   * How often an idle worker looks for records, in seconds (default 2; 0: never idle, every
   * receive long-polls). A worker is idle once a receive that waited has found nothing; it then
   * receives without waiting on the service (waitSeconds 0) every `idlePollSeconds`, and goes
   * back to long polls when records arrive. A record appended to an idle session reaches the
   * worker within about `idlePollSeconds` and one request. The trade: a waiting long poll holds
   * a Lambda environment (billed by the millisecond, and counted against the function's
   * concurrency) the whole wait; a quick poll every 2 s costs about a ninth as much (see the
   * README, "What an idle worker costs").
   */
  idlePollSeconds?: number;
  /** Stop receiving, release what has not started, let running handlers finish, and return. */
  signal?: AbortSignal;
  /** Return once a receive finds nothing and nothing is held (drain the session, then stop). */
  stopWhenEmpty?: boolean;
  /** Delay before a failed record may be delivered again (default 0). */
  nackDelaySeconds?: number;
  /**
   * Longest a finished record's ack waits to ride on the worker's next receive instead of a
   * request of its own, ms (default 100, and at most a tenth of the ack timeout when it is
   * known). Acks wait only while the worker is about to receive or is receiving; when it is
   * idle (an empty receive with stopWhenEmpty, a pause after an empty or failed receive) or
   * stopping, they are sent at once. 0: acks are sent at once, as before (a receive still carries
   * those that are waiting when it is sent).
   */
  maxAckDelayMs?: number;
  /**
   * The session's ack timeout, for lease extension. Default: known from createSession or
   * client.session(id, {ackTimeoutSeconds}), else read from GET /sessions/{id}, else estimated
   * from the first delivery's leaseExpiresAt.
   */
  ackTimeoutSeconds?: number;
  /**
   * Sees every failure that does not stop the worker: handler errors (the records are nacked)
   * and service errors that outlasted the retries. Default: one line on stderr (console.error).
   */
  onError?: (error: unknown, info: { during: ConsumePhase; seqs?: Seq[] }) => void;
}

export interface ConsumeSummary {
  /** Records received (a redelivered record counts again). */
  received: number;
  /** Records whose handler succeeded (then acked). */
  handled: number;
  /** Records whose handler threw (then nacked). */
  failed: number;
  /** Records released (nacked) without running: held when the worker was aborted. */
  released: number;
  /**
   * Records the service confirmed acked, by ack requests or on receives (0 for a record whose
   * lease was lost and acked by another worker, and for one whose ack was applied by a request
   * whose answer was lost).
   */
  acked: number;
  /** Lease extensions the service granted (a record extended three times counts three). */
  extended: number;
  /** Records an extension found no longer leased (it came too late: the record may go to another worker). */
  leasesLost: number;
  /** Records neither acked nor nacked because the service could not be reached: their leases run out. */
  unsettled: number;
}

export interface RecordsOptions extends CallOptions {
  /** Most records one receive asks for (default 100). */
  maxRecords?: number;
  /** Long-poll wait, 0..20 s (default 20). */
  waitSeconds?: number;
  /** How often the loop looks for records once idle, in seconds (default 2; 0: always long-poll); see ConsumeOptions. */
  idlePollSeconds?: number;
  /** End the loop when a receive finds nothing. */
  stopWhenEmpty?: boolean;
  /** Extend the leases of received records not yet acked (default true). */
  extendLeases?: boolean;
  ackTimeoutSeconds?: number;
}

/** A record from `records()`, to be acked (or nacked) by the loop. */
export interface LeasedRecord<T = unknown> extends DeliveredRecord<T> {
  ack(): Promise<void>;
  nack(delaySeconds?: number): Promise<void>;
  /** Lengthens this record's lease to at least `seconds` from now. */
  extend(seconds: number): Promise<void>;
}

const FATAL = [NotFoundError, ForbiddenError, ValidationError, ConflictError];
const isFatal = (e: unknown): boolean => !(e instanceof LogrelayError) || FATAL.some((c) => e instanceof c);

export class Session<T = unknown> {
  constructor(
    readonly client: LogrelayClient,
    readonly id: string,
    private readonly known: { ackTimeoutSeconds?: number } = {},
    /** What POST /logs/{logId}/sessions answered, when this handle came from createSession. */
    readonly info?: CreatedSession,
  ) {}

  get ackTimeoutSeconds(): number | undefined {
    return this.known.ackTimeoutSeconds;
  }

  /** Receives records; `input.ack` acks earlier ones in the same request (see ReceiveInput.ack). */
  receive(input: ReceiveInput = {}, o: CallOptions = {}): Promise<DeliveredRecord<T>[]> {
    return this.client.receive<T>(this.id, input, o);
  }
  /** Acks `input.ack` and receives in one request; resolves with the records and the ack count. */
  receiveAndAck(input: ReceiveInput = {}, o: CallOptions = {}): Promise<ReceiveResult<T>> {
    return this.client.receiveAndAck<T>(this.id, input, o);
  }
  ack(selection: Selection, o: CallOptions = {}): Promise<number> {
    return this.client.ack(this.id, selection, o);
  }
  nack(selection: Selection, o: CallOptions & { delaySeconds?: number } = {}): Promise<number> {
    return this.client.nack(this.id, selection, o);
  }
  extend(selection: Selection, seconds: number, o: CallOptions = {}): Promise<number> {
    return this.client.extend(this.id, selection, seconds, o);
  }
  describe(o: CallOptions = {}): Promise<SessionInfo> {
    return this.client.describeSession(this.id, o);
  }
  deadLetters(o: CallOptions = {}): Promise<[number, number, number][]> {
    return this.client.deadLetters(this.id, o);
  }
  delete(o: CallOptions = {}): Promise<void> {
    return this.client.deleteSession(this.id, o);
  }

  /** The ack timeout consume() and records() extend leases by (see ConsumeOptions.ackTimeoutSeconds). */
  private async resolveAckTimeout(explicit: number | undefined): Promise<number | undefined> {
    if (explicit !== undefined) return explicit;
    if (this.known.ackTimeoutSeconds !== undefined) return this.known.ackTimeoutSeconds;
    const info = await this.describe();
    const s = info.settings?.ackTimeoutSeconds;
    if (typeof s === 'number' && s > 0) this.known.ackTimeoutSeconds = s;
    return this.known.ackTimeoutSeconds;
  }

  /** Runs `handler` once per record; see ConsumeOptions. Resolves with a summary once stopped. */
  async consume(handler: RecordHandler<T>, opts: ConsumeOptions = {}): Promise<ConsumeSummary> {
    const ctx = this.context(opts);
    return new Consumer<T>(this, await this.resolveAckTimeout(opts.ackTimeoutSeconds), opts, (batch) =>
      batch.map((r) => ({
        records: [r],
        run: async () => {
          await handler(r, ctx);
          return [];
        },
      })),
    ).run();
  }

  /** Runs `handler` once per received batch; see BatchHandler and ConsumeOptions. */
  async consumeBatches(handler: BatchHandler<T>, opts: ConsumeOptions = {}): Promise<ConsumeSummary> {
    const ctx = this.context(opts);
    return new Consumer<T>(this, await this.resolveAckTimeout(opts.ackTimeoutSeconds), opts, (batch) => [
      {
        records: batch,
        run: async () => {
          const out = await handler(batch, ctx);
          return out?.failed ? [...out.failed] : [];
        },
      },
    ]).run();
  }

  private context(opts: ConsumeOptions): HandlerContext<T> {
    return { signal: opts.signal ?? new AbortController().signal, session: this };
  }

  /**
   * Received records one at a time, each to be acked (or nacked) by the loop. Leases of records
   * received and not yet settled are extended while the loop runs. Leaving the loop (break,
   * return, throw, or the signal) releases every record received and not yet settled.
   */
  async *records(opts: RecordsOptions = {}): AsyncGenerator<LeasedRecord<T>, void, undefined> {
    const ackTimeout = opts.extendLeases === false ? undefined : await this.resolveAckTimeout(opts.ackTimeoutSeconds);
    const keeper = opts.extendLeases === false ? undefined : new LeaseKeeper((seqs, s) => this.extend(seqs, s), ackTimeout);
    const unsettled = new Set<Seq>();
    const settle = (seq: Seq) => {
      unsettled.delete(seq);
      keeper?.remove([seq]);
    };
    const idle = new IdlePacer(opts.waitSeconds ?? 20, opts.idlePollSeconds);
    try {
      while (!opts.signal?.aborted) {
        const sentAt = Date.now();
        const batch = await this.receive({ maxRecords: opts.maxRecords ?? 100, waitSeconds: idle.waitSeconds });
        const pauseMs = idle.after(batch.length);
        if (batch.length === 0) {
          if (opts.stopWhenEmpty) return;
          if (pauseMs) await sleep(pauseMs, opts.signal).catch(() => undefined);
          continue;
        }
        for (const r of batch) unsettled.add(r.seq);
        keeper?.add(batch, sentAt);
        for (const r of batch) {
          if (opts.signal?.aborted) return;
          yield {
            ...r,
            ack: async () => {
              settle(r.seq);
              await this.ack([r.seq]);
            },
            nack: async (delaySeconds?: number) => {
              settle(r.seq);
              await this.nack([r.seq], delaySeconds !== undefined ? { delaySeconds } : {});
            },
            extend: async (seconds: number) => {
              await this.extend([r.seq], seconds);
            },
          };
        }
      }
    } finally {
      keeper?.stop();
      if (unsettled.size > 0) await this.nack([...unsettled]).catch(() => undefined);
    }
  }
}

// ---- Lease extension ------------------------------------------------------------------------------

/**
 * Keeps the leases of held records alive: every tick, records with less than half an ack
 * timeout left (by a conservative local estimate: the receive's send time plus the ack timeout)
 * are extended by a full ack timeout in one request.
 */
export class LeaseKeeper {
  private readonly held = new Map<Seq, number>();
  private timeoutMs: number | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  extended = 0;
  lost = 0;

  constructor(
    private readonly extendFn: (seqs: Seq[], seconds: number) => Promise<number>,
    ackTimeoutSeconds: number | undefined,
    private readonly onError: (e: unknown, seqs: Seq[]) => void = () => {},
  ) {
    if (ackTimeoutSeconds !== undefined) this.timeoutMs = ackTimeoutSeconds * 1000;
  }

  get size(): number {
    return this.held.size;
  }

  /** Whether an extend request is in flight (an ack sent now could overtake it). */
  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  add(records: readonly DeliveredRecord<unknown>[], sentAtMs: number): void {
    if (records.length === 0 || this.stopped) return;
    if (this.timeoutMs === undefined) {
      // No ack timeout known: estimate it from the lease the service granted (clock skew applies).
      const granted = Date.parse(records[0]!.leaseExpiresAt) - sentAtMs;
      this.timeoutMs = Math.max(1000, Math.round(granted / 1000) * 1000);
    }
    for (const r of records) this.held.set(r.seq, sentAtMs + this.timeoutMs);
    if (!this.timer) {
      const tick = Math.min(5000, Math.max(100, this.timeoutMs / 8));
      this.timer = setInterval(() => void this.tick(), tick);
    }
  }

  /** Stops extending these records (they are being acked or nacked). */
  remove(seqs: readonly Seq[]): void {
    for (const s of seqs) this.held.delete(s);
  }

  /** Resolves once no extend request is in flight (so an ack sent next cannot overtake it). */
  async idle(): Promise<void> {
    while (this.inFlight !== undefined) await this.inFlight;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    if (this.inFlight || this.stopped || this.timeoutMs === undefined) return;
    const timeoutMs = this.timeoutMs;
    const now = Date.now();
    const due: Seq[] = [];
    for (const [seq, until] of this.held) if (until - now <= timeoutMs / 2) due.push(seq);
    if (due.length === 0) return;
    const sentAt = Date.now();
    this.inFlight = this.extendFn(due, Math.ceil(timeoutMs / 1000))
      .then((n) => {
        this.extended += n;
        this.lost += Math.max(0, due.length - n);
        for (const s of due) if (this.held.has(s)) this.held.set(s, sentAt + timeoutMs);
      })
      .catch((e: unknown) => this.onError(e, due))
      .finally(() => {
        this.inFlight = undefined;
      });
  }
}

// ---- The consume loop -----------------------------------------------------------------------------

function defaultOnError(e: unknown, info: { during: ConsumePhase; seqs?: Seq[] }): void {
  const which = info.seqs?.length
    ? ` (seq ${info.seqs.length === 1 ? info.seqs[0] : `${info.seqs[0]} and ${info.seqs.length - 1} more`})`
    : '';
  const what = info.during === 'handler' ? `the handler failed${which}; nacked` : `${info.during} failed${which}`;
  console.error(`logrelay consume: ${what}: ${(e as Error)?.message ?? String(e)}`);
}

interface Job<T> {
  records: DeliveredRecord<T>[];
  /** Runs the handler; resolves with the seqs that failed (a throw fails them all). */
  run(): Promise<Seq[]>;
}

/**
 * How a receive loop waits for records. Busy, each receive long-polls `waitSeconds`. Once a
 * receive that waited comes back empty the loop is idle: it receives without waiting on the
 * service (0 s) every `idlePollSeconds` instead, until records arrive. A long poll holds a
 * Lambda environment the whole wait, so an idle worker that long-polled paid for every second
 * of the day; one that polls every 2 s pays for a few milliseconds each time (README, "What an
 * idle worker costs"). `idlePollSeconds` 0 keeps long-polling; `waitSeconds` 0 polls every
 * second, as before.
 */
export class IdlePacer {
  private idle = false;
  private readonly idleMs: number;

  constructor(
    private readonly longPollSeconds: number,
    idlePollSeconds: number | undefined,
  ) {
    const s = idlePollSeconds ?? DEFAULT_IDLE_POLL_SECONDS;
    if (!(s >= 0) || !Number.isFinite(s))
      throw new RangeError(`idlePollSeconds must be a number of seconds, 0 or more; it is ${String(idlePollSeconds)}.`);
    this.idleMs = Math.round(s * 1000);
  }

  /** The wait of the next receive. */
  get waitSeconds(): number {
    return this.idle ? 0 : this.longPollSeconds;
  }

  /** Takes a receive's count of records; returns how long to pause before the next (0: none). */
  after(records: number): number {
    if (records > 0) {
      this.idle = false;
      return 0;
    }
    if (this.longPollSeconds === 0) return 1000;
    if (this.idleMs === 0) return 0;
    this.idle = true;
    return this.idleMs;
  }
}

/** An idle worker's poll interval when none is given (seconds): see IdlePacer. */
export const DEFAULT_IDLE_POLL_SECONDS = 2;

/**
 * What the receive loop is doing. Acks of finished records may wait (at most maxAckDelayMs) to
 * ride on its next receive only while it is `draining` (it receives as soon as everything
 * received has started) or `receiving`; when it is `idle` (an empty receive with stopWhenEmpty,
 * a pause) or `done`, and whenever the worker is stopping, they are sent at once.
 */
type LoopPhase = 'starting' | 'draining' | 'receiving' | 'idle' | 'done';

class Consumer<T> {
  private readonly queue: Job<T>[] = [];
  private running = 0;
  private stopping = false;
  private fatal: unknown;
  /**
   * Every seq to settle is in exactly one place at a time: one of these lists, the batch of a
   * flush round, or the acks a receive in flight carries (put back here if that receive fails).
   */
  private readonly toAck: Seq[] = [];
  private readonly toNack: Seq[] = [];
  private readonly toRelease: Seq[] = [];
  private flushing: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  private readonly keeper: LeaseKeeper;
  private readonly summary: ConsumeSummary = {
    received: 0,
    handled: 0,
    failed: 0,
    released: 0,
    acked: 0,
    extended: 0,
    leasesLost: 0,
    unsettled: 0,
  };
  private readonly concurrency: number;
  private readonly maxAckDelayMs: number;
  /** Receives carry acks unless the service refused them (it predates acks on receive). */
  private carryAcks = true;
  private phase: LoopPhase = 'starting';
  /** Runs out maxAckDelayMs after an ack began waiting for a receive; then the acks are flushed. */
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private acksOverdue = false;

  private readonly onError: NonNullable<ConsumeOptions['onError']>;

  constructor(
    private readonly session: Session<T>,
    ackTimeoutSeconds: number | undefined,
    private readonly o: ConsumeOptions,
    private readonly jobsOf: (batch: DeliveredRecord<T>[]) => Job<T>[],
  ) {
    this.concurrency = Math.max(1, Math.floor(o.concurrency ?? 1));
    const delay = Math.max(0, o.maxAckDelayMs ?? 100);
    this.maxAckDelayMs = ackTimeoutSeconds !== undefined ? Math.min(delay, ackTimeoutSeconds * 100) : delay;
    this.onError = o.onError ?? defaultOnError;
    this.keeper = new LeaseKeeper(
      (seqs, s) => session.extend(seqs, s),
      ackTimeoutSeconds,
      (e, seqs) => this.failure(e, 'extend', seqs),
    );
  }

  async run(): Promise<ConsumeSummary> {
    const onAbort = () => this.stop();
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.o.signal?.aborted) this.stop();
    try {
      await this.receiveLoop();
      this.stop();
      while (this.running > 0) await this.changed();
      await this.settleAll();
    } finally {
      this.keeper.stop();
      this.clearAckTimer();
      this.o.signal?.removeEventListener('abort', onAbort);
    }
    this.summary.extended = this.keeper.extended;
    this.summary.leasesLost = this.keeper.lost;
    if (this.fatal !== undefined) throw this.fatal;
    return { ...this.summary };
  }

  /** Stop receiving and starting handlers; release what has not started; send waiting acks. */
  private stop(): void {
    this.stopping = true;
    const queued = this.queue.splice(0).flatMap((j) => j.records.map((r) => r.seq));
    if (queued.length) this.release(queued);
    if (this.dueWork()) void this.flush();
    this.notify();
  }

  private release(seqs: Seq[]): void {
    this.summary.released += seqs.length;
    this.keeper.remove(seqs);
    this.toRelease.push(...seqs);
    void this.flush();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  /** Reports a failure; a fatal one (session gone, not allowed, invalid request) stops the worker. */
  private failure(e: unknown, during: ConsumePhase, seqs?: Seq[]): void {
    if (during !== 'handler' && isFatal(e)) {
      if (this.fatal === undefined) this.fatal = e;
      this.stop();
      return;
    }
    this.onError(e, seqs ? { during, seqs } : { during });
  }

  private setPhase(phase: LoopPhase): void {
    this.phase = phase;
    if (this.dueWork()) void this.flush(); // e.g. going idle: the acks waiting for a receive go now
  }

  private async receiveLoop(): Promise<void> {
    const idle = new IdlePacer(this.o.waitSeconds ?? 10, this.o.idlePollSeconds);
    let backoffMs = 0;
    while (!this.stopping) {
      if (this.queue.length > 0) {
        this.setPhase('draining');
        await this.changed();
        continue;
      }
      const carried = this.acksToCarry();
      this.setPhase('receiving');
      const sentAt = Date.now();
      let batch: DeliveredRecord<T>[];
      let pauseMs = 0;
      try {
        // Not given the abort signal on purpose: a receive that has started may lease records,
        // and they are released below rather than left to wait out their lease.
        const got = await this.session.receiveAndAck({
          maxRecords: this.o.maxRecords ?? 100,
          waitSeconds: idle.waitSeconds,
          ...(carried.length ? { ack: carried } : {}),
        });
        this.summary.acked += got.acked;
        batch = got.records;
        backoffMs = 0;
        pauseMs = idle.after(batch.length);
      } catch (e) {
        if (carried.length) {
          // Applied or not, they are acked again (an ack of an acked record counts 0): by the
          // flush that going idle (or stopping) starts below, or by the next receive.
          this.toAck.push(...carried);
          if (e instanceof ValidationError || (e instanceof LogrelayError && e.code === 'InvalidResponse')) {
            // The service refused (or ignored) the `ack` field: it predates acks on receive.
            // Acks go in requests of their own from now on; receive again at once.
            this.carryAcks = false;
            this.onError(e, { during: 'receive', seqs: carried });
            void this.flush();
            continue;
          }
        }
        this.failure(e, 'receive');
        if (this.stopping) break;
        this.setPhase('idle');
        // Still failing after the client's retries: wait longer each time, up to 30 s.
        backoffMs = Math.min(30_000, Math.max(1000, backoffMs * 2));
        await this.pause(backoffMs);
        continue;
      }
      if (batch.length > 0) {
        this.summary.received += batch.length;
        this.keeper.add(batch, sentAt);
        if (this.stopping) {
          this.release(batch.map((r) => r.seq));
          break;
        }
        this.queue.push(...this.jobsOf(batch));
        this.pump();
        continue;
      }
      if (this.o.stopWhenEmpty) {
        if (this.running === 0 && this.keeper.size === 0 && !this.pendingSettles()) break;
        this.setPhase('idle');
        await this.changed();
        continue;
      }
      if (pauseMs) {
        this.setPhase('idle');
        await this.pause(pauseMs);
      }
    }
    this.setPhase('done');
  }

  private pendingSettles(): boolean {
    return this.toAck.length + this.toNack.length + this.toRelease.length > 0 || this.flushing !== undefined;
  }

  /** Sleeps, but wakes up early when the worker stops. */
  private async pause(ms: number): Promise<void> {
    const ac = new AbortController();
    const wake = this.changed().then(() => ac.abort());
    await Promise.race([sleep(ms, ac.signal).catch(() => undefined), wake]);
    ac.abort();
  }

  private pump(): void {
    while (!this.stopping && this.running < this.concurrency && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      void this.execute(job);
    }
  }

  private async execute(job: Job<T>): Promise<void> {
    const seqs = job.records.map((r) => r.seq);
    let failed: Seq[];
    try {
      const said = new Set(await job.run());
      failed = seqs.filter((s) => said.has(s));
    } catch (e) {
      failed = seqs;
      this.onError(e, { during: 'handler', seqs });
    }
    const ok = failed.length ? seqs.filter((s) => !failed.includes(s)) : seqs;
    this.summary.handled += ok.length;
    this.summary.failed += failed.length;
    this.keeper.remove(seqs);
    this.toAck.push(...ok);
    this.toNack.push(...failed);
    this.running--;
    this.settleSoon();
    this.pump();
    this.notify();
  }

  // ---- Settling: acks (on receives or on their own), nacks, releases ------------------------------

  /** Acks may wait for the next receive: the loop is about to receive or is receiving. */
  private acksMayWait(): boolean {
    return !this.stopping && this.carryAcks && this.maxAckDelayMs > 0 && (this.phase === 'draining' || this.phase === 'receiving');
  }

  private acksDue(): boolean {
    return this.acksOverdue || !this.acksMayWait();
  }

  /** Something to send now: nacks and releases always, acks once due. */
  private dueWork(): boolean {
    return this.toNack.length + this.toRelease.length > 0 || (this.toAck.length > 0 && this.acksDue());
  }

  /** Sends what is due; acks that may wait for a receive wait, at most maxAckDelayMs. */
  private settleSoon(): void {
    if (this.dueWork()) void this.flush();
    else if (this.toAck.length > 0 && !this.ackTimer) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = undefined;
        this.acksOverdue = true;
        void this.flush();
      }, this.maxAckDelayMs);
    }
  }

  /** Takes every waiting ack (for a flush round or a receive). */
  private takeAcks(): Seq[] {
    this.clearAckTimer();
    this.acksOverdue = false;
    return this.toAck.splice(0);
  }

  private clearAckTimer(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  /**
   * The acks the next receive carries: all that are waiting, except while an extend request is
   * in flight (it may name them, and an ack must not overtake it: the extend would find them
   * gone and count leases lost), or when they would not fit one request; then they stay for the
   * flush.
   */
  private acksToCarry(): Seq[] {
    if (!this.carryAcks || this.toAck.length === 0 || this.keeper.busy) return [];
    if (toRanges(this.toAck).length > MAX_SELECTION_ENTRIES) return [];
    return this.takeAcks();
  }

  /** Sends what is due (see dueWork); concurrent callers share one loop. */
  private flush(): Promise<void> {
    if (this.flushing !== undefined) return this.flushing;
    this.flushing = (async () => {
      while (this.dueWork()) {
        await this.keeper.idle();
        const acks = this.toAck.length > 0 && this.acksDue() ? this.takeAcks() : [];
        const nacks = this.toNack.splice(0);
        const releases = this.toRelease.splice(0);
        const calls: Promise<void>[] = [];
        if (acks.length) {
          calls.push(
            this.session.ack(acks).then(
              (n) => {
                this.summary.acked += n;
              },
              (e: unknown) => this.unsettled(e, 'ack', acks),
            ),
          );
        }
        if (nacks.length) {
          const delay = this.o.nackDelaySeconds;
          calls.push(
            this.session.nack(nacks, delay ? { delaySeconds: delay } : {}).then(
              () => undefined,
              (e: unknown) => this.unsettled(e, 'nack', nacks),
            ),
          );
        }
        if (releases.length) {
          calls.push(
            this.session.nack(releases).then(
              () => undefined,
              (e: unknown) => this.unsettled(e, 'nack', releases),
            ),
          );
        }
        await Promise.all(calls);
      }
    })().finally(() => {
      this.flushing = undefined;
      // Settles added after the loop's last look (or acks still waiting: their timer).
      this.settleSoon();
      this.notify();
    });
    return this.flushing;
  }

  /** An ack or nack failed even after retries: the records' leases will run out, and they go to a worker again. */
  private unsettled(e: unknown, during: ConsumePhase, seqs: Seq[]): void {
    this.summary.unsettled += seqs.length;
    this.failure(e, during, seqs);
  }

  private async settleAll(): Promise<void> {
    while (this.pendingSettles()) await this.flush();
  }
}
