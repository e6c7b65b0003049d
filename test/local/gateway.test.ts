/**
 * The local API Gateway invokes a function as Lambda behind an HTTP API does, and answers as
 * API Gateway answers when Lambda's envelope or the function's timeout is passed.
 */
import { describe, expect, it } from 'vitest';
import { GATEWAY_ANSWERS, invokeFunction, toEvent } from '../../local/gateway';
import type { HttpEvent, HttpResult } from '../../lambdas/http/api';

const event = (body?: string): HttpEvent =>
  toEvent({
    method: 'POST',
    rawPath: '/logs/a/records',
    body,
    route: { method: 'POST', path: '/logs/{logId}/records', fn: 'append' },
    pathParameters: { logId: 'a' },
    caller: { userArn: 'arn:aws:iam::000000000000:user/alice', accessKey: 'AK', accountId: '000000000000' },
  });
const ok = async (): Promise<HttpResult> => ({ statusCode: 201, body: '{}' });

describe('invokeFunction', () => {
  it('passes an event and a result inside the envelope through, with the remaining time counted down', async () => {
    let remaining = -1;
    const r = await invokeFunction(
      async (_e, ctx) => {
        remaining = (ctx as { getRemainingTimeInMillis(): number }).getRemainingTimeInMillis();
        return ok();
      },
      event('{"records":[]}'),
      { logicalId: 'append', timeoutSeconds: 15 },
    );
    expect(r).toEqual({ result: { statusCode: 201, body: '{}' } });
    expect(remaining).toBeGreaterThan(14_000);
    expect(remaining).toBeLessThanOrEqual(15_000);
  });

  it("refuses an event over Lambda's 6 MiB request limit with API Gateway's 413, the function never called", async () => {
    let called = false;
    // 3.2 MiB of quotes: 6.4 MiB once escaped into the event.
    const call = async () => {
      called = true;
      return ok();
    };
    const r = await invokeFunction(call, event('"'.repeat(3_355_443)), { logicalId: 'append', timeoutSeconds: 15 });
    expect(called).toBe(false);
    expect(r).toMatchObject({ gateway: { status: 413, body: '{"message":"Request Too Long"}' } });
    // The same number of bytes unescaped fits.
    expect(await invokeFunction(ok, event('a'.repeat(3_355_443)), { logicalId: 'append', timeoutSeconds: 15 })).toHaveProperty('result');
  });

  it("answers a result over Lambda's response limit, and a thrown error, as the HTTP API's 500", async () => {
    const big = await invokeFunction(async () => ({ statusCode: 200, body: '\\'.repeat(3_200_000) }), event(), {
      logicalId: 'receive',
      timeoutSeconds: 28,
    });
    expect(big).toMatchObject({ gateway: GATEWAY_ANSWERS.integrationFailure, why: expect.stringMatching(/over Lambda's 6291556/) });
    expect(JSON.parse((big as { gateway: { body: string } }).gateway.body)).toEqual({ message: 'Internal Server Error' });
    const threw = await invokeFunction(
      async () => {
        throw new Error('boom');
      },
      event(),
      { logicalId: 'receive', timeoutSeconds: 28 },
    );
    expect(threw).toMatchObject({ gateway: { status: 500 }, why: expect.stringMatching(/threw: Error: boom/) });
  });

  it("throttles an invocation past the function's reserved concurrency as Lambda does (the HTTP API's 500), and frees the slot when one ends", async () => {
    const running = new Map<string, number>();
    const fn = { logicalId: 'receive', timeoutSeconds: 28, reservedConcurrency: 2 };
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const waiting = async (): Promise<HttpResult> => {
      await held;
      return ok();
    };
    const a = invokeFunction(waiting, event(), fn, Date.now, running);
    const b = invokeFunction(waiting, event(), fn, Date.now, running);
    let called = false;
    const call = async () => {
      called = true;
      return ok();
    };
    const third = await invokeFunction(call, event(), fn, Date.now, running);
    expect(called).toBe(false);
    expect(third).toMatchObject({
      gateway: GATEWAY_ANSWERS.integrationFailure,
      why: expect.stringMatching(/throttled .* 2 of 2 reserved/),
    });
    // Another function is not held back by receive's reservation.
    expect(await invokeFunction(ok, event(), { logicalId: 'append', timeoutSeconds: 15 }, Date.now, running)).toHaveProperty('result');
    release();
    await Promise.all([a, b]);
    expect(running.get('receive')).toBe(0);
    expect(await invokeFunction(ok, event(), fn, Date.now, running)).toHaveProperty('result');
  });

  it('answers a handler that outlives its timeout as API Gateway does (500), without waiting for it', async () => {
    let finished = false;
    const started = Date.now();
    const r = await invokeFunction(
      async () => {
        await new Promise((done) => setTimeout(done, 2_500));
        finished = true;
        return ok();
      },
      event(),
      { logicalId: 'logs', timeoutSeconds: 1 },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(finished).toBe(false);
    expect(r).toEqual({ gateway: GATEWAY_ANSWERS.integrationFailure, why: 'the function timed out after 1 s' });
  });
});
