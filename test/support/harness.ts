/**
 * Integration harness: the real handlers, fed real API Gateway payload-2.0 events built by
 * the local gateway from the stack's route table, over the embedded DynamoDB. Each data route's
 * function is started as Lambda starts it (lambdas/functions.ts: its environment checked, its
 * deps from the one builder), with the harness's store and config in place of the real ones.
 * The clock can be moved forward (leases, idle expiry, retention), and the store can be made to
 * "crash" right after any named storage call.
 */
import { ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { DynamoStore, type Store } from '../../lambdas/adapters/store';
import { staticConfig, DEFAULT_CONFIG, type ConfigSet } from '../../lambdas/domain/config';
import { ROUTES, FUNCTION_TIMEOUT_SECONDS } from '../../lambdas/routes';
import type { HostClients } from '../../lambdas/http/deps';
import type { DataFunctionName } from '../../lambdas/function-env';
import { startFunction, type HttpFunctionHandler } from '../../lambdas/functions';
import { invokeFunction, matchRoute, toEvent } from '../../local/gateway';
import { connectDynamo, startEmbeddedDynamo, tableSpecsFromDefs, type EmbeddedDynamo } from '../../local/dynamo';
import { tableNamesFromEnv } from '../../lambdas/http/deps';

export class CrashError extends Error {
  constructor(op: string) {
    super(`injected crash after ${op}`);
    this.name = 'CrashError';
  }
}

/** What DynamoDB answers when a write was applied but the request failed after it (a lost response). */
export class LostResponseError extends Error {
  readonly $fault = 'server';
  readonly $metadata = { httpStatusCode: 500 };
  constructor(op: string) {
    super(`injected: ${op} was applied, then its response was lost`);
    this.name = 'InternalServerError';
  }
}

export class TestClock {
  offsetMs = 0;
  now = (): number => Date.now() + this.offsetMs;
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

export interface RawRequest {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  isBase64Encoded?: boolean;
  principal?: string;
}

export interface RawReply {
  status: number;
  /** The body as sent (undefined when none). */
  text: string | undefined;
  headers: Record<string, string>;
}

export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Record<string, string>;
}

export class Harness {
  readonly clock = new TestClock();
  /** Names of storage calls, in order, since the last reset. */
  calls: string[] = [];
  /**
   * The capacity units DynamoDB reported for each request the store sent (ReturnConsumedCapacity
   * TOTAL, as the engine computes them), in order; reset it before the call to measure.
   */
  capacity: { op: string; units: number }[] = [];
  /**
   * When set, the store throws right after the call with this index (0-based in `calls`)
   * succeeds, and every call after it throws too: the process is dead until `restart`.
   */
  crashAt: number | undefined;
  private dead = false;
  /** When set, the call with this index is applied and then throws LostResponseError (once). */
  loseResponseAt: number | undefined;
  config: ConfigSet = DEFAULT_CONFIG;
  private handlers!: Record<DataFunctionName, HttpFunctionHandler>;
  readonly store: Store;

  readonly tableNames: { logs: string; records: string; sessions: string };

  private constructor(
    readonly dynamo: EmbeddedDynamo,
    /** Every table's variable (tableSpecsFromDefs), as the stack sets each function's own. */
    private readonly env: Record<string, string>,
  ) {
    this.tableNames = tableNamesFromEnv(env);
    const real = new DynamoStore(dynamo.client, this.tableNames, (op, cc) => {
      this.capacity.push({ op, units: (cc ?? []).reduce((a, c) => a + (c.CapacityUnits ?? 0), 0) });
    });
    // Every Store method is one storage call: record it, and crash after it when told to.
    this.store = new Proxy(real, {
      get: (target, prop, receiver) => {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          if (this.dead) throw new CrashError(`${String(prop)} (the host is dead)`);
          const out = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          const index = this.calls.push(String(prop)) - 1;
          if (this.crashAt === index) {
            this.dead = true;
            throw new CrashError(String(prop));
          }
          if (this.loseResponseAt === index) throw new LostResponseError(String(prop));
          return out;
        };
      },
    });
    this.restart();
  }

  static async start(): Promise<Harness> {
    const { specs, env } = tableSpecsFromDefs(`t${Math.random().toString(36).slice(2, 8)}`);
    const external = process.env.LOGRELAY_TEST_DYNAMODB_ENDPOINT;
    return new Harness(external ? await connectDynamo(external, specs) : await startEmbeddedDynamo({ tables: specs }), env);
  }

  /** A fresh set of handler instances, as after a cold start (no warm caches). */
  restart(): void {
    const clients: HostClients = {
      dynamo: this.dynamo.client,
      clock: this.clock,
      store: this.store,
      config: { forKey: async (k) => staticConfig(this.config).forKey(k) },
    };
    const start = (fn: DataFunctionName) => startFunction(fn, this.env, clients);
    this.handlers = {
      logs: start('logs'),
      append: start('append'),
      sessions: start('sessions'),
      receive: start('receive'),
      leases: start('leases'),
    };
  }

  async close(): Promise<void> {
    await this.dynamo.close();
  }

  /** Runs `op` and returns the storage calls it made; its answer must be `status` (or any success). */
  async probe(op: () => Promise<Reply>, status?: number): Promise<string[]> {
    this.calls = [];
    const r = await op();
    if (status === undefined ? r.status >= 300 : r.status !== status) {
      throw new Error(`expected ${status ?? 'a success'}, got ${r.status}: ${JSON.stringify(r.body)}`);
    }
    return [...this.calls];
  }

  /** Runs `op` with a crash right after its k-th storage call; the host then restarts cold. */
  async crashAfter(k: number, op: () => Promise<Reply>): Promise<Reply> {
    this.calls = [];
    this.crashAt = k;
    try {
      return await op();
    } finally {
      this.crashAt = undefined;
      this.dead = false;
      this.restart();
    }
  }

  /** Runs `op` with the k-th storage call applied and its response lost (it throws as DynamoDB's 500 would). */
  async loseResponseOf(k: number, op: () => Promise<Reply>): Promise<Reply> {
    this.calls = [];
    this.loseResponseAt = k;
    try {
      return await op();
    } finally {
      this.loseResponseAt = undefined;
    }
  }

  async call<T = any>(method: string, path: string, body?: unknown, principal = 'alice'): Promise<Reply<T>> {
    if (!matchRoute(ROUTES, method, path)) throw new Error(`no route for ${method} ${path}`);
    const res = await this.send({
      method,
      path,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      principal,
    });
    return { status: res.status, body: res.text ? JSON.parse(res.text) : undefined, headers: res.headers };
  }

  /**
   * One request as API Gateway hands it to the function: any body text (or base64 of any bytes
   * with `isBase64Encoded`, as API Gateway sends a binary body), any headers (default
   * content-type application/json). The answer's body is returned as text, unparsed. A path that
   * matches no route gets the gateway's own 404, as the local runtime answers it.
   */
  async send(req: RawRequest): Promise<RawReply> {
    const { method, path } = req;
    const m = matchRoute(ROUTES, method, path);
    if (!m) {
      const text = JSON.stringify({
        error: { code: 'RouteNotFound', message: `There is no route ${method} ${path}. See shared/API.md for the routes.` },
      });
      return { status: 404, text, headers: { 'content-type': 'application/json' } };
    }
    const principal = req.principal ?? 'alice';
    const event = toEvent({
      method,
      rawPath: path,
      headers: req.headers ?? { 'content-type': 'application/json' },
      body: req.body,
      route: m.route,
      pathParameters: m.pathParameters,
      caller: { userArn: `arn:aws:iam::123456789012:user/${principal}`, accessKey: 'AKIDLOCAL', accountId: '123456789012' },
    });
    if (req.isBase64Encoded) event.isBase64Encoded = true;
    if (m.route.fn === 'admin') throw new Error(`the harness serves the data routes; ${method} ${path} is an admin route`);
    // Invoked as Lambda behind the HTTP API invokes it: its payload envelope and its timeout.
    const invoked = await invokeFunction(
      this.handlers[m.route.fn],
      event,
      { logicalId: m.route.fn, timeoutSeconds: FUNCTION_TIMEOUT_SECONDS[m.route.fn] },
      this.clock.now,
    );
    // A host that died during the call sent no answer, whatever its code went on to do.
    if (this.dead)
      return { status: 500, text: JSON.stringify({ error: { code: 'InjectedCrash', message: 'the host died' } }), headers: {} };
    if ('gateway' in invoked)
      return { status: invoked.gateway.status, text: invoked.gateway.body, headers: { ...invoked.gateway.headers } };
    const res = invoked.result;
    return {
      status: res.statusCode ?? 200,
      text: res.body === undefined ? undefined : res.isBase64Encoded ? Buffer.from(res.body, 'base64').toString('utf8') : res.body,
      headers: (res.headers ?? {}) as Record<string, string>,
    };
  }

  /** How many items each table holds now (a full scan: for small test tables). */
  async itemCounts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const [name, table] of Object.entries(this.tableNames)) {
      let n = 0;
      let start: Record<string, AttributeValue> | undefined;
      do {
        const page = await this.dynamo.client.send(new ScanCommand({ TableName: table, Select: 'COUNT', ExclusiveStartKey: start }));
        n += page.Count ?? 0;
        start = page.LastEvaluatedKey;
      } while (start);
      out[name] = n;
    }
    return out;
  }

  /** Calls until the answer is not a retryable 409/429/5xx (what a well-behaved client does). */
  async callRetrying<T = any>(method: string, path: string, body?: unknown, principal = 'alice'): Promise<Reply<T>> {
    for (let i = 0; ; i++) {
      const r = await this.call<T>(method, path, body, principal);
      const retryable = r.status >= 500 || r.status === 429 || (r.body as any)?.error?.code === 'AppendInProgress';
      if (!retryable || i > 50) return r;
      await new Promise((res) => setTimeout(res, 5 + Math.random() * 20));
    }
  }

  // Convenience wrappers for the routes most tests use.
  async createLog(logId: string, extra: Record<string, unknown> = {}, principal = 'alice'): Promise<void> {
    const r = await this.call('POST', '/logs', { logId, ...extra }, principal);
    if (r.status !== 201) throw new Error(`createLog ${r.status} ${JSON.stringify(r.body)}`);
  }

  async append(logId: string, datas: unknown[], extra: Record<string, unknown> = {}): Promise<{ firstSeq: number; lastSeq: number }> {
    const r = await this.callRetrying('POST', `/logs/${logId}/records`, { records: datas.map((data) => ({ data })), ...extra });
    if (r.status !== 201) throw new Error(`append ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async openSession(logId: string, settings: Record<string, unknown> = {}): Promise<string> {
    const r = await this.call('POST', `/logs/${logId}/sessions`, settings);
    if (r.status !== 201) throw new Error(`openSession ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.sessionId;
  }

  async receive(
    sessionId: string,
    body: Record<string, unknown> = {},
  ): Promise<{ seq: number; data: any; deliveryCount: number; leaseExpiresAt: string; key?: string }[]> {
    const r = await this.callRetrying('POST', `/sessions/${sessionId}/receive`, body);
    if (r.status !== 200) throw new Error(`receive ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.records;
  }

  async ack(sessionId: string, body: Record<string, unknown>): Promise<number> {
    const r = await this.callRetrying('POST', `/sessions/${sessionId}/ack`, body);
    if (r.status !== 200) throw new Error(`ack ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.acked;
  }

  async describe(sessionId: string): Promise<any> {
    const r = await this.call('GET', `/sessions/${sessionId}`);
    if (r.status !== 200) throw new Error(`describe ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

/** Drains a session: receive and ack until nothing is left. Returns the seqs in delivery order. */
export async function drain(h: Harness, sessionId: string, maxRecords = 100): Promise<{ seq: number; data: any }[]> {
  const out: { seq: number; data: any }[] = [];
  for (;;) {
    const recs = await h.receive(sessionId, { maxRecords });
    if (!recs.length) return out;
    out.push(...recs.map((r) => ({ seq: r.seq, data: r.data })));
    await h.ack(sessionId, { seqs: recs.map((r) => r.seq) });
  }
}
