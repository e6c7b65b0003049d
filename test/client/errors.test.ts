/** The client's typed errors for answers API Gateway gives itself (no contract envelope). */
import { describe, expect, it } from 'vitest';
import { errorFromResponse, PayloadTooLargeError, ServerError } from '../../client/src/errors';

describe('errorFromResponse', () => {
  it("turns API Gateway's 413s (Lambda's envelope, or over 10 MB) into a PayloadTooLargeError that says what to do", () => {
    for (const body of ['{"message":"Request Too Long"}', 'HTTP content length exceeded 10485760 bytes.']) {
      const e = errorFromResponse(413, body, undefined, 'POST /logs/a/records');
      expect(e).toBeInstanceOf(PayloadTooLargeError);
      expect(e.code).toBe('PayloadTooLarge');
      expect(e.message).toMatch(
        /^POST \/logs\/a\/records was refused by API Gateway before it reached Logrelay \((Request Too Long|HTTP content length exceeded 10485760 bytes\.)\): .*under 6 MiB.*Send fewer or smaller records per request\.$/,
      );
    }
  });

  it("keeps the service's own 413 as the service worded it", () => {
    const e = errorFromResponse(
      413,
      '{"error":{"code":"PayloadTooLarge","message":"The request body is 2000000 bytes; the limit is 1048576."}}',
      undefined,
      'POST /logs/a/records',
    );
    expect(e.message).toBe('The request body is 2000000 bytes; the limit is 1048576.');
  });

  it("reads API Gateway's 500 for a failed invocation as a server error", () => {
    const e = errorFromResponse(500, '{"message":"Internal Server Error"}', undefined, 'POST /sessions/s/receive');
    expect(e).toBeInstanceOf(ServerError);
    expect(e.message).toBe('Internal Server Error');
  });
});
