/**
 * Lambda's payload envelope: what a synchronous invocation can carry, measured as Lambda
 * measures it. Behind an HTTP API the request and the response each travel as one JSON
 * document (the payload-2.0 event, the handler's result), with the HTTP body inside it as a
 * JSON string: every `"` and `\` doubled, control characters escaped, a binary body as base64.
 * A body that fits API Gateway's 10 MB can so be refused by Lambda, or a response the handler
 * built be dropped after the handler returned (a 500 from API Gateway that no handler metric
 * counts). No AWS client here.
 */

/** Most bytes of a synchronous invocation's request (the event as JSON): 6 MiB. */
export const LAMBDA_REQUEST_LIMIT_BYTES = 6_291_456;
/** Most bytes of a synchronous invocation's response (the result as JSON): 6 MiB + 100. */
export const LAMBDA_RESPONSE_LIMIT_BYTES = 6_291_556;

/**
 * Bytes a receive's records may take in the response envelope: the limit less room for the
 * result's other fields (status code, headers, `{"records":[...],"acked":N}`), which are far
 * below 16 KiB.
 */
export const RECORDS_ENVELOPE_BUDGET = LAMBDA_RESPONSE_LIMIT_BYTES - 16 * 1024;

/**
 * Bytes one received record's fields other than `data` and `key` can take in the envelope, at
 * most: `{"seq":…,"data":,"deliveryCount":…,"leaseExpiresAt":"…","key":}` and the comma between
 * records, every quote escaped, with a 16-digit seq and delivery count and a 24-character
 * timestamp (about 130 bytes; bounded above).
 */
export const RECORD_ENVELOPE_OVERHEAD = 160;

/**
 * Bytes `text` takes inside a JSON string, without the quotes, as JSON.stringify writes it (the
 * serialization Lambda's Node.js runtime applies to a result): `"` and `\` take two bytes, a
 * control character two (\b \t \n \f \r) or six (\u00XX), a lone surrogate six, anything else
 * its UTF-8 bytes.
 */
export function escapedBytes(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += c === 0x22 || c === 0x5c ? 2 : c >= 0x20 ? 1 : c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair: one code point, four UTF-8 bytes
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) n += 6;
    else n += 3;
  }
  return n;
}

/** Bytes one received record takes in a receive's response envelope, at most. */
export function recordEnvelopeBytes(dataJson: string, key: string | undefined): number {
  return escapedBytes(dataJson) + (key === undefined ? 0 : escapedBytes(JSON.stringify(key))) + RECORD_ENVELOPE_OVERHEAD;
}

/** Bytes of a handler's result as Lambda's runtime serializes it (JSON.stringify), exactly. */
export function resultEnvelopeBytes(result: unknown): number {
  return Buffer.byteLength(JSON.stringify(result) ?? '', 'utf8');
}

/**
 * The bytes of `doc` (an event or a result) as Lambda serializes it, when they pass `limit`;
 * undefined when it fits. A body's escaped text is at most six bytes a UTF-16 unit, so a body
 * far under the limit is not serialized at all: only the fields around it are, to bound them.
 */
export function bytesOverLimit(doc: { body?: string | null }, limit: number): number | undefined {
  const body = doc.body ?? '';
  if (body.length * 6 + resultEnvelopeBytes({ ...doc, body: '' }) <= limit) return undefined;
  const bytes = resultEnvelopeBytes(doc);
  return bytes > limit ? bytes : undefined;
}
