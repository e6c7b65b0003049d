/**
 * What handlers run on. In Lambda: DynamoDB from the environment's table names and the
 * system clock. Tests and the local runtime pass their own (embedded store, fake clock,
 * fault-injecting store).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoStore, type Store } from '../adapters/store';
import { staticConfig, type ConfigProvider } from '../domain/config';
import { systemClock, type Clock } from '../services/logs';
import { tracer } from './api';
import { TABLES } from '../tables';

export interface Deps {
  store: Store;
  clock: Clock;
  config: ConfigProvider;
}

export function tableNamesFromEnv(env: NodeJS.ProcessEnv = process.env): { logs: string; records: string; sessions: string } {
  const name = (id: string): string => {
    const def = TABLES.find((t) => t.id === id)!;
    return env[def.envVar] ?? '';
  };
  return { logs: name('Logs'), records: name('Records'), sessions: name('Sessions') };
}

export function defaultDeps(): Deps {
  const client = tracer.captureAWSv3Client(new DynamoDBClient({ maxAttempts: 3 }));
  return { store: new DynamoStore(client, tableNamesFromEnv()), clock: systemClock, config: staticConfig() };
}

/** Builds the real handler on first use, so importing a handler module needs no environment. */
export function lazy<A extends unknown[], R>(make: () => (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  let h: ((...args: A) => Promise<R>) | undefined;
  return (...args: A) => (h ??= make())(...args);
}
