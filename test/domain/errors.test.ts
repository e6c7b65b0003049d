/**
 * The domain's refusals as a caller meets them (lambdas/domain/errors.ts): each factory's code,
 * its sentence (what was wrong, the caller's text quoted and clipped, what to do next) and, for
 * the temporary ones, retryAfterSeconds; `isBusy`; `clip` (cut with an ellipsis, control
 * characters, line separators and lone surrogates escaped, other text kept); and the two error
 * classes. The status each code maps to is the HTTP edge's (lambdas/http/errors.ts), not tested here.
 */
import { describe, expect, it } from 'vitest';
import { PROFILES } from '../../lambdas/domain/config';
import {
  appendInProgress,
  bakeInProgress,
  bakeNotFound,
  bakeNotRunning,
  busy,
  ConflictError,
  clip,
  idempotencyKeyReused,
  isBusy,
  logExists,
  logFormatOutdated,
  logNotFound,
  payloadTooLarge,
  profileNotFound,
  ServiceError,
  sessionNotFound,
  validation,
  versionNotFound,
} from '../../lambdas/domain/errors';

describe('clip', () => {
  it('keeps text of at most n characters whole', () => {
    expect(clip('abc', 3)).toBe('abc');
    expect(clip('ab', 3)).toBe('ab');
    expect(clip('', 0)).toBe('');
  });

  it('cuts text longer than n to its first n characters and an ellipsis', () => {
    expect(clip('abcd', 3)).toBe('abc…');
    expect(clip('x'.repeat(1000), 200)).toBe(`${'x'.repeat(200)}…`);
  });

  it('escapes control characters as \\uXXXX (four lower-case hex digits)', () => {
    expect(clip('a\nb', 10)).toBe('a\\u000ab');
    expect(clip('\u0000\t\r\u001b\u001f', 10)).toBe('\\u0000\\u0009\\u000d\\u001b\\u001f');
    expect(clip('\u007f\u0085\u009f', 10)).toBe('\\u007f\\u0085\\u009f');
  });

  it('escapes the line and paragraph separators U+2028 and U+2029, so the sentence stays one line', () => {
    expect(clip('a\u2028b\u2029c', 10)).toBe('a\\u2028b\\u2029c');
  });

  it('escapes lone surrogates, including half a pair left by the cut', () => {
    expect(clip('a\ud800b', 10)).toBe('a\\ud800b');
    expect(clip('\udfff', 10)).toBe('\\udfff');
    // '😀' is two UTF-16 code units; cutting after the first leaves its high surrogate alone.
    expect(clip('a😀', 2)).toBe('a\\ud83d…');
  });

  it('keeps printable ASCII and ordinary non-ASCII text (accents, CJK, emoji, U+00A0) as they are', () => {
    const ordinary = ' ~Zürich 日本 😀 \u00a0 naïve';
    expect(clip(ordinary, 100)).toBe(ordinary);
  });

  it('counts n before escaping: a cut text may grow past n by its escapes', () => {
    expect(clip('\n\n\n\n', 2)).toBe('\\u000a\\u000a…');
  });
});

describe('ServiceError and ConflictError', () => {
  it('a ServiceError is an Error named ServiceError carrying its code, message and retryAfterSeconds', () => {
    const e = new ServiceError('ServiceBusy', 'Too busy.', 2);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ServiceError');
    expect(e.code).toBe('ServiceBusy');
    expect(e.message).toBe('Too busy.');
    expect(e.retryAfterSeconds).toBe(2);
    expect(String(e)).toBe('ServiceError: Too busy.');
  });

  it('a ConflictError is an Error named ConflictError, not a ServiceError, with a default message', () => {
    const e = new ConflictError();
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(ServiceError);
    expect(e.name).toBe('ConflictError');
    expect(e.message).toBe('conditional write lost a race');
    expect(new ConflictError('the session moved').message).toBe('the session moved');
  });
});

describe('isBusy', () => {
  it('is true for a ServiceBusy ServiceError', () => {
    expect(isBusy(busy('The log is busy.', 1))).toBe(true);
    expect(isBusy(new ServiceError('ServiceBusy', 'x'))).toBe(true);
  });

  it('is false for other codes, even temporary ones with a retry time', () => {
    expect(isBusy(appendInProgress(1))).toBe(false);
    expect(isBusy(new ServiceError('StorageThrottled', 'x', 1))).toBe(false);
    expect(isBusy(logNotFound('a'))).toBe(false);
  });

  it('is false for what is not a ServiceError, even if it looks like one', () => {
    expect(isBusy({ code: 'ServiceBusy', message: 'x' })).toBe(false);
    expect(isBusy(Object.assign(new Error('x'), { code: 'ServiceBusy' }))).toBe(false);
    expect(isBusy(new ConflictError())).toBe(false);
    expect(isBusy(undefined)).toBe(false);
    expect(isBusy(null)).toBe(false);
    expect(isBusy('ServiceBusy')).toBe(false);
  });
});

