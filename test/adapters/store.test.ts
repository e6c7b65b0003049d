/**
 * What the embedded store never does — throttle, leave batch items unprocessed — driven with
 * aws-sdk-client-mock, so the adapter's retries and the error mapping are exercised too.
 */
import { AppConfigServiceException } from '@aws-sdk/client-appconfig';
import { beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { ConditionalCheckFailedException, DynamoDBClient, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, BatchWriteCommand, DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoStore } from '../../lambdas/adapters/store';
import { ConflictError } from '../../lambdas/domain/errors';
import { makeHandler } from '../../lambdas/handlers/logs';
import { staticConfig } from '../../lambdas/domain/config';

const tables = { logs: 'L', records: 'R', sessions: 'S' };
const ddb = mockClient(DynamoDBDocumentClient);
let ops: string[];
const store = () => new DynamoStore(new DynamoDBClient({ region: 'us-east-1' }), tables, (op) => ops.push(op));

beforeEach(() => {
  ddb.reset();
  ops = [];
});

describe('DynamoStore against a mocked client', () => {
  it('turns a failed condition into ConflictError, and passes other errors through', async () => {
    ddb.on(UpdateCommand).rejectsOnce(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    await expect(store().trimTail('k', 1, 16, 17, { from: 1, latest: 0 })).rejects.toBeInstanceOf(ConflictError);
    ddb.reset();
    ddb.on(UpdateCommand).rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    await expect(store().trimTail('k', 1, 16, 17, { from: 1, latest: 0 })).rejects.toMatchObject({
      name: 'ProvisionedThroughputExceededException',
    });
  });

  it('retries the writes BatchWriteItem leaves unprocessed, and splits batches at 25', async () => {
    const chunks = Array.from({ length: 30 }, () => ({ count: 1, text: '[1]' }));
    let calls = 0;
    ddb.on(BatchWriteCommand).callsFake((input) => {
      calls++;
      const reqs = input.RequestItems.R;
      // The first call leaves its last two writes unprocessed.
      return calls === 1 ? { UnprocessedItems: { R: reqs.slice(-2) } } : {};
    });
    await store().putChunks('k', 'b', chunks, 9);
    const sent = ddb.commandCalls(BatchWriteCommand).map((c) => c.args[0].input.RequestItems!.R!.length);
    expect(sent).toEqual([25, 2, 5]);
  });

  it('retries the keys BatchGetItem leaves unprocessed and merges the answers', async () => {
    ddb
      .on(BatchGetCommand)
      .resolvesOnce({
        Responses: { S: [] },
        UnprocessedKeys: { L: { Keys: [{ pk: 'log' }], ConsistentRead: true }, S: { Keys: [{ pk: 's-1' }], ConsistentRead: true } },
      })
      .resolvesOnce({
        Responses: {
          S: [
            {
              pk: 's-1',
              o: 'me',
              lid: 'x',
              lk: 'log',
              set: { ackTimeoutSeconds: 1, maxInFlight: 1, maxDeliveries: 1, idleTimeoutSeconds: 60 },
              c: 1,
              b: 1,
              cur: 3,
              C: [[2, 9]],
              A: new Set(['1-1@5']),
              e: 2,
              v: 3,
            },
          ],
          L: [{ pk: 'log', o: 'me', lid: 'x', ret: 1, c: 1, last: 7 }],
        },
      });
    const got = await store().getSessionWithHead('s-1', 'log');
    expect(got.session).toMatchObject({
      state: { sessionId: 's-1', version: 3, cursor: 1, leases: [], dead: [] },
      claims: [{ n: 2, leaseMs: 9 }],
      acks: [{ from: 1, to: 1, atMs: 5 }],
    });
    expect(got.head).toMatchObject({ lastSeq: 7 });
    expect(ops).toEqual(['getSessionWithHead', 'getSessionWithHead']);
    // The session strongly consistent (a claim bounded by a stale copy would be refused); the head not.
    const first = ddb.commandCalls(BatchGetCommand)[0]!.args[0].input.RequestItems!;
    expect(first.S!.ConsistentRead).toBe(true);
    expect(first.L!.ConsistentRead).toBe(false);
  });

  const GET_LOG = {
    routeKey: 'GET /logs/{logId}',
    pathParameters: { logId: 'x' },
    requestContext: { authorizer: { iam: { userArn: 'arn:aws:iam::1:user/a' } } },
  } as never;

  it('maps storage throttling to 503 StorageThrottled with retry-after, not a 500', async () => {
    const h = makeHandler({ store: store(), clock: { now: () => Date.now() }, config: staticConfig() });
    ddb.onAnyCommand().rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    const res = await h(GET_LOG);
    expect(res.statusCode).toBe(503);
    expect(res.headers?.['retry-after']).toBe('1');
    expect(JSON.parse(res.body!).error.code).toBe('StorageThrottled');
  });

  it("names another service's throttle (AppConfig's, on the admin routes) as that, not as storage's", async () => {
    const throttling = {
      forKey: async () => {
        throw new AppConfigServiceException({ name: 'ThrottlingException', $fault: 'client', $metadata: {}, message: 'Rate exceeded' });
      },
    };
    const h = makeHandler({ store: store(), clock: { now: () => Date.now() }, config: throttling as never });
    const res = await h(GET_LOG);
    expect(res.statusCode).toBe(503);
    expect(res.headers?.['retry-after']).toBe('1');
    expect(JSON.parse(res.body!).error).toMatchObject({
      code: 'ServiceThrottled',
      message: expect.stringMatching(/AWS service .* throttling/),
    });
  });
});
