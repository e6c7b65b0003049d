/**
 * A ServiceError as the caller sees it: its code, sentence and retry-after, and the status the
 * HTTP edge answers it with (lambdas/http/errors.ts). Tests of services and the domain assert
 * the status through this, so they check the mapping a request would get.
 */
import { expect } from 'vitest';
import { ServiceError } from '../../lambdas/domain/errors';
import { statusOf } from '../../lambdas/http/errors';

export interface Refusal {
  status: number;
  code: string;
  message: string;
  retryAfterSeconds?: number;
}

/** `e` as a Refusal; fails the test if it is not a ServiceError. */
export function refusalOf(e: unknown): Refusal {
  expect(e).toBeInstanceOf(ServiceError);
  const s = e as ServiceError;
  return {
    status: statusOf(s),
    code: s.code,
    message: s.message,
    ...(s.retryAfterSeconds !== undefined ? { retryAfterSeconds: s.retryAfterSeconds } : {}),
  };
}

/** The refusal `p` rejects with (fails the test if it resolves, or rejects with anything but a ServiceError). */
export const refused = (p: Promise<unknown>): Promise<Refusal> =>
  p.then(() => {
    throw new Error('expected a refusal, the call succeeded');
  }, refusalOf);
