/**
 * How records are packed into stored segments and read back. A segment holds consecutive
 * records of one append as newline-separated JSON (`[data]` or `[data, key]` per line: JSON
 * text never contains a raw newline), so storage bytes track record bytes, not record count.
 * Each segment is stored as one chunk item of its append's batch (log-index.ts says where).
 */
import { payloadTooLarge, validation, type ServiceError } from './errors';
import type { LimitsConfig } from './config';
import { jsonDepth } from './json-text';

/** Target size of one segment's record text. Small enough that a receive reading from the
 * middle of a segment wastes little read capacity, large enough that an item's 1 KB write
 * rounding is noise. */
export const SEGMENT_TARGET_BYTES = 16 * 1024;

export interface InputRecord {
  data: unknown;
  key?: string;
  /**
   * `data` as the JSON text the producer wrote, minified (json-text.ts recordDataTexts): what
   * is stored and delivered, so numbers and escapes come back exactly as sent. Without it (a
   * caller that has only the value), JSON.stringify(data), which rounds numbers that have no
   * exact double.
   */
  dataJson?: string;
  /** How deeply `dataJson` nests (json-text.ts gives it with the text, so it is not scanned twice). */
  dataDepth?: number;
}

/**
 * How deeply a record's `data` may nest arrays and objects (`[]` is 1 deep, `[[1]]` 2, a
 * scalar 0). Real documents rarely nest past 20. Far deeper data is a mistake or an attack,
 * and does not fit the code that handles records: recursive JSON code runs out of stack at
 * some thousands of levels (5,000 overflowed this service's encoder, which answered 500), and
 * consumers' parsers refuse much less by default (Ruby's JSON 100 levels, serde_json 128,
 * .NET's System.Text.Json 64). 100 is far beyond real data and far within what any code on the
 * service's own path can take.
 */
export const MAX_DATA_DEPTH = 100;

export interface EncodedRecord {
  line: string;
  /** UTF-8 bytes of the record's serialized `data`. */
  dataBytes: number;
}

export interface SegmentDraft {
  /** Offset of the segment's first record within the append. */
  offset: number;
  count: number;
  text: string;
}

export interface DeliveredRecord {
  seq: number;
  /** The record's `data` as the JSON text it was appended as (see receivedJson). */
  dataJson: string;
  key?: string;
  dataBytes: number;
}

/** Checks an append against the `limits` profile and serializes its records. */
export function encodeAppend(records: readonly InputRecord[], limits: LimitsConfig, requestBytes: number): EncodedRecord[] {
  if (requestBytes > limits.maxRequestBytes) {
    throw payloadTooLarge(
      `The request body is ${requestBytes} bytes; the limit is ${limits.maxRequestBytes}. Split the records over several appends.`,
    );
  }
  if (records.length > limits.maxRecordsPerAppend) {
    throw validation(
      `An append may carry at most ${limits.maxRecordsPerAppend} records; this one has ${records.length}. Split it into several appends.`,
    );
  }
  return records.map((r, i) => {
    const data = r.dataJson ?? serialized(r.data, i);
    const depth = r.dataJson !== undefined && r.dataDepth !== undefined ? r.dataDepth : jsonDepth(data);
    if (depth > MAX_DATA_DEPTH) throw tooDeep(i, depth);
    const dataBytes = Buffer.byteLength(data, 'utf8');
    if (dataBytes > limits.maxRecordBytes) {
      throw payloadTooLarge(
        `The record at records[${i}] has ${dataBytes} bytes of serialized data; the limit is ${limits.maxRecordBytes}. Store large payloads elsewhere and append a reference.`,
      );
    }
    const line = r.key === undefined ? `[${data}]` : `[${data},${JSON.stringify(r.key)}]`;
    return { line, dataBytes };
  });
}

const tooDeep = (i: number, depth: number | undefined): ServiceError =>
  validation(
    `The record at records[${i}] has data nested ${depth === undefined ? 'thousands of' : depth} levels deep (arrays and objects); the limit is ${MAX_DATA_DEPTH}. Flatten it, or send the deep part as a JSON string.`,
  );

