/**
 * The embedded DynamoDB: dynalite in this process, on a loopback port, in memory or in a
 * directory (kept across restarts), with the service's tables created from the definitions
 * the stack uses (from the synthesized template in the local runtime; from lambdas/tables.ts,
 * the one definition the stack itself is built from, in the tests).
 *
 * A table kept in a directory from before the stack gave it a global secondary index gets the
 * index as CloudFormation adds one in AWS, with its items kept (dynalite's UpdateTable cannot
 * create an index): its items are written to a file beside the data, the table is created
 * anew with the index, the items are put back, and the file is removed. A start that stops
 * anywhere in between finds the file and puts its items back first.
 */
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BatchWriteItemCommand,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ScanCommand,
  waitUntilTableExists,
  waitUntilTableNotExists,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { TABLES } from '../lambdas/tables';
import type { LocalTable } from './template';
import { addStorageLatency, checkStorageLatencyMs } from './latency';
import { addFaults, type FaultInjector } from './faults';

// dynalite ships no types; its factory returns a node http.Server.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => import('node:http').Server;

export type TableSpec = Pick<LocalTable, 'name' | 'keySchema' | 'attributeDefinitions' | 'globalSecondaryIndexes'>;

export interface EmbeddedDynamo {
  endpoint: string;
  client: DynamoDBClient;
  close(): Promise<void>;
}

/** Table specs from lambdas/tables.ts, named `${prefix}-${id}`, with the env var each name goes in. */
export function tableSpecsFromDefs(prefix: string): { specs: TableSpec[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  const specs = TABLES.map((def): TableSpec => {
    const keys = [def.partitionKey, ...(def.sortKey ? [def.sortKey] : [])];
    const indexKeys = (def.indexes ?? [])
      .flatMap((ix) => [ix.partitionKey, ix.sortKey])
      .filter((k, i, all) => !keys.some((t) => t.name === k.name) && all.findIndex((o) => o.name === k.name) === i);
    const name = `${prefix}-${def.id}`;
    env[def.envVar] = name;
    return {
      name,
      keySchema: keys.map((k, i) => ({ AttributeName: k.name, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
      attributeDefinitions: [...keys, ...indexKeys].map((k) => ({ AttributeName: k.name, AttributeType: k.type })),
      ...(def.indexes?.length
        ? {
            globalSecondaryIndexes: def.indexes.map((ix) => ({
              IndexName: ix.name,
              KeySchema: [
                { AttributeName: ix.partitionKey.name, KeyType: 'HASH' as const },
                { AttributeName: ix.sortKey.name, KeyType: 'RANGE' as const },
              ],
              Projection: { ProjectionType: ix.projection },
            })),
          }
        : {}),
    };
  });
  return { specs, env };
}

/** Uses a DynamoDB-compatible server that is already running (e.g. DynamoDB Local), creating the tables. */
export async function connectDynamo(endpoint: string, tables: readonly TableSpec[]): Promise<EmbeddedDynamo> {
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
  });
  await createTables(client, tables);
  return { endpoint, client, close: async () => client.destroy() };
}

const createTable = (client: DynamoDBClient, t: TableSpec) =>
  client.send(
    new CreateTableCommand({
      TableName: t.name,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: t.keySchema,
      AttributeDefinitions: t.attributeDefinitions,
      ...(t.globalSecondaryIndexes?.length ? { GlobalSecondaryIndexes: t.globalSecondaryIndexes } : {}),
    }),
  );

// CreateTable answers while the table is still CREATING, and a table answers
// ResourceNotFoundException until it is ACTIVE (dynalite flips it a moment later, on its own
// timer; a loaded machine lost the first requests of a fresh runtime to this). Wait for ACTIVE.
const untilActive = (client: DynamoDBClient, name: string) =>
  waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 0.01, maxDelay: 0.25 }, { TableName: name });

