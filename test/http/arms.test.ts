/**
 * The HTTP edge tags every request with its arm: the arm the request's stable key falls in,
 * its EMF metrics carry that Arm, and a request whose arm's config cannot be had is counted as
 * a 5xx of that arm (not of control), so the bake's alarms see a broken experiment.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ConfigProvider, EffectiveConfig } from '../../lambdas/domain/config';
import { DEFAULT_CONFIG } from '../../lambdas/domain/config';
import { ConfigUnavailableError } from '../../lambdas/services/rollout';
import type { HttpEvent } from '../../lambdas/http/api';

let httpHandler: typeof import('../../lambdas/http/api').httpHandler;

beforeAll(async () => {
  // Powertools reads these when the module is first loaded: EMF to the console, not disabled.
  process.env.POWERTOOLS_DEV = 'true';
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  vi.resetModules();
  ({ httpHandler } = await import('../../lambdas/http/api'));
});

afterEach(() => vi.restoreAllMocks());

const event = (sessionId: string | undefined): HttpEvent =>
  ({
    routeKey: 'POST /sessions/{sessionId}/receive',
    pathParameters: sessionId === undefined ? {} : { sessionId },
    body: '{}',
    isBase64Encoded: false,
    requestContext: { authorizer: { iam: { userArn: 'arn:aws:iam::123456789012:user/alice' } } },
  }) as unknown as HttpEvent;

/** Runs one request and returns its EMF documents. */
async function emf(
  config: ConfigProvider,
  idleMs = 0,
  clockStepMs = 0,
  key: string | null = 's-abcdefghijklmnopqrstuv',
): Promise<Record<string, any>[]> {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    if (typeof args[0] === 'string') lines.push(args[0]);
  });
  let t = 1_000_000;
  const clock = { now: () => (t += clockStepMs) };
  const handler = httpHandler(
    'receive',
    { clock, config },
    {
      'POST /sessions/{sessionId}/receive': async (ctx) => {
        ctx.idleMs = idleMs;
        return { status: 200, body: { records: [] } };
      },
    },
  );
  await handler(event(key ?? undefined));
  return lines.filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l) as Record<string, any>);
}

const armDoc = (docs: Record<string, any>[]) => docs.find((d) => d._aws.CloudWatchMetrics[0].Dimensions[0].includes('Arm'))!;

const provider = (arm: 'control' | 'experiment'): ConfigProvider => ({
  forKey: async (): Promise<EffectiveConfig> => ({
    config: DEFAULT_CONFIG,
    arm,
    versions: { delivery: arm === 'experiment' ? '2' : '1', limits: '1' },
  }),
});

describe('per-request arm metrics', () => {
  it('emits Requests/Errors/Latency with the Arm dimension, high resolution, and Function metrics separately', async () => {
    for (const arm of ['control', 'experiment'] as const) {
      const docs = await emf(provider(arm));
      expect(docs).toHaveLength(2);
      const d = armDoc(docs);
      expect(d.Arm).toBe(arm);
      expect(d.Requests).toBe(1);
      expect(d.Errors5xx).toBe(0);
      const defs = d._aws.CloudWatchMetrics[0].Metrics as { Name: string; StorageResolution?: number }[];
      expect(defs.map((m) => m.Name).sort()).toEqual(['Errors4xx', 'Errors5xx', 'Latency', 'Requests']);
      for (const m of defs) expect(m.StorageResolution).toBe(1);
      const fn = docs.find((x) => x !== d)!;
      expect(fn.Function).toBe('receive');
      expect(fn.Arm).toBeUndefined();
    }
  });

  it('counts a request whose experiment config is unavailable as a 5xx of the experiment arm', async () => {
    const failing: ConfigProvider = {
      forKey: async () => {
        throw new ConfigUnavailableError('experiment', { delivery: '1', limits: '3' }, new Error('does not fit the schema'));
      },
    };
    const d = armDoc(await emf(failing));
    expect(d.Arm).toBe('experiment');
    expect(d.Requests).toBe(1);
    expect(d.Errors5xx).toBe(1);
  });

  it("answers a result over Lambda's response envelope itself, as a 500 ResponseTooLarge of the request's arm (Lambda would drop it uncounted)", async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      if (typeof args[0] === 'string') lines.push(args[0]);
    });
    // 3.5 MiB of escaped quotes: 7 MiB once the result is serialized.
    const big = `{"records":[{"data":"${'\\"'.repeat(1_835_008)}"}]}`;
    const handler = httpHandler(
      'receive',
      { clock: { now: () => 1_000_000 }, config: provider('experiment') },
      {
        'POST /sessions/{sessionId}/receive': async () => ({ status: 200, json: big }),
      },
    );
    const res = await handler(event('s-abcdefghijklmnopqrstuv'));
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(res.body!).error.code).toBe('ResponseTooLarge');
    const d = armDoc(lines.filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l) as Record<string, any>));
    expect(d.Arm).toBe('experiment');
    expect(d.Errors5xx).toBe(1);
    // Just under the limit passes as it is.
    const fits = `{"records":[{"data":"${'\\"'.repeat(1_500_000)}"}]}`;
    const ok = await httpHandler(
      'receive',
      { clock: { now: () => 1 }, config: provider('control') },
      { 'POST /sessions/{sessionId}/receive': async () => ({ status: 200, json: fits }) },
    )(event('s-abcdefghijklmnopqrstuv'));
    expect(ok.statusCode).toBe(200);
  });

  it('counts requests with no stable key (POST /logs, admin routes) in no arm, only per function', async () => {
    const docs = await emf(provider('control'), 0, 0, null);
    expect(docs).toHaveLength(1);
    expect(docs[0]!.Function).toBe('receive');
    expect(docs[0]!.Arm).toBeUndefined();
  });

  it("reports service latency: a long poll's idle wait is not counted", async () => {
    // The clock advances 10 ms per reading; the route reports 5 ms idle.
    const busy = armDoc(await emf(provider('control'), 0, 10));
    const idle = armDoc(await emf(provider('control'), 5, 10));
    expect(idle.Latency).toBe(busy.Latency - 5);
  });
});
