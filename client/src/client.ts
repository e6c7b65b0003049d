/**
 * LogrelayClient: one typed method per route of shared/API.md, signed with SigV4 and retried as
 * retry.ts describes. Works against the local runtime and a deployed stack alike.
 */
import { randomUUID } from 'node:crypto';
import { LogrelayError, PayloadTooLargeError } from './errors';
import { Transport, type Credentials, type CredentialsProvider, type FetchLike, type RetryEvent } from './http';
import type { RetryOptions } from './retry';
import { MAX_SELECTION_ENTRIES, selectionBodies } from './selection';
import { Session } from './session';
import type {
  AbortedBake,
  AppendRecord,
  AppendResult,
  Bake,
  BakeList,
  ConfigVersion,
  Configs,
  CreateLogInput,
  CreateSessionInput,
  CreatedConfigVersion,
  CreatedLog,
  CreatedSession,
  DeliveredRecord,
  LogInfo,
  ReceiveInput,
  ReceiveResult,
  Selection,
  SessionInfo,
  StartBakeInput,
} from './types';

export interface LogrelayClientOptions {
  /** The API's base URL: `http://127.0.0.1:8787` locally, the stack's `ApiUrl` output deployed. */
  endpoint: string;
  /**
   * The region to sign for. Default: the region in an `execute-api` endpoint's host name, else
   * AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1 (what the local runtime accepts).
   */
  region?: string;
  /**
   * Credentials, or a provider of them. Default: the AWS SDK's standard provider chain
   * (environment, shared config and credentials files with `profile`, SSO, web identity,
   * container and instance metadata), resolved on first use and refreshed before expiry.
   */
  credentials?: Credentials | CredentialsProvider;
  /** With the default chain: the shared-config profile to use (else AWS_PROFILE, else default). */
  profile?: string;
  retry?: RetryOptions;
  /** Per-attempt timeout, ms (default 30,000; a long poll adds its wait). */
  requestTimeoutMs?: number;
  /** Called before each retry, with the failure and the wait. */
  onRetry?: (e: RetryEvent) => void;
  /** The fetch to send requests with (default: the global fetch). */
  fetch?: FetchLike;
}

export interface CallOptions {
  /** Aborts the request and any wait between its retries. */
  signal?: AbortSignal;
}

export interface AppendOptions extends CallOptions {
  /**
   * Makes the append safe to retry: a retry with the same key returns the first attempt's
   * numbers and writes nothing. Default: a fresh random UUID per call, reused by its retries.
   * `false` sends no key; then the append is retried only when the service refused it (429/503)
   * or the connection never opened, never after it may have been written.
   */
  idempotencyKey?: string | false;
}

export interface AppendManyOptions extends CallOptions {
  /** Records per request (default 500, the `limits` profile's default maxRecordsPerAppend). */
  maxRecordsPerRequest?: number;
  /** Bytes per request body (default 1,000,000, under the default 1 MiB maxRequestBytes). */
  maxRequestBytes?: number;
  /** Called after every request that succeeded. */
  onProgress?: (p: AppendProgress) => void;
}

export interface AppendProgress {
  records: number;
  requests: number;
  lastSeq: number;
}

export interface AppendManyResult {
  records: number;
  requests: number;
  /** First and last sequence number of each request, in order. */
  appends: AppendResult[];
}

export interface SessionHandleOptions {
  /** The session's ack timeout, when known: consume() extends leases by it. */
  ackTimeoutSeconds?: number;
}

const enc = encodeURIComponent;

/** What to pass, for each kind of id a method takes (said in the TypeError for a missing one). */
const ID_HINTS = {
  logId: "a log's id (the logId createLog returned, or the name you gave it)",
  sessionId: 'the sessionId that createSession returned, or session.id',
  bakeId: 'the bakeId that startBake returned',
  profile: "a config profile name, e.g. 'delivery' or 'limits'",
  version: "a version number, e.g. 2 or '2'",
} as const;

