/**
 * A log's index: which stored batch holds which sequence numbers. Appends are "durable first,
 * ordered after": an append writes its records as chunks under a batch id of its own, then one
 * atomic update of the log's head gives them the next sequence numbers by appending an index
 * entry to the head's tail. The tail's first entry starts at the head's `tailFirst`; every later
 * entry starts where the one before ends, so an entry's sequence numbers are implied by its
 * position and need not be stored. Full runs of TAIL_PAGE entries move from the tail to
 * immutable index pages (keyed by their first sequence number), which hosts may cache forever.
 * A page that expires later than every page before it is also stored as an expiry mark, keyed
 * by that expiry (expiryMarks): the log's first retained record is then the first mark later
 * than now, one read however many expired pages storage still holds.
 */

/** Entries per index page: a page moves out of the head's tail when the tail reaches a multiple of this. */
export const TAIL_PAGE = 16;

/** One committed append: its batch id, when retention removes it, and its records per chunk. */
export interface IndexEntry {
  batchId: string;
  /** Retention: the records are gone from this second on (the chunks' TTL). */
  expiresSec: number;
  /** Records in each chunk of the batch, in order (chunks are about SEGMENT_TARGET_BYTES). */
  counts: number[];
}

/** A run of entries and the sequence number its first entry starts at. */
export interface IndexRun {
  first: number;
  entries: IndexEntry[];
}

/** Where some records are stored: chunk `index` of batch `batchId`, holding `first .. first+count-1`. */
export interface ChunkRef {
  batchId: string;
  index: number;
  first: number;
  count: number;
  expiresSec: number;
}

/**
 * An entry as stored: `batchId expiresSec count count ...`. A string, so the head's tail is a
 * list of strings that DynamoDB's `contains` can test for one entry (the sequencing update's
 * guard against applying twice), and short: about 30 bytes for a one-chunk append.
 */
export function encodeEntry(e: IndexEntry): string {
  return `${e.batchId} ${e.expiresSec} ${e.counts.join(' ')}`;
}

export function decodeEntry(s: string): IndexEntry {
  const [batchId, expires, ...counts] = s.split(' ');
  return { batchId: batchId!, expiresSec: Number(expires), counts: counts.map(Number) };
}

export const entryCount = (e: IndexEntry): number => e.counts.reduce((a, b) => a + b, 0);

/** The last sequence number a run covers (first - 1 when it is empty). */
export const runLast = (run: IndexRun): number => run.entries.reduce((seq, e) => seq + entryCount(e), run.first - 1);

/** The chunks of `run` that hold any of `from .. to`, in sequence order. */
export function chunksIn(run: IndexRun, from: number, to: number): ChunkRef[] {
  const out: ChunkRef[] = [];
  let seq = run.first;
  for (const e of run.entries) {
    const end = seq + entryCount(e) - 1;
    if (end >= from) {
      if (seq > to) break;
      e.counts.forEach((count, index) => {
        if (seq <= to && seq + count - 1 >= from) out.push({ batchId: e.batchId, index, first: seq, count, expiresSec: e.expiresSec });
        seq += count;
      });
      continue;
    }
    seq = end + 1;
  }
  return out;
}

/** The sequence numbers `run` gave batch `batchId`, if it holds it. */
export function rangeOf(run: IndexRun, batchId: string): { firstSeq: number; lastSeq: number } | undefined {
  let seq = run.first;
  for (const e of run.entries) {
    const n = entryCount(e);
    if (e.batchId === batchId) return { firstSeq: seq, lastSeq: seq + n - 1 };
    seq += n;
  }
  return undefined;
}

/** The first sequence number in `run` whose retention has not passed at `nowSec`. */
export function firstLiveIn(run: IndexRun, nowSec: number): number | undefined {
  let seq = run.first;
  for (const e of run.entries) {
    if (e.expiresSec > nowSec) return seq;
    seq += entryCount(e);
  }
  return undefined;
}

/** The latest expiry of a run's entries: the whole run is past its retention from this second on (0 when empty). */
export const runExpiry = (run: IndexRun): number => run.entries.reduce((latest, e) => Math.max(latest, e.expiresSec), 0);

/**
 * An index page stored a second time, keyed by the latest expiry of every page from the start
 * of the log (or of the marks' segment) up to and including it. Only the pages where that
 * running latest rises get a mark, so it rises strictly from mark to mark and keys them uniquely.
 */
export interface ExpiryMark {
  /** The latest expiry of this page and of every page before it: this page's own (runExpiry). */
  expiresSec: number;
  page: IndexRun;
}

/**
 * The marks of `pages` (consecutive, in order), moved after pages whose latest expiry was
 * `latest`, and the running latest after them.
 *
 * Why the marks find a log's first retained record, whatever order expiries come in (an
 * entry's expiry is its append's start plus the retention, so a batch that took longer, or ran
 * on a host whose clock is behind, can expire before one ordered ahead of it): let the first
 * mark whose key is later than `now` be that of page P. Every page before P has a running
 * latest no later than the previous mark's key, which is not later than `now`, so every entry
 * before P is past its retention; P's own expiry is its mark's key, later than `now`, so P
 * holds a retained entry, and the first one (firstLiveIn) is the log's first retained record.
 * When no mark is later than `now`, no page holds a retained entry. The running latest never
 * goes down, so once a mark's key has passed, it is never needed again (its TTL).
 */
export function expiryMarks(latest: number, pages: readonly IndexRun[]): { marks: ExpiryMark[]; latest: number } {
  const marks: ExpiryMark[] = [];
  for (const page of pages) {
    const expiresSec = runExpiry(page);
    if (expiresSec <= latest) continue;
    latest = expiresSec;
    marks.push({ expiresSec, page });
  }
  return { marks, latest };
}
