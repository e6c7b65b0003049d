/**
 * Fault injection for the local runtime: the failures AWS produces that the embedded store
 * never does, drawn at random per call from a seeded generator, so a run that found something
 * can be replayed with the same seed.
 *
 * - `throttle=P`: the call is refused before it is sent, as DynamoDB refuses a request over its
 *   capacity (ProvisionedThroughputExceededException, a client fault, HTTP 400). Nothing applied.
 * - `applied-then-error=P`: the call is sent and applied, and then its answer is lost: the caller
 *   gets what AWS gives for that (InternalServerError, a server fault, HTTP 500). A write whose
 *   caller retries it is then applied twice unless the caller takes care.
 * - `slow=P:Nms`: the call takes N ms longer, half before it is sent and half after its answer,
 *   so a write lands mid-way through (a p99 far above the p50).
 *
 * It is AWS SDK middleware in the `deserialize` step, like the storage latency (local/latency.ts):
 * inside the SDK's retry loop, so each attempt draws its own faults and the SDK's own retries
 * run after an injected one, exactly as after a real one. The same model wraps the stand-ins
 * that are plain functions (the Step Functions `aws-sdk:*` integrations), where the state
 * machine's Retry is the retry loop.
 */
import { randomInt } from 'node:crypto';
import { InternalServerError, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { AppConfigServiceException, InternalServerException } from '@aws-sdk/client-appconfig';
import { CloudWatchServiceException, InternalServiceFault } from '@aws-sdk/client-cloudwatch';

export const FAULTS_MIDDLEWARE = 'logrelayFaults';
export const FAULTS_ENV = 'LOGRELAY_FAULTS';
/** The longest `slow` delay the spec accepts (60 s): far past any real call, and catches a unit typed wrong. */
export const MAX_SLOW_MS = 60_000;
export const FAULT_KINDS = ['throttle', 'applied-then-error', 'slow'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** The AWS services whose calls the runtime can fail. */
export type FaultService = 'dynamodb' | 'cloudwatch' | 'appconfig';

export interface FaultSpec {
  throttle: number;
  appliedThenError: number;
  slow: number;
  /** How much longer a slow call takes. */
  slowMs: number;
  /** Seeds the generator: the same seed draws the same faults for the same sequence of calls. */
  seed: number;
  /** Whether the seed was given (else drawn at random, and printed so the run can be replayed). */
  seedGiven: boolean;
}

/** The spec as `--faults` takes it back, seed included: printing it lets a run be replayed. */
export function formatFaultSpec(s: FaultSpec, withSeed = true): string {
  const parts: string[] = [];
  if (s.throttle) parts.push(`throttle=${s.throttle}`);
  if (s.appliedThenError) parts.push(`applied-then-error=${s.appliedThenError}`);
  if (s.slow) parts.push(`slow=${s.slow}:${s.slowMs}ms`);
  if (withSeed || !parts.length) parts.push(`seed=${s.seed}`);
  return parts.join(',');
}

/**
 * Parses a spec such as `throttle=0.05,applied-then-error=0.02,slow=0.01:800ms,seed=42`: each
 * fault kind at most once, with a probability per call from 0 to 1; `slow` also takes how
 * long (`800ms`, `2s`; 1 ms to 60 s); `seed` is a whole number from 0 to 4294967295 (default:
 * random). Throws an Error naming `name` (the flag or variable) for anything else. An empty spec,
 * `off` or `none` is no faults: undefined.
 */
export function parseFaultSpec(text: string, name: string): FaultSpec | undefined {
  const fail = (why: string): never => {
    throw new Error(
      `${name} ${why}. It is '${text}'; expected comma-separated KIND=P with KIND throttle, applied-then-error or slow (slow=P:800ms), P a probability from 0 to 1, and optionally seed=N, e.g. throttle=0.05,applied-then-error=0.02,slow=0.01:800ms,seed=42.`,
    );
  };
  const trimmed = text.trim();
  if (trimmed === '' || /^(off|none)$/i.test(trimmed)) return undefined;
  const spec: FaultSpec = { throttle: 0, appliedThenError: 0, slow: 0, slowMs: 0, seed: 0, seedGiven: false };
  const seen = new Set<string>();
  for (const raw of trimmed.split(',')) {
    const part = raw.trim();
    const eq = part.indexOf('=');
    if (eq <= 0) fail(`has '${part}', which is not KIND=VALUE`);
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (seen.has(key)) fail(`names ${key} twice`);
    seen.add(key);
    if (key === 'seed') {
      if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) fail(`has seed '${value}', which is not a whole number from 0 to 4294967295`);
      spec.seed = Number(value);
      spec.seedGiven = true;
      continue;
    }
    if (!(FAULT_KINDS as readonly string[]).includes(key)) fail(`has an unknown fault kind '${key}'`);
    let probability = value;
    if (key === 'slow') {
      const m = /^([^:]*):\s*(\d+)\s*(ms|s)$/i.exec(value);
      if (!m) fail(`has slow='${value}'; slow needs a probability and a duration, e.g. slow=0.01:800ms`);
      const ms = Number(m![2]) * (m![3]!.toLowerCase() === 's' ? 1000 : 1);
      if (ms < 1 || ms > MAX_SLOW_MS) fail(`has a slow duration of ${ms} ms; it must be from 1 ms to ${MAX_SLOW_MS / 1000} s`);
      spec.slowMs = ms;
      probability = m![1]!.trim();
    }
    const p = /^(\d+(\.\d*)?|\.\d+)$/.test(probability) ? Number(probability) : Number.NaN;
    if (!(p >= 0 && p <= 1)) fail(`gives ${key} the probability '${probability}', which is not a number from 0 to 1`);
    if (key === 'throttle') spec.throttle = p;
    else if (key === 'applied-then-error') spec.appliedThenError = p;
    else spec.slow = p;
  }
  if (!spec.seedGiven) spec.seed = randomInt(0, 2 ** 32 - 1);
  return spec;
}

/** LOGRELAY_FAULTS, validated; undefined when unset, empty or off. */
export function faultsFromEnv(env: NodeJS.ProcessEnv = process.env): FaultSpec | undefined {
  const text = env[FAULTS_ENV];
  return text === undefined ? undefined : parseFaultSpec(text, FAULTS_ENV);
}

/** What one call gets: drawn from the generator, three numbers per call whatever they decide. */
export interface FaultDraw {
  throttle: boolean;
  appliedThenError: boolean;
  slowMs: number;
}

export type FaultCounts = Record<FaultKind, number>;

/**
 * Draws the faults of each call from one seeded generator (mulberry32) and counts what it
 * injected. Each call takes exactly three numbers, whatever they decide, so the n-th call of a
 * run gets the same faults on every replay with the same seed; with concurrent callers, which
 * call is the n-th depends on timing.
 */
export class FaultInjector {
  private state: number;
  /** Calls drawn for, by service (SDK attempts count one each). */
  readonly calls: Record<FaultService, number> = { dynamodb: 0, cloudwatch: 0, appconfig: 0 };
  /** Attempts past the first that the SDK sent (its own retries), by service. */
  readonly sdkRetries: Record<FaultService, number> = { dynamodb: 0, cloudwatch: 0, appconfig: 0 };
  private readonly injected: Record<FaultService, FaultCounts> = {
    dynamodb: { throttle: 0, 'applied-then-error': 0, slow: 0 },
    cloudwatch: { throttle: 0, 'applied-then-error': 0, slow: 0 },
    appconfig: { throttle: 0, 'applied-then-error': 0, slow: 0 },
  };

  constructor(readonly spec: FaultSpec) {
    this.state = spec.seed >>> 0;
  }

  /** A number in [0, 1). */
  private next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** The faults of the next call (not counted: `record` counts what was injected). */
  draw(): FaultDraw {
    const a = this.next();
    const b = this.next();
    const c = this.next();
    const throttle = a < this.spec.throttle;
    return { throttle, appliedThenError: !throttle && b < this.spec.appliedThenError, slowMs: c < this.spec.slow ? this.spec.slowMs : 0 };
  }

  record(service: FaultService, kind: FaultKind): void {
    this.injected[service][kind]++;
  }

  /** Faults injected so far, by kind, over every service; `by` one service. */
  counts(service?: FaultService): FaultCounts {
    if (service) return { ...this.injected[service] };
    const out: FaultCounts = { throttle: 0, 'applied-then-error': 0, slow: 0 };
    for (const s of Object.values(this.injected)) for (const k of FAULT_KINDS) out[k] += s[k];
    return out;
  }

  /** Everything, for a report: calls, SDK retries and faults by service and kind. */
  snapshot(): {
    calls: Record<FaultService, number>;
    sdkRetries: Record<FaultService, number>;
    injected: Record<FaultService, FaultCounts>;
    total: FaultCounts;
  } {
    return {
      calls: { ...this.calls },
      sdkRetries: { ...this.sdkRetries },
      injected: { dynamodb: this.counts('dynamodb'), cloudwatch: this.counts('cloudwatch'), appconfig: this.counts('appconfig') },
      total: this.counts(),
    };
  }
}

/** The error AWS answers for a call it refused for capacity: a client fault, 400, not applied. */
export function throttleError(service: FaultService): Error {
  const $metadata = { httpStatusCode: 400, requestId: 'logrelay-injected-fault' };
  const message = 'Injected fault (--faults throttle): the request was refused for capacity and not applied.';
  switch (service) {
    case 'dynamodb':
      return new ProvisionedThroughputExceededException({ $metadata, message });
    case 'cloudwatch':
      return new CloudWatchServiceException({ name: 'Throttling', $fault: 'client', $metadata, message });
    case 'appconfig':
      return new AppConfigServiceException({ name: 'ThrottlingException', $fault: 'client', $metadata, message });
  }
}

/** The error AWS answers when it failed to answer a call it may have applied: a server fault, 500. */
export function lostResponseError(service: FaultService): Error {
  const $metadata = { httpStatusCode: 500, requestId: 'logrelay-injected-fault' };
  const message = 'Injected fault (--faults applied-then-error): the request was applied, and its answer lost.';
  switch (service) {
    case 'dynamodb':
      return new InternalServerError({ $metadata, message });
    case 'cloudwatch':
      return new InternalServiceFault({ $metadata, message });
    case 'appconfig':
      return new InternalServerException({ $metadata, message });
  }
}

/**
 * Runs `call` under the faults the injector draws for it: a throttle throws before calling, a
 * lost response calls and then throws (only when the call succeeded: a refused call is
 * refused), a slow call waits half before and half after.
 */
export async function underFaults<T>(
  injector: FaultInjector,
  service: FaultService,
  call: () => Promise<T>,
  /** Whether what the call returned is a success (default: it returned). */
  succeeded: (out: T) => boolean = () => true,
): Promise<T> {
  injector.calls[service]++;
  const d = injector.draw();
  const before = Math.floor(d.slowMs / 2);
  if (d.slowMs) {
    injector.record(service, 'slow');
    await sleep(before);
  }
  try {
    if (d.throttle) {
      injector.record(service, 'throttle');
      throw throttleError(service);
    }
    const out = await call();
    if (d.appliedThenError && succeeded(out)) {
      injector.record(service, 'applied-then-error');
      throw lostResponseError(service);
    }
    return out;
  } finally {
    if (d.slowMs) await sleep(d.slowMs - before);
  }
}

type Stack = { middlewareStack: { add(m: unknown, o: unknown): void; addRelativeTo(m: unknown, o: unknown): void } };

/**
 * Puts the faults on every call `client` sends, as middleware in the `deserialize` step (inside
 * the SDK's retry loop: each attempt draws its own). `before`: the name of a middleware in that
 * step that answers the call in process (a local stand-in), to sit just outside it.
 */
export function addFaults(client: Stack, injector: FaultInjector, service: FaultService, before?: string): void {
  const middleware = (next: (a: unknown) => Promise<unknown>) => async (args: { request?: { headers?: Record<string, string> } }) => {
    // The SDK numbers its attempts in this header (attempt=2 is its first retry).
    const attempt = /attempt=(\d+)/.exec(args.request?.headers?.['amz-sdk-request'] ?? '')?.[1];
    if (attempt && Number(attempt) > 1) injector.sdkRetries[service]++;
    // In the deserialize step the SDK's own deserializer may sit outside this middleware, so
    // `next` returns the raw HTTP response: an error status is a refusal, nothing applied to lose.
    return underFaults(
      injector,
      service,
      () => next(args),
      (out) => !(((out as { response?: { statusCode?: number } } | undefined)?.response?.statusCode ?? 0) >= 300),
    );
  };
  if (before) client.middlewareStack.addRelativeTo(middleware, { relation: 'before', toMiddleware: before, name: FAULTS_MIDDLEWARE });
  else client.middlewareStack.add(middleware, { step: 'deserialize', name: FAULTS_MIDDLEWARE });
}

/** The same faults around a plain function standing in for an AWS call (no SDK, no retry of its own). */
export function withFaults<A extends unknown[], T>(
  injector: FaultInjector,
  service: FaultService,
  fn: (...args: A) => Promise<T>,
): (...args: A) => Promise<T> {
  return (...args: A) => underFaults(injector, service, () => fn(...args));
}

const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());
