import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { describe, expect, it } from 'vitest';

import {
  LocalCloudWatch,
  alarmsFromTemplate,
  evaluateAlarm,
  evaluateAlarmInStore,
  type AlarmDefinition,
  type AlarmState,
  type AlarmStateChange,
  type TreatMissingData,
} from '../../local/cloudwatch/alarms';
import { MetricStore } from '../../local/cloudwatch/metrics';

const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);
const MIN = 60_000;
const NS = 'Logrelay';
const STATES: AlarmState[] = ['OK', 'ALARM', 'INSUFFICIENT_DATA'];

const base = (extra: Partial<AlarmDefinition> = {}): AlarmDefinition => ({
  AlarmName: 'a',
  Namespace: NS,
  MetricName: 'Errors',
  Statistic: 'Sum',
  Period: 300,
  EvaluationPeriods: 3,
  Threshold: 10,
  ComparisonOperator: 'GreaterThanThreshold',
  ...extra,
});

/**
 * Turns a docs row such as "0 - X - X" (oldest on the left, most recent on the right, as the docs print them) into
 * evaluation slots, newest first. X = 20 (breaching, threshold 10), 0 = 0 (not breaching), - = missing.
 */
function row(text: string): (number | null)[] {
  return text
    .split(' ')
    .map((c) => (c === 'X' ? 20 : c === '0' ? 0 : null))
    .reverse();
}

/*
 * The two tables of "How alarm state is evaluated when data is missing", in
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html
 * (Period 5 minutes, Evaluation Periods 3, evaluation range 5). 'retain' = "Retain current state".
 * Columns: data points, # of data points that must be filled, MISSING, IGNORE, BREACHING, NOT BREACHING.
 */
type Expected = AlarmState | 'retain';
const THREE_OF_THREE: [string, number, Expected, Expected, Expected, Expected][] = [
  ['0 - X - X', 0, 'OK', 'OK', 'OK', 'OK'],
  ['0 - - - -', 2, 'OK', 'OK', 'OK', 'OK'],
  ['- - - - -', 3, 'INSUFFICIENT_DATA', 'retain', 'ALARM', 'OK'],
  ['0 X X - X', 0, 'ALARM', 'ALARM', 'ALARM', 'ALARM'],
  ['- - X - -', 2, 'ALARM', 'retain', 'ALARM', 'OK'],
];
const TWO_OF_THREE: [string, number, Expected, Expected, Expected, Expected][] = [
  ['0 - X - X', 0, 'ALARM', 'ALARM', 'ALARM', 'ALARM'],
  ['0 0 X 0 X', 0, 'ALARM', 'ALARM', 'ALARM', 'ALARM'],
  ['0 - X - -', 1, 'OK', 'OK', 'ALARM', 'OK'],
  ['- - - - 0', 2, 'OK', 'OK', 'ALARM', 'OK'],
  ['- - - X -', 2, 'ALARM', 'retain', 'ALARM', 'OK'],
];
const COLUMNS: TreatMissingData[] = ['missing', 'ignore', 'breaching', 'notBreaching'];

describe.each([
  ['3 out of 3', 3, THREE_OF_THREE],
  ['2 out of 3', 2, TWO_OF_THREE],
])('docs missing-data table, %s', (_name, datapointsToAlarm, table) => {
  const cases = table.flatMap(([points, fills, ...states]) => COLUMNS.map((treat, i) => ({ points, fills, treat, expected: states[i]! })));
  it.each(cases)('$points with $treat -> $expected', ({ points, fills, treat, expected }) => {
    const def = base({ DatapointsToAlarm: datapointsToAlarm, TreatMissingData: treat });
    for (const previous of STATES) {
      const result = evaluateAlarm(def, previous, row(points));
      expect(result.state).toBe(expected === 'retain' ? previous : expected);
    }
    if (treat === 'breaching' || treat === 'notBreaching') {
      expect(evaluateAlarm(def, 'OK', row(points)).filledCount).toBe(fills);
    }
  });
});

