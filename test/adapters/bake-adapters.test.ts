/**
 * The bake's AWS adapters against mocked clients (aws-sdk-client-mock): CloudWatch GetMetricData
 * for the arms, AppConfig hosted versions, and the Control table's conditional writes.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { CloudWatchClient, GetMetricDataCommand, type MetricDataQuery, type MetricDataResult } from '@aws-sdk/client-cloudwatch';
import {
  AppConfigClient,
  BadRequestException,
  CreateHostedConfigurationVersionCommand,
  GetHostedConfigurationVersionCommand,
  ListHostedConfigurationVersionsCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-appconfig';
import { ConditionalCheckFailedException, DynamoDBClient, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { CloudWatchArmMetrics, totalsOf } from '../../lambdas/adapters/cloudwatch';
import { AppConfigVersions, type AppConfigIds } from '../../lambdas/adapters/appconfig';
import { DynamoControlStore } from '../../lambdas/adapters/control';
import { ConflictError } from '../../lambdas/domain/errors';
import { INITIAL_ROLLOUT } from '../../lambdas/domain/config';
import { newBake, BAKE_DEFAULTS, type RolloutItem } from '../../lambdas/domain/bake';

const cw = mockClient(CloudWatchClient);
const ac = mockClient(AppConfigClient);
const ddb = mockClient(DynamoDBDocumentClient);

beforeEach(() => {
  cw.reset();
  ac.reset();
  ddb.reset();
});

// ---------------------------------------------------------------------------------------------
// CloudWatch
// ---------------------------------------------------------------------------------------------

describe('CloudWatchArmMetrics', () => {
  const metrics = () => new CloudWatchArmMetrics(new CloudWatchClient({ region: 'us-east-1' }));
  const T = 1_700_000_000_000; // a multiple of 10 s
  /** One query's result, its values at the given period offsets (s) from T, in the order given. */
  const res = (Id: string, points: [offsetSeconds: number, value: number][]): MetricDataResult => ({
    Id,
    Values: points.map(([, v]) => v),
    Timestamps: points.map(([s]) => new Date(T + s * 1000)),
    StatusCode: 'Complete',
  });
  const window = () =>
    cw.commandCalls(GetMetricDataCommand).map((c) => ({ start: c.args[0].input.StartTime, end: c.args[0].input.EndTime }));
  const empty = { requests: 0, errors4xx: 0, errors5xx: 0 };

  it('sends one GetMetricData with the 8 arm queries, 10 s periods, the arm dimensions, and an aligned window', async () => {
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const got = await metrics().armSeries(T + 3, T + 65_000);
    const calls = cw.commandCalls(GetMetricDataCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    // Whole periods inside [fromMs, toMs]: start aligned up (no traffic from before fromMs is
    // counted), end aligned down (no period still filling in is counted).
    expect(input.StartTime).toEqual(new Date(T + 10_000));
    expect(input.EndTime).toEqual(new Date(T + 60_000));
    expect(input.NextToken).toBeUndefined();
    const queries = input.MetricDataQueries!;
    expect(queries).toHaveLength(8);
    const shape = (q: MetricDataQuery) => {
      const ms = q.MetricStat!;
      const dims = Object.fromEntries((ms.Metric!.Dimensions ?? []).map((d) => [d.Name, d.Value]));
      return { ns: ms.Metric!.Namespace, name: ms.Metric!.MetricName, stat: ms.Stat, period: ms.Period, dims, ret: q.ReturnData };
    };
    const got8 = queries.map(shape).sort((a, b) => `${a.dims.Arm}${a.name}`.localeCompare(`${b.dims.Arm}${b.name}`));
    const want = (['control', 'experiment'] as const).flatMap((Arm) =>
      [
        ['Errors4xx', 'Sum'],
        ['Errors5xx', 'Sum'],
        ['Latency', 'p99'],
        ['Requests', 'Sum'],
      ].map(([name, stat]) => ({ ns: 'Logrelay', name, stat, period: 10, dims: { service: 'logrelay', Arm }, ret: true })),
    );
    expect(got8).toEqual(want);
    expect(new Set(queries.map((q) => q.Id)).size).toBe(8);
    // One entry per period of the window, every one empty (no data is 0 requests, not missing).
    expect(got).toEqual({ control: Array(5).fill(empty), experiment: Array(5).fill(empty) });
  });

  it('starts exactly at fromMs on a boundary, ends at the boundary at or before toMs, and asks for at least one period', async () => {
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const lengths = [
      await metrics().armSeries(T, T),
      await metrics().armSeries(T + 9_999, T + 10_000),
      await metrics().armSeries(T, T + 19_999),
      await metrics().armSeries(T, T + 20_000),
    ].map((s) => [s.control.length, s.experiment.length]);
    expect(window()).toEqual([
      { start: new Date(T), end: new Date(T + 10_000) },
      { start: new Date(T + 10_000), end: new Date(T + 20_000) },
      { start: new Date(T), end: new Date(T + 10_000) },
      { start: new Date(T), end: new Date(T + 20_000) },
    ]);
    expect(lengths).toEqual([
      [1, 1],
      [1, 1],
      [1, 1],
      [2, 2],
    ]);
  });

  it('aligns to the scaled period under a time scale', async () => {
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const got = await new CloudWatchArmMetrics(new CloudWatchClient({ region: 'us-east-1' }), 10).armSeries(T + 1, T + 5_500);
    expect(window()).toEqual([{ start: new Date(T + 1_000), end: new Date(T + 5_000) }]);
    expect(got.control).toHaveLength(4);
  });

  it('places values by their timestamps (out of order, with gaps), merges pages, and keeps p99 only where there are requests', async () => {
    const tokens = (): string[] => cw.commandCalls(GetMetricDataCommand).map((c) => String(c.args[0].input.NextToken));
    // CloudWatch returns newest first by default; the pages split the datapoints between them.
    cw.on(GetMetricDataCommand)
      .resolvesOnce({
        MetricDataResults: [
          res('control_requests', [
            [20, 300],
            [0, 100],
          ]),
          res('control_p99', [
            [20, 60],
            [0, 40],
          ]),
          res('control_errors5xx', [[20, 2]]),
          res('experiment_requests', [
            [30, 30],
            [0, 10],
          ]),
          // Period 10 s has a p99 but no requests datapoint: no p99 there.
          res('experiment_p99', [
            [30, 120],
            [0, 80],
            [10, 7],
          ]),
          res('experiment_errors4xx', [[0, 4]]),
        ],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        MetricDataResults: [
          res('control_requests', [[30, 200]]),
          res('control_p99', [[30, 95.5]]),
          res('control_errors4xx', [
            [30, 1],
            [0, 3],
          ]),
          res('experiment_errors5xx', [[30, 5]]),
          // Period 20 s: zero requests and a p99 datapoint: no p99 there.
          res('experiment_requests', [[20, 0]]),
          res('experiment_p99', [[20, 9]]),
        ],
      });
    const got = await metrics().armSeries(T, T + 40_000);
    expect(tokens()).toEqual(['undefined', 'page-2']);
    // The second page asks for the same queries and window.
    const [first, second] = cw.commandCalls(GetMetricDataCommand).map((c) => c.args[0].input);
    expect(second!.MetricDataQueries).toEqual(first!.MetricDataQueries);
    expect(second!.StartTime).toEqual(first!.StartTime);
    expect(second!.EndTime).toEqual(first!.EndTime);
    expect(got).toEqual({
      control: [
        { requests: 100, errors4xx: 3, errors5xx: 0, p99Ms: 40 },
        empty, // no datapoint at all in period 1
        { requests: 300, errors4xx: 0, errors5xx: 2, p99Ms: 60 },
        { requests: 200, errors4xx: 1, errors5xx: 0, p99Ms: 95.5 },
      ],
      experiment: [
        { requests: 10, errors4xx: 4, errors5xx: 0, p99Ms: 80 },
        empty,
        empty,
        { requests: 30, errors4xx: 0, errors5xx: 5, p99Ms: 120 },
      ],
    });
    expect('p99Ms' in got.experiment[1]!).toBe(false);
    expect('p99Ms' in got.experiment[2]!).toBe(false);
  });

  it('aligns the periods to the window start, not to the first datapoint', async () => {
    cw.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        res('experiment_requests', [
          [50, 7],
          [30, 5],
        ]),
        res('control_requests', [[40, 9]]),
      ],
    });
    // Window [T + 20 s, T + 60 s): periods at 20, 30, 40 and 50 s.
    const got = await metrics().armSeries(T + 15_000, T + 60_000);
    expect(got.experiment.map((p) => p.requests)).toEqual([0, 5, 0, 7]);
    expect(got.control.map((p) => p.requests)).toEqual([0, 0, 9, 0]);
  });
});

