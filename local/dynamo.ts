/**
 * The embedded DynamoDB: dynalite in this process, on a loopback port, with the service's
 * tables created from the same definitions the stack uses (lambdas/tables.ts).
 */
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient, type AttributeDefinition, type KeySchemaElement } from '@aws-sdk/client-dynamodb';
// dynalite ships no types; its factory returns a node http.Server.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => import('node:http').Server;
import { TABLES, type TableDef } from '../lambdas/tables';

export interface EmbeddedDynamo {
  endpoint: string;
  client: DynamoDBClient;
  tableNames: { logs: string; records: string; sessions: string };
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function createTable(client: DynamoDBClient, def: TableDef, name: string): Promise<void> {
  const keys = [def.partitionKey, ...(def.sortKey ? [def.sortKey] : [])];
  const AttributeDefinitions: AttributeDefinition[] = keys.map((k) => ({ AttributeName: k.name, AttributeType: k.type }));
  const KeySchema: KeySchemaElement[] = keys.map((k, i) => ({ AttributeName: k.name, KeyType: i === 0 ? 'HASH' : 'RANGE' }));
  await client.send(new CreateTableCommand({ TableName: name, BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions, KeySchema }));
}

export async function startEmbeddedDynamo(opts: { path?: string; prefix?: string } = {}): Promise<EmbeddedDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(opts.path ? { path: opts.path } : {}) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
  });
  const prefix = opts.prefix ?? 'logrelay';
  const env: Record<string, string> = {};
  for (const def of TABLES) {
    const name = `${prefix}-${def.id}`;
    env[def.envVar] = name;
    try {
      await createTable(client, def, name);
    } catch (e) {
      if ((e as { name?: string }).name !== 'ResourceInUseException') throw e; // kept from an earlier run (--data-dir)
    }
  }
  return {
    endpoint,
    client,
    env,
    tableNames: { logs: env.LOGS_TABLE!, records: env.RECORDS_TABLE!, sessions: env.SESSIONS_TABLE! },
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