describe('evaluateAlarm', () => {
  it('treats 0 - - - - then - - - - - as the docs narrate for breaching (OK, then ALARM)', () => {
    // "The next time this alarm is evaluated, if the data is still missing it will go to ALARM, as that
    // non-breaching data point will no longer be in the evaluation range."
    const store = new MetricStore();
    const def = base({ Period: 60, TreatMissingData: 'breaching' });
    store.putDatapoints(NS, 'Errors', {}, [{ timestampMs: T0 + 1000, value: 0 }]);
    // At T0+5m the range is minutes 0..4 (5 periods): 0 - - - -
    const first = evaluateAlarmInStore(store, def, 'INSUFFICIENT_DATA', T0 + 5 * MIN);
    expect(first.window.slots.map((s) => s.value)).toEqual([null, null, null, null, 0]);
    expect(first.state).toBe('OK');
    expect(first.breachingCount).toBe(2);
    const second = evaluateAlarmInStore(store, def, first.state, T0 + 6 * MIN);
    expect(second.state).toBe('ALARM');
    expect(second.breachingCount).toBe(3);
  });

  it('does not alarm prematurely on - - - - X or - - - X - (3 of 3, missing)', () => {
    // "Avoiding premature transitions to alarm state"
    const def = base({ TreatMissingData: 'missing' });
    expect(evaluateAlarm(def, 'OK', row('- - - - X')).state).toBe('OK');
    expect(evaluateAlarm(def, 'OK', row('- - - X -')).state).toBe('OK');
    const premature = evaluateAlarm(def, 'OK', row('- - X - -'));
    expect(premature.state).toBe('ALARM');
    expect(premature.rule).toBe('premature-alarm');
  });

  it('uses the most recent datapoints, reaching back past missing periods when needed', () => {
    const def = base({ TreatMissingData: 'breaching' });
    // Newest first: 0, missing, X, X, X: the three most recent real datapoints are 0, X, X -> 2 of 3 -> OK,
    // even though the three older ones are all breaching.
    const result = evaluateAlarm(def, 'ALARM', [0, null, 20, 20, 20]);
    expect(result.state).toBe('OK');
    expect(result.evaluatedDatapoints.map((p) => p.age)).toEqual([1, 3, 4]);
    expect(result.filledCount).toBe(0);
  });

  it('alarms on M out of N when DatapointsToAlarm < EvaluationPeriods, not necessarily consecutive', () => {
    const def = base({ EvaluationPeriods: 3, DatapointsToAlarm: 2 });
    expect(evaluateAlarm(def, 'OK', row('X 0 X')).state).toBe('ALARM');
    expect(evaluateAlarm(def, 'OK', row('X X 0')).state).toBe('ALARM');
    expect(evaluateAlarm(def, 'OK', row('0 X 0')).state).toBe('OK');
    // Only the last 3 of 5 real datapoints count: X X | 0 0 X -> 1 of 3.
    const older = evaluateAlarm(def, 'ALARM', row('X X 0 0 X'));
    expect(older.state).toBe('OK');
    expect(older.breachingCount).toBe(1);
    const m4of5 = base({ EvaluationPeriods: 5, DatapointsToAlarm: 4 });
    expect(evaluateAlarm(m4of5, 'OK', row('X X 0 X X')).state).toBe('ALARM');
    expect(evaluateAlarm(m4of5, 'OK', row('X 0 0 X X')).state).toBe('OK');
  });

  it.each([
    // [operator, value, breaching?] with Threshold 10
    ['GreaterThanThreshold', 10, false],
    ['GreaterThanThreshold', 10.001, true],
    ['GreaterThanThreshold', 9.999, false],
    ['GreaterThanOrEqualToThreshold', 10, true],
    ['GreaterThanOrEqualToThreshold', 9.999, false],
    ['LessThanThreshold', 10, false],
    ['LessThanThreshold', 9.999, true],
    ['LessThanThreshold', 10.001, false],
    ['LessThanOrEqualToThreshold', 10, true],
    ['LessThanOrEqualToThreshold', 10.001, false],
  ] as const)('%s at value %d: breaching = %s', (op, value, breaching) => {
    const def = base({ ComparisonOperator: op, EvaluationPeriods: 1 });
    const result = evaluateAlarm(def, 'INSUFFICIENT_DATA', [value]);
    expect(result.state).toBe(breaching ? 'ALARM' : 'OK');
    expect(result.breachingCount).toBe(breaching ? 1 : 0);
  });

  it('writes a reason with the numbers', () => {
    const def = base({ EvaluationPeriods: 3, DatapointsToAlarm: 2 });
    const alarm = evaluateAlarm(def, 'OK', [
      { timestampMs: T0 + 10 * MIN, value: 12 },
      { timestampMs: T0 + 5 * MIN, value: 3 },
      { timestampMs: T0, value: 40.5 },
    ]);
    expect(alarm.reason).toBe(
      'Threshold Crossed: 2 out of the last 3 datapoints [12.0 (2024-01-01T00:10:00.000Z), 3.0 (2024-01-01T00:05:00.000Z), ' +
        '40.5 (2024-01-01T00:00:00.000Z)] were greater than the threshold (10.0) (minimum 2 datapoints for OK -> ALARM transition).',
    );
    const ok = evaluateAlarm(def, 'ALARM', [1, 2, 30]);
    expect(ok.reason).toBe(
      'Threshold Crossed: 2 out of the last 3 datapoints [1.0, 2.0, 30.0] were not greater than the threshold (10.0); 1 breaching, 2 needed for ALARM.',
    );
    expect(evaluateAlarm(def, 'OK', [null, null, null, null, null]).reason).toBe('Insufficient Data: 5 datapoints were unknown.');
  });

  it('keeps the current state on AWS/DynamoDB metrics when TreatMissingData is not set', () => {
    const def = base({ Namespace: 'AWS/DynamoDB', MetricName: 'ThrottledRequests' });
    expect(evaluateAlarm(def, 'ALARM', [null, null, null, null, null]).state).toBe('ALARM');
    expect(evaluateAlarm(base(), 'ALARM', [null, null, null, null, null]).state).toBe('INSUFFICIENT_DATA');
  });

  it('rejects invalid definitions', () => {
    expect(() => evaluateAlarm(base({ DatapointsToAlarm: 4 }), 'OK', [])).toThrow(/DatapointsToAlarm/);
    expect(() => evaluateAlarm(base({ ComparisonOperator: 'GreaterThanUpperThreshold' }), 'OK', [])).toThrow(/ComparisonOperator/);
    expect(() => evaluateAlarm(base({ TreatMissingData: 'zero' }), 'OK', [])).toThrow(/TreatMissingData/);
  });
});