/**
 * Refuses a missing or empty id at once, before any request: without this, `session(undefined)`
 * sends `/sessions/undefined` and the user reads a 404 about a session named "undefined".
 * `method` is the public method's name as the user called it.
 */
export function requireId(method: string, arg: keyof typeof ID_HINTS, value: unknown): string {
  if (typeof value === 'string' && value !== '') return value;
  const got = typeof value === 'string' ? "''" : value === null || value === undefined ? String(value) : `a ${typeof value}`;
  throw new TypeError(`client.${method}(${arg}): ${arg} must be a non-empty string (${ID_HINTS[arg]}); got ${got}.`);
}
const BODY_OVERHEAD = 80; // {"records":[...],"idempotencyKey":"<uuid>"} around the records

function defaultRegion(endpoint: string): string {
  try {
    const m = /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(endpoint).hostname);
    if (m) return m[1]!;
  } catch {
    // the transport reports a bad endpoint
  }
  return process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
}

/** The AWS SDK's default provider chain, loaded only when first needed. */
export function defaultCredentials(profile?: string): CredentialsProvider {
  let provider: CredentialsProvider | undefined;
  return async () => {
    if (!provider) {
      const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
      provider = defaultProvider(profile ? { profile } : {}) as CredentialsProvider;
    }
    return provider();
  };
}

export class LogrelayClient {
  /** @internal */
  readonly http: Transport;

