/**
 * Local EventBridge: the account's default event bus as the local runtime's state machines see
 * it. It takes PutEvents (the API's shape: `Entries` of Source, DetailType, Detail as JSON text,
 * EventBusName, Resources, Time), checks it as EventBridge does where it matters, records every
 * accepted event in order, tells subscribers, and answers as PutEvents answers.
 *
 * Flow of one call: the request as a whole (1 to 10 entries, at most 256 KiB of entries as
 * EventBridge counts them, at least one entry with Source, DetailType and Detail; otherwise
 * ValidationException and nothing is recorded), then each entry in order (Source, DetailType of
 * at most 128 characters and Detail present, Detail a JSON object, a source not starting with
 * `aws.`, the default bus). An entry that fails gets ErrorCode and ErrorMessage in its
 * place of the answer and is not recorded, and the others go on, as in EventBridge;
 * `FailedEntryCount` counts them. Accepted entries get an EventId and are recorded and
 * published to subscribers in the order of the request.
 *
 * Where it differs: there is only the default bus (an entry for another bus fails with
 * InvalidArgument; the stack publishes to the default bus only), no rules or targets (tests and
 * `npm start` read the recorded events instead), and the error messages are this file's, with
 * EventBridge's error codes.
 */
import { randomUUID } from 'node:crypto';

/** PutEvents takes 1 to 10 entries a call. */
export const MAX_ENTRIES_PER_CALL = 10;
/** The entries of one PutEvents call, as EventBridge counts their size (entrySize): 256 KiB. */
export const MAX_ENTRIES_BYTES = 256 * 1024;
/** A detail-type is free-form text of at most 128 characters. */
export const MAX_DETAIL_TYPE_CHARS = 128;

/** One entry of a PutEvents request (PascalCase, as the API and Step Functions pass it). */
export interface PutEventsEntry {
  Source?: string;
  DetailType?: string;
  /** A JSON object, as text. */
  Detail?: unknown;
  EventBusName?: string;
  Resources?: string[];
  /** The event's time (default: when it was put). */
  Time?: string | number | Date;
  TraceHeader?: string;
}

export interface PutEventsResultEntry {
  EventId?: string;
  ErrorCode?: string;
  ErrorMessage?: string;
}

export interface PutEventsOutput {
  FailedEntryCount: number;
  Entries: PutEventsResultEntry[];
}

/** An event as the local bus recorded it. */
export interface LocalEvent {
  /** The EventId PutEvents answered. */
  id: string;
  /** ISO 8601: the entry's Time, else when it was put. */
  time: string;
  source: string;
  detailType: string;
  /** The entry's Detail, parsed. */
  detail: Record<string, unknown>;
  /** Always the default bus. */
  eventBusName: 'default';
  resources: string[];
}

/** PutEvents refused the request as a whole (nothing recorded): as the AWS SDK names it. */
export class EventBridgeValidationError extends Error {
  readonly $fault = 'client';
  readonly $metadata = { httpStatusCode: 400 };
  constructor(message: string) {
    super(message);
    this.name = 'ValidationException';
  }
}

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * An entry's size as EventBridge counts it ("Calculating PutEvents event entry size"): Time 14
 * bytes when given, the UTF-8 bytes of Source, DetailType, Detail and each of Resources.
 */
export function entrySize(e: PutEventsEntry): number {
  let n = e.Time !== undefined ? 14 : 0;
  if (typeof e.Source === 'string') n += utf8(e.Source);
  if (typeof e.DetailType === 'string') n += utf8(e.DetailType);
  if (typeof e.Detail === 'string') n += utf8(e.Detail);
  for (const r of e.Resources ?? []) if (typeof r === 'string') n += utf8(r);
  return n;
}

/** The default bus by name or ARN (any region and account: the local runtime has one of each). */
const isDefaultBus = (name: string | undefined): boolean =>
  name === undefined || name === '' || name === 'default' || /^arn:aws[a-z-]*:events:[^:]*:[^:]*:event-bus\/default$/.test(name);

function timeOf(t: PutEventsEntry['Time'], nowMs: number): string | undefined {
  if (t === undefined) return new Date(nowMs).toISOString();
  const ms = t instanceof Date ? t.getTime() : typeof t === 'number' ? (t < 1e11 ? t * 1000 : t) : Date.parse(t);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}

