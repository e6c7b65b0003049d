/**
 * The attributes of every item the storage adapter writes to the Logs, Records and Sessions
 * tables: for each, the short name it has on disk (kept short because DynamoDB bills the names'
 * bytes on every read and write, and unchanged: an existing table or `--data-dir` still opens)
 * and what it means. Expressions name attributes only as `#<field>` placeholders, and `namesIn`
 * builds their ExpressionAttributeNames from these maps, so an expression reads in words
 * (`#cursor <= :limit`) and a field has one spelling on disk, here.
 *
 * Keys (`pk`, `sk`) and the TTL attribute (`x`) are also in lambdas/tables.ts, which the stack
 * and the embedded store build the tables from; the maps below repeat them under their meaning.
 */

/** A log's head: one item per log in the Logs table, key `<owner>#<logId>` (its logKey). */
export const HEAD = {
  key: 'pk',
  owner: 'o',
  logId: 'lid',
  retentionHours: 'ret',
  createdMs: 'c',
  /** The last committed sequence number (0 while empty); an append's ordering update adds its count. */
  lastSeq: 'last',
  /** The first sequence number the tail covers (older batches are in index pages). */
  tailFirst: 'tb',
  /** The tail of the log's index: an encoded entry per batch ordered since `tailFirst` (log-index.ts). */
  tail: 'T',
  /** Expiry marks: the page their run starts from, the latest expiry marked, and the tail start they hold for. */
  marksFrom: 'xs',
  marksLatest: 'xm',
  marksAt: 'xt',
  /** The create's own token, so a create whose answer was lost can tell its write from another's. */
  createToken: 'ct',
} as const;

/** An idempotency key's item in the Logs table, key `<logKey>#idem#<key>`, kept 48 hours. */
export const IDEM = {
  key: 'pk',
  /** 'P' while an attempt writes the batch (pending), 'C' once it has its range (complete). */
  state: 'st',
  /** The attempt's token: only its holder completes or releases it. */
  token: 't',
  /** Epoch ms after which another attempt may take over a pending one. */
  untilMs: 'u',
  /** Hash of the records as stored: a retry with other records is refused. */
  hash: 'h',
  /** Where to look for this attempt's batch, and the prior dead attempts' (their tokens). */
  fromSeq: 'fs',
  prior: 'pr',
  /** The range a complete append got. */
  firstSeq: 'f',
  lastSeq: 'l',
  ttl: 'x',
} as const;

/** A chunk of one append's records in the Records table: key `<logKey>#<batchId>` and the chunk's index. */
export const CHUNK = {
  key: 'pk',
  index: 'sk',
  /** How many records the chunk holds. */
  count: 'n',
  /** The records' segment text (records.ts). */
  text: 'r',
  ttl: 'x',
} as const;

/** An index page in the Records table: key logKey and the first sequence number it covers. */
export const PAGE = {
  key: 'pk',
  first: 'sk',
  /** Encoded index entries, one per batch. */
  entries: 'e',
  /** Deleted once retention has passed for every batch it lists. */
  ttl: 'x',
} as const;

/** An expiry mark in the Records table: key `<logKey>#exp#<marksFrom>` and the mark's expiry, with a copy of its page. */
export const MARK = {
  key: 'pk',
  expiresSec: 'sk',
  pageFirst: 'f',
  entries: 'e',
  ttl: 'x',
} as const;

/**
 * A receiver session: one item in the Sessions table, key its session id. The compacted state
 * (`leases`, `dead`, `pendingFrom`, ...) changes only by a compaction, conditional on `version`;
 * claims and acks are appended to `claims` and `acks` by atomic updates (session.ts, settle).
 */
export const SESSION = {
  key: 'pk',
  owner: 'o',
  logId: 'lid',
  logKey: 'lk',
  settings: 'set',
  createdMs: 'c',
  /** Where the pending claims start: the cursor as the last compaction left it. */
  pendingFrom: 'b',
  /** The next never-sent record: `pendingFrom` plus the pending claims' sizes, advanced atomically by each claim. */
  cursor: 'cur',
  /** Pending claims, in order: `[n, leaseMs]` each. */
  claims: 'C',
  /** Pending acks: a string set of ack marks (codec.ts). */
  acks: 'A',
  /** The in-flight leases and the dead letters, binary (codec.ts). */
  leases: 'L',
  dead: 'D',
  /** Keys of the dead-letter pages spilled so far, and how many records they hold. */
  deadPages: 'dp',
  deadSpilled: 'ds',
  /** Records retention removed before the session reached them. */
  skipped: 'sk',
  /** Releases so far (nack, unsend, a lease handed back): every claim requires the count it read. */
  releases: 'rl',
  /** Epoch ms at which the idle session expires (every route answers 404 from then on). */
  expiresMs: 'e',
  /** TTL (epoch s): a day after `expiresMs`. */
  ttl: 'x',
  /** The idle distances an atomic ack adds to now: `expiresMs = idleMs + now`, `ttl = idleTtl + nowSec`. */
  idleMs: 'ie',
  idleTtl: 'ix',
  /** The compaction version. */
  version: 'v',
  createToken: 'ct',
} as const;

/** A dead-letter page in the Sessions table: key `<sessionId>#dl#<version>`. */
export const DEAD_PAGE = {
  key: 'pk',
  ranges: 'D',
  ttl: 'x',
} as const;

type AttributeMap = Readonly<Record<string, string>>;

/**
 * ExpressionAttributeNames for every `#field` placeholder in `expressions`, from `map`. A
 * placeholder the map does not name is a programming error, thrown at once (DynamoDB would
 * refuse the request with a less helpful message).
 */
export function namesIn(map: AttributeMap, ...expressions: string[]): Record<string, string> {
  const names: Record<string, string> = {};
  for (const expression of expressions) {
    for (const [, field] of expression.matchAll(/#([A-Za-z]\w*)/g)) {
      const onDisk = Object.hasOwn(map, field!) ? map[field!] : undefined;
      if (onDisk === undefined) throw new Error(`no attribute '${field}' in this item's map (expression: ${expression})`);
      names[`#${field}`] = onDisk;
    }
  }
  return names;
}