describe('factories taking the sentence from the caller', () => {
  it.each([
    ['ValidationError', validation],
    ['PayloadTooLarge', payloadTooLarge],
    ['BakeInProgress', bakeInProgress],
  ] as const)('%s keeps the given message as it is, with no retry time', (code, make) => {
    const e = make('limit must be an integer from 1 to 1000.');
    expect(e).toBeInstanceOf(ServiceError);
    expect(e.code).toBe(code);
    expect(e.message).toBe('limit must be an integer from 1 to 1000.');
    expect(e.retryAfterSeconds).toBeUndefined();
  });
});

describe('factories quoting a caller-supplied id', () => {
  const cases = [
    {
      code: 'LogNotFound',
      make: (id: string) => logNotFound(id),
      sentence: (q: string) => `No log named '${q}' exists for this caller. Create it with POST /logs first.`,
    },
    {
      code: 'SessionNotFound',
      make: (id: string) => sessionNotFound(id),
      sentence: (q: string) =>
        `No session '${q}' exists for this caller (it may have expired after its idle timeout, or been deleted). Open a new one with POST /logs/{logId}/sessions.`,
    },
    {
      code: 'IdempotencyKeyReused',
      make: (id: string) => idempotencyKeyReused(id),
      sentence: (q: string) =>
        `The idempotencyKey '${q}' was already used for an append with other records. Retry that append with exactly its records, or use a new key for these.`,
    },
    {
      code: 'ProfileNotFound',
      make: (id: string) => profileNotFound(id),
      sentence: (q: string) => `There is no config profile '${q}'. The profiles are delivery and limits.`,
    },
    {
      code: 'VersionNotFound',
      make: (id: string) => versionNotFound('delivery', id),
      sentence: (q: string) => `Profile delivery has no version '${q}'. List the versions with GET /configs.`,
    },
    {
      code: 'BakeNotFound',
      make: (id: string) => bakeNotFound(id),
      sentence: (q: string) => `There is no bake '${q}'. Start one with POST /bakes.`,
    },
  ];

  it.each(cases)('$code names what is missing and what to do next', ({ code, make, sentence }) => {
    const e = make('orders-1');
    expect(e).toBeInstanceOf(ServiceError);
    expect(e.code).toBe(code);
    expect(e.message).toBe(sentence('orders-1'));
    expect(e.retryAfterSeconds).toBeUndefined();
  });

  it.each(cases)('$code quotes at most 200 characters of the id, escaped', ({ make, sentence }) => {
    expect(make('y'.repeat(200)).message).toBe(sentence('y'.repeat(200)));
    expect(make('y'.repeat(201)).message).toBe(sentence(`${'y'.repeat(200)}…`));
    expect(make('bad\nid\u2028').message).toBe(sentence('bad\\u000aid\\u2028'));
  });

  it('ProfileNotFound lists the profiles there are', () => {
    expect(PROFILES).toEqual(['delivery', 'limits']);
    expect(profileNotFound('limit').message).toContain('The profiles are delivery and limits.');
  });
});

describe('factories quoting an id the service already holds', () => {
  it('LogExists names the log and says to use it or pick another logId', () => {
    const e = logExists('orders');
    expect(e.code).toBe('LogExists');
    expect(e.message).toBe("A log named 'orders' already exists. Use it, or pick another logId.");
    expect(e.retryAfterSeconds).toBeUndefined();
  });

  it('LogFormatOutdated names the log and says to create a new one (locally: a new --data-dir)', () => {
    const e = logFormatOutdated('orders');
    expect(e.code).toBe('LogFormatOutdated');
    expect(e.message).toBe(
      "The log 'orders' was stored by an earlier version of Logrelay that this version cannot append to. Create a new log (locally: start with a new --data-dir).",
    );
    expect(e.retryAfterSeconds).toBeUndefined();
  });

  it('BakeNotRunning names the bake and its status and says there is nothing to abort', () => {
    const e = bakeNotRunning('bake-7', 'SUCCEEDED');
    expect(e.code).toBe('BakeNotRunning');
    expect(e.message).toBe('Bake bake-7 is SUCCEEDED, not running; there is nothing to abort.');
    expect(e.retryAfterSeconds).toBeUndefined();
  });
});

describe('temporary refusals carry when to retry', () => {
  it('AppendInProgress says to retry the same request after the given seconds, and carries them', () => {
    const e = appendInProgress(2);
    expect(e.code).toBe('AppendInProgress');
    expect(e.message).toBe(
      'An append with this idempotencyKey is still being written. Retry the same request in 2 seconds to get its result.',
    );
    expect(e.retryAfterSeconds).toBe(2);
  });

  it('ServiceBusy follows what is busy with when to retry, "second" for one and "seconds" otherwise', () => {
    const one = busy('The log is busy.', 1);
    expect(one.code).toBe('ServiceBusy');
    expect(one.message).toBe('The log is busy. Retry in 1 second.');
    expect(one.retryAfterSeconds).toBe(1);

    const two = busy('The log is busy.', 2);
    expect(two.message).toBe('The log is busy. Retry in 2 seconds.');
    expect(two.retryAfterSeconds).toBe(2);

    expect(busy('Storage is busy.', 0).message).toBe('Storage is busy. Retry in 0 seconds.');
  });
});
