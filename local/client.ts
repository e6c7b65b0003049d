/**
 * A minimal SigV4-signing HTTP caller for the demo and the HTTP-level tests, signed with the
 * AWS SDK's own signer exactly as any AWS client signs an execute-api request. (The typed
 * client library with retries and the worker API is its own piece of work.)
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@smithy/core/checksum';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

// biome-ignore lint/suspicious/noExplicitAny: a test and tool client: the body is the service's JSON, read by its documented fields (API.md) at the call site; callers that want it checked pass T
export interface Reply<T = any> {
  status: number;
  headers: Record<string, string>;
  body: T;
}

export class SignedHttp {
  private readonly signer: SignatureV4;

  constructor(
    readonly baseUrl: string,
    credentials: Credentials,
    region = 'us-east-1',
  ) {
    this.signer = new SignatureV4({ service: 'execute-api', region, credentials, sha256: Sha256 });
  }

  // biome-ignore lint/suspicious/noExplicitAny: as Reply: the body is the service's JSON; callers that want it checked pass T
  async call<T = any>(method: string, path: string, body?: unknown): Promise<Reply<T>> {
    const url = new URL(path, this.baseUrl);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
      query: Object.fromEntries(url.searchParams),
      ...(payload !== undefined ? { body: payload } : {}),
    };
    const signed = await this.signer.sign(request);
    const res = await fetch(url, {
      method,
      headers: signed.headers as Record<string, string>,
      ...(payload !== undefined ? { body: payload } : {}),
    });
    const text = await res.text();
    const headers: Record<string, string> = {};
    for (const [k, v] of res.headers) headers[k] = v;
    return { status: res.status, headers, body: text ? (JSON.parse(text) as T) : (undefined as T) };
  }
}