/** JSON.stringify(data), for records that come without their text. */
function serialized(data: unknown, i: number): string {
  try {
    return JSON.stringify(data);
  } catch (e) {
    if (e instanceof RangeError) throw tooDeep(i, undefined); // the call stack ran out
    throw e;
  }
}

/** Cuts an append's records into segments of about SEGMENT_TARGET_BYTES (at least one record each). */
export function toSegments(records: readonly EncodedRecord[]): SegmentDraft[] {
  const out: SegmentDraft[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < records.length; i++) {
    const size = Buffer.byteLength(records[i]!.line, 'utf8') + 1;
    if (i > start && bytes + size > SEGMENT_TARGET_BYTES) {
      out.push(draft(records, start, i));
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (records.length > start) out.push(draft(records, start, records.length));
  return out;
}

const draft = (records: readonly EncodedRecord[], start: number, end: number): SegmentDraft => ({
  offset: start,
  count: end - start,
  text: records
    .slice(start, end)
    .map((r) => r.line)
    .join('\n'),
});

/**
 * The start of the segment that holds `seq`, given segment starts in ascending order: the
 * largest start at or below `seq` (0 when `seq` is before them all).
 */
export function segmentHolding(starts: readonly number[], seq: number): number {
  if (!starts.length || starts[0]! > seq) return 0;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= seq) lo = mid;
    else hi = mid - 1;
  }
  return starts[lo]!;
}

/** Decodes the records `from..to` (inclusive, clipped to the segment) of a segment that starts at `first`. */
export function decodeSegment(first: number, text: string, from: number, to: number): DeliveredRecord[] {
  const lines = text.split('\n');
  const out: DeliveredRecord[] = [];
  const lo = Math.max(from, first);
  const hi = Math.min(to, first + lines.length - 1);
  for (let seq = lo; seq <= hi; seq++) out.push(decodeLine(seq, lines[seq - first]!));
  return out;
}

/**
 * One line, `[data]` or `[data,key]` exactly as encodeAppend wrote it: `data` is the JSON text
 * between the bracket and the key, so it is sliced out, never parsed (a receive hands it on as
 * it came; see receivedJson). Only a line that ends in a string can hold a key (a string `data`
 * ends that way too): that line alone is parsed, to tell which.
 */
function decodeLine(seq: number, line: string): DeliveredRecord {
  let end = line.length - 1; // the closing bracket
  let key: string | undefined;
  if (line.charCodeAt(end - 1) === QUOTE) {
    const parsed = JSON.parse(line) as [unknown, string?];
    if (parsed.length > 1) {
      key = parsed[1]!;
      end -= JSON.stringify(key).length + 1; // the key as encodeAppend wrote it, and its comma
    }
  }
  const dataJson = line.slice(1, end);
  const rec: DeliveredRecord = { seq, dataJson, dataBytes: Buffer.byteLength(dataJson, 'utf8') };
  if (key !== undefined) rec.key = key;
  return rec;
}

const QUOTE = 0x22;

/** A record as a receive hands it out. */
export interface ReceivedRecord {
  seq: number;
  /** `data` as the JSON text it was appended as. */
  dataJson: string;
  key?: string;
  deliveryCount: number;
  leaseExpiresAt: string;
}

/**
 * The contract's `records` array as JSON text: per record `seq`, `data`, `deliveryCount`,
 * `leaseExpiresAt` and `key` (when it has one), in that order. The text is what
 * JSON.stringify gives for the records with `data` parsed, but each record's data goes in as
 * the JSON text it was stored as, never parsed and serialized again: for small records that was
 * most of a receive's own CPU, for large ones far more.
 */
export function receivedJson(records: readonly ReceivedRecord[]): string {
  let out = '[';
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (i > 0) out += ',';
    // seq and deliveryCount are integers, leaseExpiresAt an ISO timestamp: nothing to escape.
    out += `{"seq":${r.seq},"data":${r.dataJson},"deliveryCount":${r.deliveryCount},"leaseExpiresAt":"${r.leaseExpiresAt}"`;
    out += r.key === undefined ? '}' : `,"key":${JSON.stringify(r.key)}}`;
  }
  return `${out}]`;
}
