/**
 * The embedded DynamoDB: dynalite in this process, on a loopback port, in memory or in a
 * directory (kept across restarts), with the service's tables created from the definitions
 * the stack uses (from the synthesized template in the local runtime; from lambdas/tables.ts,
 * the one definition the stack itself is built from, in the tests).
 */
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import { TABLES } from '../lambdas/tables';
import type { LocalTable } from './template';
import { addStorageLatency, checkStorageLatencyMs } from './latency';
import { addFaults, type FaultInjector } from './faults';

// dynalite ships no types; its factory returns a node http.Server.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => import('node:http').Server;

export type TableSpec = Pick<LocalTable, 'name' | 'keySchema' | 'attributeDefinitions'>;

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
    const name = `${prefix}-${def.id}`;
    env[def.envVar] = name;
    return {
      name,
      keySchema: keys.map((k, i) => ({ AttributeName: k.name, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
      attributeDefinitions: keys.map((k) => ({ AttributeName: k.name, AttributeType: k.type })),
    };
  });
  return { specs, env };
}

/** Uses a DynamoDB-compatible server that is already running (e.g. DynamoDB Local), creating the tables. */
export async function connectDynamo(endpoint: string, tables: readonly TableSpec[]): Promise<EmbeddedDynamo> {
  const client = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 3 });
  await createTables(client, tables);
  return { endpoint, client, close: async () => client.destroy() };
}

async function createTables(client: DynamoDBClient, tables: readonly TableSpec[]): Promise<void> {
  for (const t of tables) {
    try {
      await client.send(
        new CreateTableCommand({
          TableName: t.name,
          BillingMode: 'PAY_PER_REQUEST',
          KeySchema: t.keySchema,
          AttributeDefinitions: t.attributeDefinitions,
        }),
      );
    } catch (e) {
      if ((e as { name?: string }).name !== 'ResourceInUseException') throw e; // kept from an earlier run (--data-dir)
    }
  }
  // CreateTable answers while the table is still CREATING, and a table answers
  // ResourceNotFoundException until it is ACTIVE (dynalite flips it a moment later, on its own
  // timer; a loaded machine lost the first requests of a fresh runtime to this). Wait for ACTIVE.
  for (const t of tables) {
    await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 0.01, maxDelay: 0.25 }, { TableName: t.name });
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
  await createTables(client, opts.tables);
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