describe('totalsOf', () => {
  it("sums an arm's counts and reports the worst period's p99 among periods with requests", () => {
    expect(
      totalsOf([
        { requests: 100, errors4xx: 3, errors5xx: 0, p99Ms: 40 },
        { requests: 0, errors4xx: 0, errors5xx: 0, p99Ms: 900 }, // a p99 without requests does not count
        { requests: 300, errors5xx: 2, p99Ms: 95.5 }, // errors4xx absent: 0
        { requests: 200, errors4xx: 1, errors5xx: 7 }, // no p99 reported
        { requests: 5, errors4xx: 0, errors5xx: 0, p99Ms: 60 },
      ]),
    ).toEqual({ requests: 605, errors4xx: 4, errors5xx: 9, p99Ms: 95.5 });
  });

  it('omits p99 when no period has both requests and a p99, and is all zeros for no periods', () => {
    const none = totalsOf([
      { requests: 0, errors5xx: 0, p99Ms: 12 },
      { requests: 4, errors4xx: 1, errors5xx: 1 },
    ]);
    expect(none).toEqual({ requests: 4, errors4xx: 1, errors5xx: 1 });
    expect('p99Ms' in none).toBe(false);
    expect(totalsOf([])).toEqual({ requests: 0, errors4xx: 0, errors5xx: 0 });
  });
});