/** Why an entry fails, as EventBridge's ErrorCode and a message; undefined when it is accepted. */
function entryProblem(e: PutEventsEntry, nowMs: number): { code: string; message: string } | undefined {
  if (!e || typeof e !== 'object') return { code: 'InvalidArgument', message: 'The entry is not an object.' };
  if (typeof e.Source !== 'string' || e.Source === '')
    return { code: 'InvalidArgument', message: 'Parameter Source is not valid. Reason: Source is a required argument.' };
  if (typeof e.DetailType !== 'string' || e.DetailType === '')
    return { code: 'InvalidArgument', message: 'Parameter DetailType is not valid. Reason: DetailType is a required argument.' };
  if (e.DetailType.length > MAX_DETAIL_TYPE_CHARS)
    return {
      code: 'InvalidArgument',
      message: `Parameter DetailType is not valid: it may be at most ${MAX_DETAIL_TYPE_CHARS} characters (it has ${e.DetailType.length}).`,
    };
  if (e.Detail === undefined || e.Detail === null || e.Detail === '')
    return { code: 'InvalidArgument', message: 'Parameter Detail is not valid. Reason: Detail is a required argument.' };
  if (typeof e.Detail !== 'string')
    return {
      code: 'MalformedDetail',
      message: 'Detail is malformed: it must be a JSON object as text (with the aws-sdk integration, States.JsonToString).',
    };
  let parsed: unknown;
  try {
    parsed = JSON.parse(e.Detail);
  } catch {
    return { code: 'MalformedDetail', message: 'Detail is malformed: it is not JSON.' };
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    return { code: 'MalformedDetail', message: 'Detail is malformed: it must be a JSON object.' };
  if (e.Source.startsWith('aws.'))
    return {
      code: 'NotAuthorizedForSourceException',
      message: `Not authorized for the source ${e.Source}: sources starting with "aws." are AWS services'.`,
    };
  if (!isDefaultBus(e.EventBusName))
    return { code: 'InvalidArgument', message: `Event bus ${e.EventBusName} does not exist: the local runtime has the default bus only.` };
  if (e.Resources !== undefined && (!Array.isArray(e.Resources) || e.Resources.some((r) => typeof r !== 'string')))
    return { code: 'InvalidArgument', message: 'Parameter Resources is not valid: it must be a list of ARNs.' };
  if (timeOf(e.Time, nowMs) === undefined) return { code: 'InvalidArgument', message: 'Parameter Time is not valid.' };
  return undefined;
}

export type EventListener = (e: LocalEvent) => void;

export class LocalEventBridge {
  private readonly events: LocalEvent[] = [];
  private readonly listeners = new Set<EventListener>();

  constructor(private readonly now: () => number = Date.now) {}

  /** PutEvents: throws EventBridgeValidationError when the request as a whole is refused. */
  putEvents(input: { Entries?: PutEventsEntry[] }): PutEventsOutput {
    const entries = input?.Entries;
    if (!Array.isArray(entries) || entries.length < 1 || entries.length > MAX_ENTRIES_PER_CALL) {
      const n = Array.isArray(entries) ? entries.length : 0;
      throw new EventBridgeValidationError(
        `1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and ${MAX_ENTRIES_PER_CALL} (it has ${n}).`,
      );
    }
    const bytes = entries.reduce((sum, e) => sum + (e && typeof e === 'object' ? entrySize(e) : 0), 0);
    if (bytes > MAX_ENTRIES_BYTES) {
      throw new EventBridgeValidationError(
        `Total size of the entries in the request is over the limit: ${bytes} bytes, at most ${MAX_ENTRIES_BYTES}.`,
      );
    }
    // "If you submit a request in which none of the entries have each of these properties,
    // EventBridge fails the entire request" (PutEventsRequestEntry).
    const complete = (e: PutEventsEntry) =>
      !!e && typeof e === 'object' && !!e.Source && !!e.DetailType && e.Detail !== undefined && e.Detail !== null && e.Detail !== '';
    if (!entries.some(complete)) {
      throw new EventBridgeValidationError(
        'No entry of the request has all of Source, DetailType and Detail, which EventBridge needs to send an event.',
      );
    }
    const nowMs = this.now();
    const results: PutEventsResultEntry[] = [];
    const accepted: LocalEvent[] = [];
    for (const e of entries) {
      const problem = entryProblem(e, nowMs);
      if (problem) {
        results.push({ ErrorCode: problem.code, ErrorMessage: problem.message });
        continue;
      }
      const event: LocalEvent = {
        id: randomUUID(),
        time: timeOf(e.Time, nowMs)!,
        source: e.Source!,
        detailType: e.DetailType!,
        detail: JSON.parse(e.Detail as string) as Record<string, unknown>,
        eventBusName: 'default',
        resources: [...(e.Resources ?? [])],
      };
      accepted.push(event);
      results.push({ EventId: event.id });
    }
    for (const event of accepted) {
      this.events.push(event);
      for (const l of this.listeners) {
        try {
          l(event);
        } catch {
          // a subscriber's failure is not the publisher's
        }
      }
    }
    return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
  }

  /** Every event recorded so far, oldest first (a copy). */
  list(): LocalEvent[] {
    return [...this.events];
  }

  /** Calls `listener` with each event recorded from now on, in order; returns the unsubscribe. */
  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** One line per event for a console (`npm start`): time, source, detail-type, and the detail as JSON (cut at 1,000 characters). */
export function formatEventLine(e: LocalEvent): string {
  const detail = JSON.stringify(e.detail);
  return `event ${e.time} ${e.source} "${e.detailType}" ${detail.length > 1000 ? `${detail.slice(0, 999)}…` : detail}`;
}