describe('LocalCloudWatch', () => {
  const clock = (start: number) => {
    let now = start;
    return { now: () => now, set: (t: number) => (now = t) };
  };

  it('moves ALARM -> OK as new datapoints arrive, and records the transitions', () => {
    const c = clock(T0);
    const cw = new LocalCloudWatch({ now: c.now });
    const changes: AlarmStateChange[] = [];
    cw.onStateChange((change) => changes.push(change));
    cw.putMetricAlarm({
      AlarmName: 'append-errors',
      Namespace: NS,
      MetricName: 'AppendErrors',
      Dimensions: [{ Name: 'Stage', Value: 'dev' }],
      Statistic: 'Sum',
      Period: 60,
      EvaluationPeriods: 2,
      Threshold: 5,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    const describe1 = () => cw.describeAlarms({ AlarmNames: ['append-errors'] }).MetricAlarms[0]!;
    expect(describe1()).toMatchObject({ StateValue: 'OK', DatapointsToAlarm: 2, TreatMissingData: 'notBreaching' });

    const put = (minute: number, value: number) =>
      cw.putMetricData({
        Namespace: NS,
        MetricData: [
          {
            MetricName: 'AppendErrors',
            Dimensions: [{ Name: 'Stage', Value: 'dev' }],
            Timestamp: new Date(T0 + minute * MIN + 5_000),
            Value: value,
          },
        ],
      });
    put(0, 4);
    put(0, 6); // minute 0: Sum 10
    put(1, 7); // minute 1: Sum 7
    c.set(T0 + MIN + 30_000); // minute 1 is not complete yet: only minute 0 (10) and fills -> 1 of 2 -> OK
    expect(describe1().StateValue).toBe('OK');

    c.set(T0 + 2 * MIN);
    const alarm = describe1();
    expect(alarm.StateValue).toBe('ALARM');
    expect(alarm.StateUpdatedTimestamp).toEqual(new Date(T0 + 2 * MIN));
    expect(alarm.StateReason).toContain('2 out of the last 2 datapoints [7.0 (2024-01-01T00:01:00.000Z), 10.0 (2024-01-01T00:00:00.000Z)]');
    expect(alarm.StateReason).toContain('greater than the threshold (5.0)');
    expect(JSON.parse(alarm.StateReasonData!)).toMatchObject({
      period: 60,
      threshold: 5,
      evaluatedDatapoints: [{ value: 7 }, { value: 10 }],
    });

    put(2, 1);
    c.set(T0 + 3 * MIN); // minutes 2 (1) and 1 (7): 1 of 2 breaching -> OK
    expect(cw.tick().map((x) => [x.oldState, x.newState])).toEqual([['ALARM', 'OK']]);
    expect(describe1()).toMatchObject({ StateValue: 'OK', StateUpdatedTimestamp: new Date(T0 + 3 * MIN) });
    expect(describe1().StateReason).toContain('1 breaching, 2 needed for ALARM');

    c.set(T0 + 3 * MIN + 10_000); // no change: the timestamp stays
    expect(describe1().StateUpdatedTimestamp).toEqual(new Date(T0 + 3 * MIN));
    expect(changes.map((x) => `${x.oldState}->${x.newState}`)).toEqual(['INSUFFICIENT_DATA->OK', 'OK->ALARM', 'ALARM->OK']);
  });

  it('starts in INSUFFICIENT_DATA and keeps the state when an alarm is replaced', () => {
    const c = clock(T0);
    const cw = new LocalCloudWatch({ now: c.now });
    cw.putMetricAlarm(base({ AlarmName: 'x', Period: 60 }));
    expect(cw.describeAlarms().MetricAlarms[0]).toMatchObject({
      StateValue: 'INSUFFICIENT_DATA',
      StateReason: 'Insufficient Data: 5 datapoints were unknown.',
    });
    cw.setAlarmState({ AlarmName: 'x', StateValue: 'ALARM', StateReason: 'testing' });
    cw.putMetricAlarm(base({ AlarmName: 'x', Period: 60, TreatMissingData: 'ignore' }));
    expect(cw.describeAlarms({ AlarmNames: ['x'] }).MetricAlarms[0]).toMatchObject({
      StateValue: 'ALARM',
      StateReason: 'testing',
      TreatMissingData: 'ignore',
    });
    cw.deleteAlarms({ AlarmNames: ['x'] });
    expect(cw.describeAlarms().MetricAlarms).toEqual([]);
  });

  it('evaluates metric math alarms (Metrics with one ReturnData: true)', () => {
    const c = clock(T0 + 3 * MIN);
    const cw = new LocalCloudWatch({ now: c.now });
    const metric = (Id: string, MetricName: string) => ({
      Id,
      ReturnData: false,
      MetricStat: { Metric: { Namespace: NS, MetricName, Dimensions: [{ Name: 'Stage', Value: 'dev' }] }, Period: 60, Stat: 'Sum' },
    });
    cw.putMetricAlarm({
      AlarmName: 'error-rate',
      Metrics: [
        { Id: 'rate', Expression: '100 * FILL(errors, 0) / requests', ReturnData: true },
        metric('errors', 'Errors'),
        metric('requests', 'Requests'),
      ],
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
      Threshold: 5,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    const data = (MetricName: string, minute: number, Value: number) => ({
      MetricName,
      Dimensions: [{ Name: 'Stage', Value: 'dev' }],
      Timestamp: T0 + minute * MIN,
      Value,
    });
    // minute 0: 1/20 = 5 %, minute 1: no errors -> 0 %, minute 2: 3/50 = 6 %  -> 2 of 3 >= 5 -> ALARM
    cw.putMetricData({
      Namespace: NS,
      MetricData: [data('Requests', 0, 20), data('Errors', 0, 1), data('Requests', 1, 40), data('Requests', 2, 50), data('Errors', 2, 3)],
    });
    const alarm = cw.describeAlarms().MetricAlarms[0]!;
    expect(alarm.StateValue).toBe('ALARM');
    expect(cw.lastEvaluation('error-rate')!.evaluatedDatapoints.map((p) => p.value)).toEqual([6, 0, 5]);
  });

  it('divides periods by the time scale for bucketing and evaluation', () => {
    const c = clock(T0);
    // 60x faster: a 60 s period lasts 1 s of the stand-in's clock.
    const cw = new LocalCloudWatch({ now: c.now, timeScale: 60 });
    const put = (offsetMs: number, Value: number) =>
      cw.putMetricData({ Namespace: NS, MetricData: [{ MetricName: 'Lag', Timestamp: T0 + offsetMs, Value }] });
    put(100, 1);
    put(900, 2);
    put(1_500, 4);
    put(2_200, 8);
    const out = cw.getMetricData({
      MetricDataQueries: [{ Id: 'lag', MetricStat: { Metric: { Namespace: NS, MetricName: 'Lag' }, Period: 60, Stat: 'Sum' } }],
      StartTime: new Date(T0),
      EndTime: new Date(T0 + 3_000),
    });
    expect(out.MetricDataResults[0]!.Timestamps).toEqual([new Date(T0 + 2_000), new Date(T0 + 1_000), new Date(T0)]);
    expect(out.MetricDataResults[0]!.Values).toEqual([8, 4, 3]);

    cw.putMetricAlarm({
      AlarmName: 'lag',
      Namespace: NS,
      MetricName: 'Lag',
      Statistic: 'Maximum',
      Period: 60,
      EvaluationPeriods: 3,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    c.set(T0 + 2_999); // two complete scaled minutes (2, 4): not enough to alarm on 3 of 3
    expect(cw.describeAlarms().MetricAlarms[0]!.StateValue).toBe('OK');
    c.set(T0 + 3_000); // three complete scaled minutes (2, 4, 8) -> ALARM
    const alarm = cw.describeAlarms().MetricAlarms[0]!;
    expect(alarm.StateValue).toBe('ALARM');
    expect(alarm.Period).toBe(60);
    expect(cw.lastEvaluation('lag')!.window).toMatchObject({ periodSeconds: 60, periodMs: 1_000, endMs: T0 + 3_000, startMs: T0 - 2_000 });
  });

  it('takes alarms straight from a synthesized CDK template', () => {
    const stack = new Stack(new App(), 'AlarmStack');
    const errors = new cloudwatch.Metric({
      namespace: NS,
      metricName: 'Errors',
      dimensionsMap: { FunctionName: 'append' },
      statistic: 'Sum',
      period: Duration.minutes(1),
    });
    const invocations = new cloudwatch.Metric({
      namespace: NS,
      metricName: 'Invocations',
      dimensionsMap: { FunctionName: 'append' },
      statistic: 'Sum',
      period: Duration.minutes(1),
    });
    new cloudwatch.Alarm(stack, 'ErrorRate', {
      metric: new cloudwatch.MathExpression({
        expression: 'errors / invocations',
        usingMetrics: { errors, invocations },
        period: Duration.minutes(1),
      }),
      threshold: 0.1,
      evaluationPeriods: 2,
      datapointsToAlarm: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(stack, 'P99', {
      metric: new cloudwatch.Metric({ namespace: NS, metricName: 'Latency', statistic: 'p99', period: Duration.minutes(1) }),
      threshold: 100,
      evaluationPeriods: 1,
    });
    const defs = alarmsFromTemplate(Template.fromStack(stack).toJSON());
    expect(defs).toHaveLength(2);

    const c = clock(T0 + 2 * MIN);
    const cw = new LocalCloudWatch({ now: c.now });
    cw.loadAlarms(defs);
    const put = (MetricName: string, minute: number, Value: number) =>
      cw.putMetricData({
        Namespace: NS,
        MetricData: [{ MetricName, Dimensions: [{ Name: 'FunctionName', Value: 'append' }], Timestamp: T0 + minute * MIN, Value }],
      });
    put('Invocations', 1, 10);
    put('Errors', 1, 2); // 0.2 > 0.1
    cw.putMetricData({
      Namespace: NS,
      MetricData: [{ MetricName: 'Latency', Timestamp: T0 + MIN, Values: [10, 20, 150], Counts: [98, 1, 1] }],
    });
    const states = Object.fromEntries(cw.describeAlarms().MetricAlarms.map((a) => [a.AlarmName.replace(/[0-9A-F]{8}$/, ''), a.StateValue]));
    // p99 of 100 samples is rank 99 = 20, not above 100.
    expect(states).toEqual({ ErrorRate: 'ALARM', P99: 'OK' });
  });
});
