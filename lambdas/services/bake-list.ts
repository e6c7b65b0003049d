/**
 * GET /bakes: every bake still kept (90 days), newest first, each with its status and what it
 * changed and decided (every phase's profile, version, verdict and reason), a page at a time.
 *
 * Flow: read `limit` and `nextToken` from the query (400 with a sentence when either is not
 * usable); one Query of the Control table's `bakesByTime` index for the page's keys (plus one,
 * to know whether the listing goes on); one consistent BatchGetItem of their records; a
 * summary of each, in the index's order; and `nextToken`, the opaque position after the page's
 * last key, when there is more.
 *
 * Why it holds without a Scan and without a separate listing item: the index keys are
 * attributes of the bake record itself (adapters/control.ts), so the listing can never hold an
 * entry for a record that was not written, or miss one that was, whatever crashed between two
 * calls. The index is eventually consistent; its only two gaps are covered here: a key whose
 * record has already gone (TTL) is skipped, so a page can hold fewer than `limit` bakes; and a
 * bake created a moment ago can be missing from a listing taken at that moment. The content of
 * each bake comes from its record, read strongly consistent, so its status and verdicts are
 * those GET /bakes/{bakeId} gives. The position in `nextToken` is a key, not an offset, so bakes
 * created while an operator pages (which land before the first page) shift nothing.
 *
 * Records written before the records carried the index keys (an older version of Logrelay) are
 * not in the index, and so not listed; GET /bakes/{bakeId} still reads them, and they expire
 * within 90 days of their start. A bake running across the upgrade is listed from its next
 * write.
 */
import type { BakeListKey, Clock, ControlStore } from '../ports';
import { reportedSettings, reportedStatus, type BakeRecord, type BakeStatus } from '../domain/bake';
import { clip, validation } from '../domain/errors';

/** Bakes per page when `limit` is not given, and the most a page may hold (BatchGetItem's 100 keys). */
export const LIST_DEFAULT_LIMIT = 20;
export const LIST_MAX_LIMIT = 100;
const QUERY_PARAMETERS = ['limit', 'nextToken'] as const;
/** What a token can be: base64url of `[createdAtMs, bakeId]`, bake ids being at most 64 characters. */
const TOKEN = /^[A-Za-z0-9_-]{1,200}$/;
const BAKE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** One phase of a listed bake: the change it made and what the bake decided about it. */
export interface PhaseSummary {
  profile: string;
  version: string;
  verdict: string;
  reason?: string;
  startedAt?: string;
  endedAt?: string;
}

/** One bake of GET /bakes. */
export interface BakeSummary {
  bakeId: string;
  status: BakeStatus;
  error?: string;
  abortRequested: boolean;
  createdAt: string;
  endedAt?: string;
  settings: BakeRecord['settings'];
  phases: PhaseSummary[];
}

export interface BakePage {
  bakes: BakeSummary[];
  /** Pass back as `nextToken` for the next page; absent on the last page. */
  nextToken?: string;
}

/** `nextToken`: the position after `key`, opaque to callers. */
export function encodeListToken(key: BakeListKey): string {
  return Buffer.from(JSON.stringify([key.createdAtMs, key.bakeId]), 'utf8').toString('base64url');
}

/** The position a token names; undefined when it is not one encodeListToken made. */
export function decodeListToken(token: string): BakeListKey | undefined {
  if (!TOKEN.test(token)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const [createdAtMs, bakeId] = v as [unknown, unknown];
  if (typeof createdAtMs !== 'number' || !Number.isSafeInteger(createdAtMs) || createdAtMs < 0) return undefined;
  if (typeof bakeId !== 'string' || !BAKE_ID.test(bakeId)) return undefined;
  return { createdAtMs, bakeId };
}

/** The query of GET /bakes, checked: 400 naming what to change when a parameter is not usable. */
export function parseListQuery(query: Record<string, string | undefined>): { limit: number; after?: BakeListKey } {
  const unknown = Object.keys(query).filter((k) => !(QUERY_PARAMETERS as readonly string[]).includes(k));
  if (unknown.length) {
    throw validation(
      `GET /bakes takes the query parameters limit and nextToken; ${unknown
        .slice(0, 3)
        .map((k) => `'${clip(k, 40)}'`)
        .join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not among them.`,
    );
  }
  let limit = LIST_DEFAULT_LIMIT;
  if (query.limit !== undefined) {
    const text = query.limit;
    if (!/^[0-9]{1,4}$/.test(text) || Number(text) < 1 || Number(text) > LIST_MAX_LIMIT) {
      throw validation(
        `limit must be a whole number from 1 to ${LIST_MAX_LIMIT} (default ${LIST_DEFAULT_LIMIT}); it is '${clip(text, 40)}'.`,
      );
    }
    limit = Number(text);
  }
  if (query.nextToken === undefined) return { limit };
  const after = decodeListToken(query.nextToken);
  if (!after) {
    throw validation(
      `nextToken '${clip(query.nextToken, 60)}' is not one GET /bakes gave out. Pass the nextToken of the previous page exactly as it came, or leave it out to start from the newest bake.`,
    );
  }
  return { limit, after };
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

/** A bake as GET /bakes lists it: status and settings as GET /bakes/{bakeId} reports them. */
export function summarize(b: BakeRecord, nowMs: number): BakeSummary {
  const { status, error } = reportedStatus(b, nowMs);
  return {
    bakeId: b.bakeId,
    status,
    ...(error ? { error } : {}),
    abortRequested: b.abortRequested,
    createdAt: iso(b.createdAtMs)!,
    ...(b.endedAtMs ? { endedAt: iso(b.endedAtMs) } : {}),
    settings: reportedSettings(b),
    phases: b.phases.map((p) => ({
      profile: p.profile,
      version: p.version,
      verdict: p.verdict,
      ...(p.reason ? { reason: p.reason } : {}),
      ...(p.startedAtMs ? { startedAt: iso(p.startedAtMs) } : {}),
      ...(p.endedAtMs ? { endedAt: iso(p.endedAtMs) } : {}),
    })),
  };
}

export class BakeList {
  constructor(
    private readonly control: Pick<ControlStore, 'listBakeKeys' | 'getBakes'>,
    private readonly clock: Clock,
  ) {}

  /** One page of GET /bakes for the request's query parameters. */
  async list(query: Record<string, string | undefined>): Promise<BakePage> {
    const { limit, after } = parseListQuery(query);
    const { keys, more } = await this.control.listBakeKeys(limit, after);
    const records = keys.length ? await this.control.getBakes(keys.map((k) => k.bakeId)) : new Map<string, BakeRecord>();
    const now = this.clock.now();
    const bakes: BakeSummary[] = [];
    for (const k of keys) {
      const b = records.get(k.bakeId);
      if (b) bakes.push(summarize(b, now)); // absent: its record expired after the index was read
    }
    const last = keys.at(-1);
    return { bakes, ...(more && last ? { nextToken: encodeListToken(last) } : {}) };
  }
}