// ---------------------------------------------------------------------------------------------
// AppConfig
// ---------------------------------------------------------------------------------------------

describe('AppConfigVersions', () => {
  const ids: AppConfigIds = { applicationId: 'app1', profiles: { delivery: 'prof-d', limits: 'prof-l' } };
  const versions = () => new AppConfigVersions(new AppConfigClient({ region: 'us-east-1' }), ids);
  // What the SDK hands back as Content (a Uint8Array with string helpers); the adapter reads the bytes.
  const bytes = (s: string) => new TextEncoder().encode(s) as Uint8Array & { transformToString(): string };

  it('get reads the version by number from the profile and parses its JSON', async () => {
    ac.on(GetHostedConfigurationVersionCommand).resolves({ Content: bytes('{"maxRecordsPerAppend":1}'), ContentType: 'application/json' });
    expect(await versions().get('limits', '12')).toEqual({ maxRecordsPerAppend: 1 });
    expect(ac.commandCalls(GetHostedConfigurationVersionCommand)[0]!.args[0].input).toEqual({
      ApplicationId: 'app1',
      ConfigurationProfileId: 'prof-l',
      VersionNumber: 12,
    });
  });

  it('get returns undefined on ResourceNotFoundException, and passes other errors through', async () => {
    ac.on(GetHostedConfigurationVersionCommand)
      .rejectsOnce(new ResourceNotFoundException({ message: 'no such version', $metadata: {} }))
      .rejectsOnce(new BadRequestException({ message: 'bad', $metadata: {} }));
    expect(await versions().get('delivery', '99')).toBeUndefined();
    await expect(versions().get('delivery', '2')).rejects.toMatchObject({ name: 'BadRequestException' });
  });

  it('get returns undefined for a version that is not a positive whole number, without asking AppConfig', async () => {
    ac.on(GetHostedConfigurationVersionCommand).resolves({ Content: bytes('{}') });
    for (const v of ['', 'abc', '0', '-1', '1.5', '1e400', 'NaN', '9007199254740993'])
      expect({ v, got: await versions().get('limits', v) }).toEqual({ v, got: undefined });
    expect(ac.commandCalls(GetHostedConfigurationVersionCommand)).toHaveLength(0);
  });

  it('create stores JSON with ContentType application/json and returns the new number', async () => {
    ac.on(CreateHostedConfigurationVersionCommand).resolves({ VersionNumber: 7 });
    const content = { maxBatchRecords: 10, longPollIntervalMs: 100 };
    expect(await versions().create('delivery', content, 'tune receive')).toBe('7');
    const input = ac.commandCalls(CreateHostedConfigurationVersionCommand)[0]!.args[0].input;
    expect(input.ContentType).toBe('application/json');
    expect(input.ApplicationId).toBe('app1');
    expect(input.ConfigurationProfileId).toBe('prof-d');
    expect(input.Description).toBe('tune receive');
    expect(JSON.parse(Buffer.from(input.Content as Uint8Array).toString('utf8'))).toEqual(content);
  });

  it('list pages through every version and returns them newest first', async () => {
    ac.on(ListHostedConfigurationVersionsCommand)
      .resolvesOnce({ Items: [{ VersionNumber: 1 }, { VersionNumber: 9 }, { VersionNumber: 2 }], NextToken: 't1' })
      .resolvesOnce({ Items: [{ VersionNumber: 10 }, { VersionNumber: 3 }], NextToken: 't2' })
      .resolvesOnce({ Items: [{ VersionNumber: 11 }] });
    expect(await versions().list('limits')).toEqual(['11', '10', '9', '3', '2', '1']);
    const tokens = ac.commandCalls(ListHostedConfigurationVersionsCommand).map((c) => c.args[0].input.NextToken);
    expect(tokens).toEqual([undefined, 't1', 't2']);
    expect(ac.commandCalls(ListHostedConfigurationVersionsCommand).every((c) => c.args[0].input.ConfigurationProfileId === 'prof-l')).toBe(
      true,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Control table
// ---------------------------------------------------------------------------------------------

describe('DynamoControlStore', () => {
  const store = () => new DynamoControlStore(new DynamoDBClient({ region: 'us-east-1' }), 'Control');
  const item = (rev: number): RolloutItem => ({
    state: { control: { delivery: '2', limits: '3' } },
    lock: { bakeId: 'b1', expiresAtMs: 1_700_000_000_000 },
    rev,
  });

  it('creates the rollout item only if none exists (rev 0), and stores rev 1', async () => {
    ddb.on(PutCommand).resolves({});
    const stored = await store().putRollout(item(0));
    expect(stored.rev).toBe(1);
    const input = ddb.commandCalls(PutCommand)[0]!.args[0].input;
    expect(input.TableName).toBe('Control');
    expect(input.ConditionExpression).toBe('attribute_not_exists(pk)');
    expect(input.ExpressionAttributeValues).toBeUndefined();
    expect(input.Item).toMatchObject({ rev: 1, s: item(0).state, lock: item(0).lock });
  });

  it('replaces the rollout item only at the expected rev, and stores rev + 1', async () => {
    ddb.on(PutCommand).resolves({});
    const stored = await store().putRollout(item(5));
    expect(stored).toEqual({ ...item(5), rev: 6 });
    const input = ddb.commandCalls(PutCommand)[0]!.args[0].input;
    expect(input.ConditionExpression).toBe('rev = :rev');
    expect(input.ExpressionAttributeValues).toEqual({ ':rev': 5 });
    expect(input.Item).toMatchObject({ rev: 6 });
  });

  it('maps a failed condition to ConflictError on both puts, and passes other errors through', async () => {
    ddb.on(PutCommand).rejects(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    await expect(store().putRollout(item(0))).rejects.toBeInstanceOf(ConflictError);
    await expect(store().putRollout(item(3))).rejects.toBeInstanceOf(ConflictError);
    const bake = newBake('b1', [{ profile: 'limits', version: '2' }], BAKE_DEFAULTS, 1_700_000_000_000);
    await expect(store().putBake(bake)).rejects.toBeInstanceOf(ConflictError);
    await expect(store().putBake({ ...bake, rev: 4 })).rejects.toBeInstanceOf(ConflictError);
    ddb.reset();
    ddb.on(PutCommand).rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    await expect(store().putRollout(item(3))).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException' });
  });

  it('puts bake records conditionally on their rev, too', async () => {
    ddb.on(PutCommand).resolves({});
    const bake = newBake('b1', [{ profile: 'limits', version: '2' }], BAKE_DEFAULTS, 1_700_000_000_000);
    expect((await store().putBake(bake)).rev).toBe(1);
    expect((await store().putBake({ ...bake, rev: 4 })).rev).toBe(5);
    const [create, replace] = ddb.commandCalls(PutCommand).map((c) => c.args[0].input);
    expect(create!.ConditionExpression).toBe('attribute_not_exists(pk)');
    expect(create!.Item).toMatchObject({ pk: 'bake#b1', rev: 1 });
    expect(replace!.ConditionExpression).toBe('rev = :rev');
    expect(replace!.ExpressionAttributeValues).toEqual({ ':rev': 4 });
    expect(replace!.Item).toMatchObject({ pk: 'bake#b1', rev: 5 });
    expect(create!.Item!.pk).not.toBe('rollout');
  });

  it('reads the initial state (rev 0) before any write, as a copy', async () => {
    ddb.on(GetCommand).resolves({});
    const got = await store().getRollout(true);
    expect(got).toEqual({ state: INITIAL_ROLLOUT, rev: 0 });
    got.state.control.limits = '99';
    expect(INITIAL_ROLLOUT.control.limits).toBe('1');
    expect(ddb.commandCalls(GetCommand)[0]!.args[0].input).toMatchObject({ Key: { pk: 'rollout' }, ConsistentRead: true });
  });

  it('reads back what it wrote', async () => {
    ddb.on(GetCommand).resolves({ Item: { pk: 'rollout', s: item(0).state, lock: item(0).lock, rev: 8 } });
    expect(await store().getRollout(false)).toEqual({ ...item(0), rev: 8 });
    ddb.on(GetCommand).resolves({ Item: { pk: 'rollout', s: item(0).state, rev: 2 } });
    const noLock = await store().getRollout(false);
    expect(noLock).toEqual({ state: item(0).state, rev: 2 });
    expect('lock' in noLock).toBe(false);
  });
});
