/**
 * A lost response at the SDK level: DynamoDB applies a write, the response is a 500, and the
 * SDK's own retry runs next. Idempotent writes may be sent again; the ordering update must not
 * be (a second application would give one batch two ranges), so the adapter lets the SDK send
 * it once and the append service looks it up instead. Runs against the embedded store with a
 * fault middleware inside the SDK's retry loop, exactly where a lost response happens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoStore, UnknownOutcomeError } from '../../lambdas/adapters/store';
import { LogService } from '../../lambdas/services/logs';
import { SessionService } from '../../lambdas/services/sessions';
import { DEFAULT_CONFIG } from '../../lambdas/domain/config';
import { startEmbeddedDynamo, tableSpecsFromDefs, type EmbeddedDynamo } from '../../local/dynamo';
import { tableNamesFromEnv } from '../../lambdas/http/deps';

let dynamo: EmbeddedDynamo;
let tables: ReturnType<typeof tableNamesFromEnv>;
/** Commands (by name) whose next attempt is applied and then answered with a 500. */
const loseNext = new Set<string>();
/** Commands (by name) whose next attempt is refused as throttled (not applied). */
const throttleNext = new Set<string>();
/** Every attempt the SDK sent, by command name. */
let attempts: string[] = [];

/** Added before the first UpdateItem is sent: the SDK resolves (and keeps) a command's middleware stack on first use. */
function addLostResponses(client: DynamoDBClient): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? '';
      attempts.push(name);
      if (throttleNext.delete(name)) {
        throw Object.assign(new Error('Rate exceeded'), {
          name: 'ThrottlingException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
        });
      }
      const out = await next(args);
      if (loseNext.delete(name)) {
        throw Object.assign(new Error('We encountered an internal error. Please try again.'), {
          name: 'InternalServerError',
          $fault: 'server',
          $metadata: { httpStatusCode: 500 },
        });
      }
      return out;
    },
    { step: 'deserialize', name: 'testLostResponse', priority: 'low' },
  );
}

beforeAll(async () => {
  const { specs, env } = tableSpecsFromDefs(`t${Math.random().toString(36).slice(2, 8)}`);
  dynamo = await startEmbeddedDynamo({ tables: specs });
  tables = tableNamesFromEnv(env);
  addLostResponses(dynamo.client);
});
afterAll(async () => dynamo?.close());

const append = (logs: LogService, logId: string, n: number) =>
  logs.append(
    'me',
    logId,
    Array.from({ length: n }, (_, i) => ({ data: i })),
    { limits: DEFAULT_CONFIG.limits, requestBytes: 100, deadlineMs: Date.now() + 10_000 },
  );

describe('a lost response inside the SDK', () => {
  it('an idempotent write (the chunks) is sent again by the SDK and succeeds', async () => {
    const store = new DynamoStore(dynamo.client, tables);
    attempts = [];
    loseNext.add('BatchWriteItemCommand');
    await store.putChunks('me|x', 'batch', [{ count: 1, text: '[1]' }], 9_999_999_999);
    expect(attempts).toEqual(['BatchWriteItemCommand', 'BatchWriteItemCommand']);
  });

  it('the ordering update is sent once: UnknownOutcomeError, and the head shows it applied exactly once', async () => {
    const store = new DynamoStore(dynamo.client, tables);
    const logs = new LogService(store);
    await logs.create('me', 'once', 1);
    attempts = [];
    loseNext.add('UpdateItemCommand');
    await expect(store.sequence('me|once', { batchId: 'b1', expiresSec: 1, counts: [3] }, 3)).rejects.toBeInstanceOf(UnknownOutcomeError);
    expect(attempts).toEqual(['UpdateItemCommand']);
    const head = await store.getHead('me|once');
    expect(head).toMatchObject({ lastSeq: 3, tail: { first: 1, entries: [{ batchId: 'b1', counts: [3] }] } });
    // Sent again by hand, the entry already in the tail makes it refused, not applied twice.
    await expect(store.sequence('me|once', { batchId: 'b1', expiresSec: 1, counts: [3] }, 3)).rejects.toMatchObject({
      name: 'ConflictError',
    });
    expect((await store.getHead('me|once'))!.lastSeq).toBe(3);
  });

  it('an append whose ordering response is lost answers its range once, and the next append follows it', async () => {
    const logs = new LogService(new DynamoStore(dynamo.client, tables));
    await logs.create('me', 'lost', 1);
    await append(logs, 'lost', 2);
    loseNext.add('UpdateItemCommand');
    expect(await append(logs, 'lost', 5)).toEqual({ firstSeq: 3, lastSeq: 7 });
    expect(await append(logs, 'lost', 1)).toEqual({ firstSeq: 8, lastSeq: 8 });
    expect((await logs.describe('me', 'lost')).lastSeq).toBe(8);
  });

  it('a create whose response is lost is its own: the SDK sends it again, the condition refuses it, and the token shows the item is ours', async () => {
    const store = new DynamoStore(dynamo.client, tables);
    const logs = new LogService(store);
    attempts = [];
    loseNext.add('PutItemCommand');
    // Not 409 LogExists for the caller's own create.
    await expect(logs.create('me', 'created-once', 1)).resolves.toMatchObject({ logId: 'created-once' });
    expect(attempts).toEqual(['PutItemCommand', 'PutItemCommand', 'GetItemCommand']);
    expect((await store.getHead('me|created-once'))!.lastSeq).toBe(0);
    // A second create of the same log is someone else's: still refused.
    await expect(logs.create('me', 'created-once', 1)).rejects.toMatchObject({ code: 'LogExists' });

    // The same for a session (its create was a 500: a ConflictError nothing caught).
    const sessions = new SessionService(store);
    loseNext.add('PutItemCommand');
    const s = await sessions.create('me', 'created-once', 'oldest', {
      ackTimeoutSeconds: 30,
      maxInFlight: 10,
      maxDeliveries: 5,
      idleTimeoutSeconds: 3600,
    });
    expect((await store.getSession(s.sessionId))!.state).toMatchObject({ owner: 'me', cursor: 1, version: 1 });
  });

  it('a throttled ordering update is retried by the SDK (DynamoDB did not apply it)', async () => {
    const store = new DynamoStore(dynamo.client, tables);
    const logs = new LogService(store);
    await logs.create('me', 'throttled', 1);
    attempts = [];
    throttleNext.add('UpdateItemCommand');
    expect(await append(logs, 'throttled', 2)).toEqual({ firstSeq: 1, lastSeq: 2 });
    expect(attempts.filter((c) => c === 'UpdateItemCommand')).toHaveLength(2);
    expect((await store.getHead('me|throttled'))!.tail.entries).toHaveLength(1);
  });
});