  constructor(opts: LogrelayClientOptions) {
    this.http = new Transport({
      endpoint: opts.endpoint,
      region: opts.region ?? defaultRegion(opts.endpoint),
      credentials: opts.credentials ?? defaultCredentials(opts.profile),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.retry ? { retry: opts.retry } : {}),
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
      ...(opts.onRetry ? { onRetry: opts.onRetry } : {}),
    });
  }

  get endpoint(): string {
    return this.http.endpoint.toString();
  }

  // ---- Logs -----------------------------------------------------------------------------------

  /** POST /logs. Not idempotent (a repeat is 409 LogExists): retried only when refused. */
  async createLog(input: CreateLogInput = {}, o: CallOptions = {}): Promise<CreatedLog> {
    return (await this.http.call<CreatedLog>({ method: 'POST', path: '/logs', body: input, safety: 'once', ...sig(o) })).body;
  }

  /** GET /logs/{logId} */
  async describeLog(logId: string, o: CallOptions = {}): Promise<LogInfo> {
    requireId('describeLog', 'logId', logId);
    return (await this.http.call<LogInfo>({ method: 'GET', path: `/logs/${enc(logId)}`, safety: 'idempotent', ...sig(o) })).body;
  }

  /** POST /logs/{logId}/records: up to the `limits` profile's maxRecordsPerAppend (500), all or nothing. */
  async append<T>(logId: string, records: readonly AppendRecord<T>[], o: AppendOptions = {}): Promise<AppendResult> {
    requireId('append', 'logId', logId);
    const key = o.idempotencyKey === false ? undefined : (o.idempotencyKey ?? randomUUID());
    const body = key === undefined ? { records } : { records, idempotencyKey: key };
    const safety = key === undefined ? 'once' : 'idempotent';
    return (await this.http.call<AppendResult>({ method: 'POST', path: `/logs/${enc(logId)}/records`, body, safety, ...sig(o) })).body;
  }

  /**
   * Appends any number of records in order, as requests of at most `maxRecordsPerRequest`
   * records and `maxRequestBytes` bytes, each with its own idempotency key. A request the
   * service finds too large (413, e.g. a lowered maxRequestBytes) is split in two and sent
   * again (nothing of it was written); a single record too large fails. Stops at the first
   * error: the records before it are appended, none after.
   */
  async appendMany<T>(
    logId: string,
    records: Iterable<AppendRecord<T>> | AsyncIterable<AppendRecord<T>>,
    o: AppendManyOptions = {},
  ): Promise<AppendManyResult> {
    requireId('appendMany', 'logId', logId);
    const maxRecords = o.maxRecordsPerRequest ?? 500;
    const maxBytes = o.maxRequestBytes ?? 1_000_000;
    const out: AppendManyResult = { records: 0, requests: 0, appends: [] };
    const send = async (batch: AppendRecord<T>[]): Promise<void> => {
      try {
        const r = await this.append(logId, batch, sig(o));
        out.records += batch.length;
        out.requests++;
        out.appends.push(r);
        o.onProgress?.({ records: out.records, requests: out.requests, lastSeq: r.lastSeq });
      } catch (e) {
        if (!(e instanceof PayloadTooLargeError) || batch.length < 2) throw e;
        const half = Math.ceil(batch.length / 2);
        await send(batch.slice(0, half));
        await send(batch.slice(half));
      }
    };
    let batch: AppendRecord<T>[] = [];
    let bytes = BODY_OVERHEAD;
    for await (const record of records as AsyncIterable<AppendRecord<T>>) {
      const size = Buffer.byteLength(JSON.stringify(record), 'utf8') + 1;
      if (batch.length > 0 && (batch.length >= maxRecords || bytes + size > maxBytes)) {
        await send(batch);
        batch = [];
        bytes = BODY_OVERHEAD;
      }
      batch.push(record);
      bytes += size;
    }
    if (batch.length > 0) await send(batch);
    return out;
  }

  // ---- Sessions -------------------------------------------------------------------------------

  /** POST /logs/{logId}/sessions: opens a session and returns its handle. Retried only when refused. */
  async createSession(logId: string, input: CreateSessionInput = {}, o: CallOptions = {}): Promise<Session> {
    requireId('createSession', 'logId', logId);
    const created = (
      await this.http.call<CreatedSession>({ method: 'POST', path: `/logs/${enc(logId)}/sessions`, body: input, safety: 'once', ...sig(o) })
    ).body;
    return new Session(this, created.sessionId, { ackTimeoutSeconds: created.ackTimeoutSeconds }, created);
  }

  /** A handle on an existing session (a worker host typically gets the id from its configuration). */
  session<T = unknown>(sessionId: string, o: SessionHandleOptions = {}): Session<T> {
    requireId('session', 'sessionId', sessionId);
    return new Session<T>(this, sessionId, o);
  }

  /**
   * POST /sessions/{id}/receive. Retried after any transient failure, including a connection
   * lost after sending: delivery is at-least-once, so a response that never arrived only means
   * its records stay leased to nobody until their lease ends, and then they are delivered again.
   * `input.ack` acks earlier deliveries in the same request (see ReceiveInput.ack; the retries
   * are as safe, an ack of an acked record counting 0); this returns the records only, and
   * `receiveAndAck` the service's ack count too.
   */
  async receive<T = unknown>(sessionId: string, input: ReceiveInput = {}, o: CallOptions = {}): Promise<DeliveredRecord<T>[]> {
    requireId('receive', 'sessionId', sessionId);
    return (await this.receiveAndAck<T>(sessionId, input, o)).records;
  }

  /**
   * POST /sessions/{id}/receive carrying `input.ack`: acks those records, then receives, in one
   * request, and returns the records and how many the acks removed (`acked`, 0 when `ack` is
   * absent or empty). Retried as `receive` is. When it fails, the acks may or may not have been
   * applied: sending them again (here or with `ack()`) is harmless, but counts 0 for those that
   * were. A selection needing more than one request body (over 10,000 seqs or ranges) is a
   * RangeError: ack the excess with `ack()`.
   */
  async receiveAndAck<T = unknown>(sessionId: string, input: ReceiveInput = {}, o: CallOptions = {}): Promise<ReceiveResult<T>> {
    requireId('receiveAndAck', 'sessionId', sessionId);
    const { ack, ...rest } = input;
    const parts = ack === undefined ? [] : selectionBodies(ack);
    if (parts.length > 1) {
      throw new RangeError(
        `A receive can carry at most ${MAX_SELECTION_ENTRIES} seqs and ${MAX_SELECTION_ENTRIES} ranges of acks; this selection needs ${parts.length} requests. Ack the rest with ack().`,
      );
    }
    const carried = parts[0];
    const request = `POST /sessions/${enc(sessionId)}/receive`;
    const r = await this.http.call<{ records: DeliveredRecord<T>[]; acked?: unknown }>({
      method: 'POST',
      path: `/sessions/${enc(sessionId)}/receive`,
      body: carried ? { ...rest, ack: carried } : rest,
      safety: 'idempotent',
      extraTimeoutMs: (input.waitSeconds ?? 0) * 1000,
      ...sig(o),
    });
    if (!carried) return { records: r.body.records, acked: 0 };
    if (typeof r.body.acked !== 'number') {
      // Only a service that ignores unknown fields could do this (this one rejects them with 400).
      throw new LogrelayError({
        code: 'InvalidResponse',
        status: r.status,
        message: `${request} carried acks but its answer has no "acked" count: the service may predate acks on receive, and may not have applied them. Send them with ack().`,
        request,
      });
    }
    return { records: r.body.records, acked: r.body.acked };
  }

  /** POST /sessions/{id}/ack; returns how many records it removed. Idempotent. */
  async ack(sessionId: string, selection: Selection, o: CallOptions = {}): Promise<number> {
    requireId('ack', 'sessionId', sessionId);
    return this.lease(sessionId, 'ack', selection, {}, 'acked', o);
  }

  /** POST /sessions/{id}/nack: ends leases now (or after `delaySeconds`); returns how many. Idempotent. */
  async nack(sessionId: string, selection: Selection, o: CallOptions & { delaySeconds?: number } = {}): Promise<number> {
    requireId('nack', 'sessionId', sessionId);
    return this.lease(sessionId, 'nack', selection, o.delaySeconds !== undefined ? { delaySeconds: o.delaySeconds } : {}, 'released', o);
  }

  /** POST /sessions/{id}/extend: live leases last at least `seconds` from now; returns how many were live. Idempotent. */
  async extend(sessionId: string, selection: Selection, seconds: number, o: CallOptions = {}): Promise<number> {
    requireId('extend', 'sessionId', sessionId);
    return this.lease(sessionId, 'extend', selection, { seconds }, 'extended', o);
  }

  private async lease(sessionId: string, op: string, selection: Selection, extra: object, field: string, o: CallOptions): Promise<number> {
    let n = 0;
    for (const part of selectionBodies(selection)) {
      const r = await this.http.call<Record<string, number>>({
        method: 'POST',
        path: `/sessions/${enc(sessionId)}/${op}`,
        body: { ...part, ...extra },
        safety: 'idempotent',
        ...sig(o),
      });
      n += r.body[field] ?? 0;
    }
    return n;
  }

  /** GET /sessions/{id} */
  async describeSession(sessionId: string, o: CallOptions = {}): Promise<SessionInfo> {
    requireId('describeSession', 'sessionId', sessionId);
    return (await this.http.call<SessionInfo>({ method: 'GET', path: `/sessions/${enc(sessionId)}`, safety: 'idempotent', ...sig(o) }))
      .body;
  }

  /** GET /sessions/{id}/dead-letters: `[from, to, deliveryCount]` ranges. */
  async deadLetters(sessionId: string, o: CallOptions = {}): Promise<[number, number, number][]> {
    requireId('deadLetters', 'sessionId', sessionId);
    return (
      await this.http.call<{ ranges: [number, number, number][] }>({
        method: 'GET',
        path: `/sessions/${enc(sessionId)}/dead-letters`,
        safety: 'idempotent',
        ...sig(o),
      })
    ).body.ranges;
  }

  /** DELETE /sessions/{id}. Retried; a 404 on a retry after an unanswered attempt counts as done. */
  async deleteSession(sessionId: string, o: CallOptions = {}): Promise<void> {
    requireId('deleteSession', 'sessionId', sessionId);
    await this.http.call({
      method: 'DELETE',
      path: `/sessions/${enc(sessionId)}`,
      safety: 'idempotent',
      notFoundAfterAmbiguousIsSuccess: true,
      ...sig(o),
    });
  }

  // ---- Configs and bakes (admin) --------------------------------------------------------------

  /** GET /configs */
  async listConfigs(o: CallOptions = {}): Promise<Configs> {
    return (await this.http.call<Configs>({ method: 'GET', path: '/configs', safety: 'idempotent', ...sig(o) })).body;
  }

  /** POST /configs/{profile}/versions: stores a new version (not idempotent: retried only when refused). */
  async putConfigVersion(profile: string, content: unknown, o: CallOptions & { description?: string } = {}): Promise<CreatedConfigVersion> {
    requireId('putConfigVersion', 'profile', profile);
    const body = o.description === undefined ? { content } : { content, description: o.description };
    return (
      await this.http.call<CreatedConfigVersion>({
        method: 'POST',
        path: `/configs/${enc(profile)}/versions`,
        body,
        safety: 'once',
        ...sig(o),
      })
    ).body;
  }

  /**
   * GET /configs/{profile}/versions/{version}; with `diff: N`, the answer's `diff` lists the fields
   * whose effective value differs from version N's (N as `control`, this version as `experimental`).
   */
  async getConfigVersion(
    profile: string,
    version: string | number,
    o: CallOptions & { diff?: string | number } = {},
  ): Promise<ConfigVersion> {
    requireId('getConfigVersion', 'profile', profile);
    if (typeof version !== 'number') requireId('getConfigVersion', 'version', version);
    const query = o.diff !== undefined ? { query: { diff: String(o.diff) } } : {};
    return (
      await this.http.call<ConfigVersion>({
        method: 'GET',
        path: `/configs/${enc(profile)}/versions/${enc(String(version))}`,
        ...query,
        safety: 'idempotent',
        ...sig(o),
      })
    ).body;
  }

  /** POST /bakes (not idempotent: a repeat would find its own bake in progress); retried only when refused. */
  async startBake(input: StartBakeInput, o: CallOptions = {}): Promise<{ bakeId: string }> {
    return (await this.http.call<{ bakeId: string }>({ method: 'POST', path: '/bakes', body: input, safety: 'once', ...sig(o) })).body;
  }

  /**
   * GET /bakes: one page of bakes, newest first (`limit` 1..100, default 20). Pass the page's
   * `nextToken` back for the next one; the last page has none.
   */
  async listBakes(o: CallOptions & { limit?: number; nextToken?: string } = {}): Promise<BakeList> {
    const query: Record<string, string> = {};
    if (o.limit !== undefined) query.limit = String(o.limit);
    if (o.nextToken !== undefined) query.nextToken = o.nextToken;
    return (await this.http.call<BakeList>({ method: 'GET', path: '/bakes', query, safety: 'idempotent', ...sig(o) })).body;
  }

  /** GET /bakes/{bakeId} */
  async describeBake(bakeId: string, o: CallOptions = {}): Promise<Bake> {
    requireId('describeBake', 'bakeId', bakeId);
    return (await this.http.call<Bake>({ method: 'GET', path: `/bakes/${enc(bakeId)}`, safety: 'idempotent', ...sig(o) })).body;
  }

  /** POST /bakes/{bakeId}/abort: sets the bake's abort flag (idempotent). */
  async abortBake(bakeId: string, o: CallOptions = {}): Promise<AbortedBake> {
    requireId('abortBake', 'bakeId', bakeId);
    return (await this.http.call<AbortedBake>({ method: 'POST', path: `/bakes/${enc(bakeId)}/abort`, safety: 'idempotent', ...sig(o) }))
      .body;
  }
}

function sig(o: CallOptions): { signal?: AbortSignal } {
  return o.signal ? { signal: o.signal } : {};
}