/**
 * Creates the tables; one kept from an earlier run (--data-dir) stays as it is, except that an
 * index it lacks is added with its items kept (see the top of this file). `keepDir` is where the
 * items wait while that happens (the data directory); without one they wait in memory only.
 */
async function createTables(client: DynamoDBClient, tables: readonly TableSpec[], keepDir?: string): Promise<void> {
  const kept: TableSpec[] = [];
  for (const t of tables) {
    try {
      await createTable(client, t);
    } catch (e) {
      if ((e as { name?: string }).name !== 'ResourceInUseException') throw e;
      kept.push(t);
    }
  }
  for (const t of tables) await untilActive(client, t.name);
  for (const t of kept) await addMissingIndexes(client, t, keepDir);
  // Items of an earlier start that stopped between deleting a table and putting them back.
  if (keepDir) for (const t of tables) await restoreKept(client, t.name, keptFile(keepDir, t.name));
}

const keptFile = (dir: string, table: string) => join(dir, `${table}.items-while-indexing.json`);

async function addMissingIndexes(client: DynamoDBClient, t: TableSpec, keepDir: string | undefined): Promise<void> {
  const wanted = t.globalSecondaryIndexes ?? [];
  if (!wanted.length) return;
  const have = new Set(
    ((await client.send(new DescribeTableCommand({ TableName: t.name }))).Table?.GlobalSecondaryIndexes ?? []).map((g) => g.IndexName),
  );
  if (wanted.every((g) => have.has(g.IndexName))) return;
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(new ScanCommand({ TableName: t.name, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  // The file is complete before the table is deleted (written aside, then renamed into place),
  // and removed only after every item is back: a stop at any point loses nothing.
  const file = keepDir ? keptFile(keepDir, t.name) : undefined;
  if (file) {
    writeFileSync(`${file}.tmp`, JSON.stringify(items));
    renameSync(`${file}.tmp`, file);
  }
  await client.send(new DeleteTableCommand({ TableName: t.name }));
  await waitUntilTableNotExists({ client, maxWaitTime: 30, minDelay: 0.01, maxDelay: 0.25 }, { TableName: t.name });
  await createTable(client, t);
  await untilActive(client, t.name);
  await putAll(client, t.name, items);
  if (file) rmSync(file, { force: true });
}

async function restoreKept(client: DynamoDBClient, table: string, file: string): Promise<void> {
  if (!existsSync(file)) return;
  await putAll(client, table, JSON.parse(readFileSync(file, 'utf8')) as Record<string, AttributeValue>[]);
  rmSync(file, { force: true });
}

/** Plain puts of whole items: putting one back twice is harmless. */
async function putAll(client: DynamoDBClient, table: string, items: Record<string, AttributeValue>[]): Promise<void> {
  for (let i = 0; i < items.length; i += 25) {
    let pending = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
    while (pending.length) {
      const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [table]: pending } }));
      pending = (out.UnprocessedItems?.[table] ?? []) as typeof pending;
    }
  }
}

export async function startEmbeddedDynamo(opts: {
  tables: readonly TableSpec[];
  path?: string;
  /** Added to every call of `client` once its tables are ACTIVE (local/latency.ts); default 0, none. */
  storageLatencyMs?: number;
  /** Injected faults on every call of `client` once its tables are ACTIVE (local/faults.ts), inside the latency. */
  faults?: FaultInjector;
}): Promise<EmbeddedDynamo> {
  const latencyMs = checkStorageLatencyMs(opts.storageLatencyMs ?? 0, 'storageLatencyMs'); // before anything is started
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(opts.path ? { path: opts.path } : {}) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
  });
  await createTables(client, opts.tables, opts.path);
  // After the tables exist: the latency models the service's calls, not the runtime's start.
  addStorageLatency(client, latencyMs);
  // Added after the latency, so inside it: a throttled attempt still pays the round trip.
  if (opts.faults) addFaults(client, opts.faults, 'dynamodb');
  return {
    endpoint,
    client,
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
