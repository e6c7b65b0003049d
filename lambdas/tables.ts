/**
 * Table definitions shared by the CDK stack (lib/) and the embedded store (tests, local
 * runtime): key schema, TTL attribute and global secondary indexes are stated once, here.
 */
export type KeyType = 'S' | 'N' | 'B';

/**
 * A global secondary index. Sparse by design: only items that carry both key attributes are in
 * it. KEYS_ONLY: it holds the table's key and its own, so a write that changes neither costs
 * the index nothing; readers fetch the items themselves from the table.
 */
export interface IndexDef {
  name: string;
  partitionKey: { name: string; type: KeyType };
  sortKey: { name: string; type: KeyType };
  projection: 'KEYS_ONLY';
}

export interface TableDef {
  /** Logical id in the stack and the environment variable that carries the physical name. */
  id: 'Logs' | 'Records' | 'Sessions' | 'Control';
  envVar: string;
  partitionKey: { name: string; type: KeyType };
  sortKey?: { name: string; type: KeyType };
  ttlAttribute: string;
  indexes?: readonly IndexDef[];
}

export const TABLES: readonly TableDef[] = [
  // A log's head item (owner, settings, committed lastSeq, the tail of its index) and its
  // idempotency items (kept 48 h, TTL'd).
  { id: 'Logs', envVar: 'LOGS_TABLE', partitionKey: { name: 'pk', type: 'S' }, ttlAttribute: 'x' },
  // Chunks: several records of one append per item, keyed by the append's batch id and the
  // chunk's index; the logs' index pages, keyed by log and the first sequence number they cover;
  // and their expiry marks (a copy of each page that expires later than every page before it),
  // keyed by log and that expiry, so the first retained record is found without reading expired pages.
  {
    id: 'Records',
    envVar: 'RECORDS_TABLE',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'N' },
    ttlAttribute: 'x',
  },
  // One item per receiver session (plus dead-letter spill pages), expiring when idle.
  { id: 'Sessions', envVar: 'SESSIONS_TABLE', partitionKey: { name: 'pk', type: 'S' }, ttlAttribute: 'x' },
  // The rollout state (control versions, the experiment, the bake lock) and the bake records
  // (kept 90 days, TTL'd). Bake records carry BAKES_BY_TIME's keys (one listing partition, the
  // bake's creation time), so GET /bakes lists them newest first with a Query, not a Scan.
  {
    id: 'Control',
    envVar: 'CONTROL_TABLE',
    partitionKey: { name: 'pk', type: 'S' },
    ttlAttribute: 'x',
    indexes: [
      {
        name: 'bakesByTime',
        partitionKey: { name: 'lp', type: 'S' },
        sortKey: { name: 'lt', type: 'N' },
        projection: 'KEYS_ONLY',
      },
    ],
  },
] as const;

/** The Control table's index of bake records by creation time (lambdas/adapters/control.ts writes its keys). */
export const BAKES_BY_TIME: IndexDef = TABLES.find((t) => t.id === 'Control')!.indexes![0]!;
