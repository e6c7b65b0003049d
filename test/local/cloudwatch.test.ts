import { Metrics, MetricResolution, MetricUnit } from '@aws-lambda-powertools/metrics';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { MetricStore, ValidationError, type MetricDataQuery } from '../../local/cloudwatch/metrics';

// A minute boundary; every expected value below is computed by hand from the inputs.
const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);
const MIN = 60_000;
const NS = 'Logrelay';

function stat(store: MetricStore, metricName: string, s: string, periodSeconds = 60, dimensions: Record<string, string> = {}) {
  return store.statistic({ namespace: NS, metricName, dimensions, stat: s, periodSeconds, startMs: T0, endMs: T0 + 4 * MIN });
}

describe('statistics per period', () => {
  const store = new MetricStore();
  // minute 0: 1, 2, 10, 3   minute 1: 5   minute 2: nothing   minute 3: 7, 7   minute 4 (outside the range): 100
  store.putDatapoints(NS, 'Latency', {}, [
    { timestampMs: T0 + 1_000, value: 1 },
    { timestampMs: T0 + 20_000, value: 2 },
    { timestampMs: T0 + 30_000, value: 10 },
    { timestampMs: T0 + 59_999, value: 3 },
    { timestampMs: T0 + MIN, value: 5 },
    { timestampMs: T0 + 3 * MIN, value: 7 },
    { timestampMs: T0 + 3 * MIN + 59_000, value: 7 },
    { timestampMs: T0 + 4 * MIN, value: 100 },
  ]);

  it.each([
    ['SampleCount', [4, 1, 2]],
    ['Sum', [16, 5, 14]],
    ['Average', [4, 5, 7]],
    ['Minimum', [1, 5, 7]],
    ['Maximum', [10, 5, 7]],
  ])('%s over 60 s periods, no datapoint for the empty minute', (s, values) => {
    expect(stat(store, 'Latency', s)).toEqual([
      { timestampMs: T0, value: values[0] },
      { timestampMs: T0 + MIN, value: values[1] },
      { timestampMs: T0 + 3 * MIN, value: values[2] },
    ]);
  });

  it('aggregates over longer periods', () => {
    // [T0, T0+2m): 1+2+10+3+5 = 21 over 5 samples; [T0+2m, T0+4m): 7+7
    expect(stat(store, 'Latency', 'Sum', 120)).toEqual([
      { timestampMs: T0, value: 21 },
      { timestampMs: T0 + 2 * MIN, value: 14 },
    ]);
    expect(stat(store, 'Latency', 'Average', 120)).toEqual([
      { timestampMs: T0, value: 4.2 },
      { timestampMs: T0 + 2 * MIN, value: 7 },
    ]);
  });

  it('rounds the start down to the period boundary and excludes the end', () => {
    const out = store.statistic({
      namespace: NS,
      metricName: 'Latency',
      stat: 'Sum',
      periodSeconds: 60,
      startMs: T0 + 30_000,
      endMs: T0 + MIN,
    });
    expect(out).toEqual([{ timestampMs: T0, value: 16 }]);
  });

  it('matches dimensions exactly, as CloudWatch does', () => {
    const s = new MetricStore();
    s.putDatapoints(NS, 'Appended', { Stage: 'dev', Route: 'append' }, [{ timestampMs: T0, value: 3 }]);
    s.putDatapoints(NS, 'Appended', { Stage: 'dev' }, [{ timestampMs: T0, value: 4 }]);
    s.putDatapoints(NS, 'Appended', {}, [{ timestampMs: T0, value: 5 }]);
    expect(stat(s, 'Appended', 'Sum', 60, { Stage: 'dev' })).toEqual([{ timestampMs: T0, value: 4 }]);
    expect(stat(s, 'Appended', 'Sum', 60, { Route: 'append', Stage: 'dev' })).toEqual([{ timestampMs: T0, value: 3 }]);
    expect(stat(s, 'Appended', 'Sum', 60)).toEqual([{ timestampMs: T0, value: 5 }]);
    expect(stat(s, 'Appended', 'Sum', 60, { Stage: 'prod' })).toEqual([]);
  });

  it('filters by unit when one is asked for', () => {
    const s = new MetricStore();
    s.putDatapoints(NS, 'Size', {}, [
      { timestampMs: T0, value: 1, unit: 'Bytes' },
      { timestampMs: T0, value: 1000, unit: 'Kilobytes' },
    ]);
    const q = { namespace: NS, metricName: 'Size', stat: 'Sum', periodSeconds: 60, startMs: T0, endMs: T0 + MIN };
    expect(s.statistic({ ...q, unit: 'Bytes' })).toEqual([{ timestampMs: T0, value: 1 }]);
    expect(s.statistic(q)).toEqual([{ timestampMs: T0, value: 1001 }]);
  });

  it('rejects unknown statistics', () => {
    expect(() => stat(store, 'Latency', 'Median')).toThrow(ValidationError);
  });
});

describe('percentiles (nearest rank)', () => {
  const p = (store: MetricStore, name: string, s: string) => stat(store, name, s)[0]?.value;

  it('follows the nearest-rank definition on the textbook example', () => {
    // Nearest rank: rank = ceil(p/100 * n). Values 15, 20, 35, 40, 50 (n = 5).
    const store = new MetricStore();
    store.putDatapoints(
      NS,
      'L',
      {},
      [50, 15, 40, 20, 35].map((value, i) => ({ timestampMs: T0 + i, value })),
    );
    expect(p(store, 'L', 'p5')).toBe(15); // rank 1
    expect(p(store, 'L', 'p30')).toBe(20); // rank ceil(1.5) = 2
    expect(p(store, 'L', 'p40')).toBe(20); // rank 2
    expect(p(store, 'L', 'p50')).toBe(35); // rank ceil(2.5) = 3
    expect(p(store, 'L', 'p100')).toBe(50); // rank 5
  });

  it('supports decimal percentiles', () => {
    const store = new MetricStore();
    store.putDatapoints(
      NS,
      'L',
      {},
      Array.from({ length: 1000 }, (_, i) => ({ timestampMs: T0 + (i % 60) * 1000, value: 1000 - i })),
    );
    // values 1..1000: p99 -> rank 990 -> 990; p99.9 -> rank 999 -> 999; p99.95 -> rank ceil(999.5) = 1000
    expect(p(store, 'L', 'p99')).toBe(990);
    expect(p(store, 'L', 'p99.9')).toBe(999);
    expect(p(store, 'L', 'p99.95')).toBe(1000);
    expect(p(store, 'L', 'p50')).toBe(500);
  });

  it('weights values by their counts', () => {
    const store = new MetricStore();
    // 1 observed 3 times, 2 once: ranks 1-3 are 1, rank 4 is 2.
    store.putDatapoints(NS, 'L', {}, [
      { timestampMs: T0, value: 1, count: 3 },
      { timestampMs: T0, value: 2, count: 1 },
    ]);
    expect(p(store, 'L', 'p75')).toBe(1); // rank 3
    expect(p(store, 'L', 'p76')).toBe(2); // rank ceil(3.04) = 4
    expect(p(store, 'L', 'SampleCount')).toBe(4);
    expect(p(store, 'L', 'Sum')).toBe(5);
  });

  it('is unavailable for statistic sets with Minimum != Maximum and for negative values', () => {
    const store = new MetricStore();
    store.putStatisticSet(NS, 'Set', {}, { timestampMs: T0, sampleCount: 4, sum: 10, minimum: 1, maximum: 4 });
    expect(p(store, 'Set', 'p50')).toBeUndefined();
    expect(p(store, 'Set', 'Sum')).toBe(10);
    expect(p(store, 'Set', 'Average')).toBe(2.5);
    store.putStatisticSet(NS, 'Flat', {}, { timestampMs: T0, sampleCount: 3, sum: 6, minimum: 2, maximum: 2 });
    expect(p(store, 'Flat', 'p90')).toBe(2);
    store.putDatapoints(NS, 'Neg', {}, [
      { timestampMs: T0, value: -1 },
      { timestampMs: T0, value: 5 },
    ]);
    expect(p(store, 'Neg', 'p50')).toBeUndefined();
    expect(p(store, 'Neg', 'Minimum')).toBe(-1);
  });
});

describe('Embedded Metric Format', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  it('ingests the line that the real Powertools Metrics class logs', () => {
    // POWERTOOLS_DEV=true makes Powertools log through the global console; vitest.config disables metrics by default.
    vi.stubEnv('POWERTOOLS_DEV', 'true');
    vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(' '));
    });
    vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    // Powertools rejects timestamps older than 14 days, so use a recent minute boundary.
    const ts = Math.floor(Date.now() / MIN) * MIN - MIN;

    const metrics = new Metrics({ namespace: NS, serviceName: 'relay' });
    metrics.setTimestamp(ts);
    metrics.addDimension('Stage', 'dev');
    metrics.addMetric('RecordsAppended', MetricUnit.Count, 3);
    metrics.addMetric('RecordsAppended', MetricUnit.Count, 4);
    metrics.addMetric('AppendLatency', MetricUnit.Milliseconds, 12.5, MetricResolution.High);
    metrics.publishStoredMetrics();

    expect(lines).toHaveLength(1);
    const store = new MetricStore();
    expect(store.ingestEmf(lines[0]!)).toBe(true);

    const q = { namespace: NS, dimensions: { service: 'relay', Stage: 'dev' }, periodSeconds: 60, startMs: ts, endMs: ts + MIN };
    expect(store.statistic({ ...q, metricName: 'RecordsAppended', stat: 'Sum' })).toEqual([{ timestampMs: ts, value: 7 }]);
    expect(store.statistic({ ...q, metricName: 'RecordsAppended', stat: 'SampleCount' })).toEqual([{ timestampMs: ts, value: 2 }]);
    expect(store.statistic({ ...q, metricName: 'RecordsAppended', stat: 'Sum', unit: 'Count' })).toEqual([{ timestampMs: ts, value: 7 }]);
    expect(store.statistic({ ...q, metricName: 'AppendLatency', stat: 'Maximum' })).toEqual([{ timestampMs: ts, value: 12.5 }]);
    // {service, Stage} is a different metric from {Stage}.
    expect(store.statistic({ ...q, dimensions: { Stage: 'dev' }, metricName: 'RecordsAppended', stat: 'Sum' })).toEqual([]);
    const latency = store.listMetrics().find((m) => m.metricName === 'AppendLatency');
    expect(latency).toEqual({
      namespace: NS,
      metricName: 'AppendLatency',
      dimensions: { service: 'relay', Stage: 'dev' },
      highResolution: true,
    });
  });

  it('accepts the Lambda log prefix, several dimension sets and an empty one', () => {
    const store = new MetricStore();
    const doc = {
      _aws: {
        Timestamp: T0 + 5_000,
        CloudWatchMetrics: [
          { Namespace: NS, Dimensions: [['Stage'], ['Stage', 'Route'], [], ['Count']], Metrics: [{ Name: 'Bytes', Unit: 'Bytes' }] },
        ],
      },
      Stage: 'dev',
      Route: 'append',
      Count: 3, // not a string: that dimension set is skipped
      Bytes: [100, 50],
    };
    expect(store.ingestEmf(`2024-01-01T00:00:05.000Z\tc0ffee-1234\tINFO\t${JSON.stringify(doc)}`)).toBe(true);
    expect(stat(store, 'Bytes', 'Sum', 60, { Stage: 'dev' })).toEqual([{ timestampMs: T0, value: 150 }]);
    expect(stat(store, 'Bytes', 'Sum', 60, { Stage: 'dev', Route: 'append' })).toEqual([{ timestampMs: T0, value: 150 }]);
    expect(stat(store, 'Bytes', 'Sum', 60)).toEqual([{ timestampMs: T0, value: 150 }]);
    expect(store.listMetrics()).toHaveLength(3);
  });

  it('returns false for lines that are not EMF', () => {
    const store = new MetricStore();
    expect(store.ingestEmf('START RequestId: 1234 Version: $LATEST')).toBe(false);
    expect(store.ingestEmf('{"level":"INFO","message":"hello"}')).toBe(false);
    expect(store.ingestEmf('{"_aws": {"Timestamp": 1}}')).toBe(false);
    expect(store.ingestEmf('{not json')).toBe(false);
    expect(store.listMetrics()).toEqual([]);
  });
});

describe('GetMetricData and metric math', () => {
  const dims = [{ Name: 'Stage', Value: 'dev' }];
  const q = (Id: string, MetricName: string, Stat = 'Sum', extra: Partial<MetricDataQuery> = {}): MetricDataQuery => ({
    Id,
    MetricStat: { Metric: { Namespace: NS, MetricName, Dimensions: dims }, Period: 60, Stat },
    ...extra,
  });
  const e = (Id: string, Expression: string, extra: Partial<MetricDataQuery> = {}): MetricDataQuery => ({ Id, Expression, ...extra });
  /** Puts one value per minute; null leaves the minute empty. */
  const seed = (store: MetricStore, name: string, perMinute: (number | null)[]) => {
    perMinute.forEach((value, i) => {
      if (value !== null) store.putDatapoints(NS, name, { Stage: 'dev' }, [{ timestampMs: T0 + i * MIN + 10_000, value }]);
    });
  };
  const run = (store: MetricStore, queries: MetricDataQuery[], minutes = 3) => store.getMetricData(queries, T0, T0 + minutes * MIN);
  const byId = (out: ReturnType<MetricStore['getMetricData']>, id: string) => out.MetricDataResults.find((r) => r.Id === id)!;

  it('returns metric results newest first, and oldest first with TimestampAscending', () => {
    const store = new MetricStore();
    seed(store, 'Requests', [10, 20, 40]);
    const out = run(store, [q('requests', 'Requests')]);
    expect(out.MetricDataResults).toEqual([
      { Id: 'requests', Label: 'Requests', Timestamps: [T0 + 2 * MIN, T0 + MIN, T0], Values: [40, 20, 10], StatusCode: 'Complete' },
    ]);
    const asc = store.getMetricData([q('requests', 'Requests')], T0, T0 + 3 * MIN, { scanBy: 'TimestampAscending' });
    expect(asc.MetricDataResults[0]!.Values).toEqual([10, 20, 40]);
  });

  it('computes the ratio of two series and hides ReturnData: false queries', () => {
    const store = new MetricStore();
    seed(store, 'Errors', [2, 0, 5]);
    seed(store, 'Requests', [10, 20, 40]);
    const out = run(store, [
      q('errors', 'Errors', 'Sum', { ReturnData: false }),
      q('requests', 'Requests', 'Sum', { ReturnData: false }),
      e('rate', '100 * errors / requests', { Label: 'Error rate' }),
    ]);
    expect(out.MetricDataResults.map((r) => r.Id)).toEqual(['rate']);
    // 100*5/40 = 12.5, 100*0/20 = 0, 100*2/10 = 20
    expect(byId(out, 'rate')).toEqual({
      Id: 'rate',
      Label: 'Error rate',
      Timestamps: [T0 + 2 * MIN, T0 + MIN, T0],
      Values: [12.5, 0, 20],
      StatusCode: 'Complete',
    });
  });

  it('computes the difference of two ratios, referencing other expressions', () => {
    const store = new MetricStore();
    seed(store, 'ErrorsA', [1, 3]);
    seed(store, 'RequestsA', [4, 8]);
    seed(store, 'ErrorsB', [1, 1]);
    seed(store, 'RequestsB', [8, 2]);
    const out = run(
      store,
      [
        q('ea', 'ErrorsA', 'Sum', { ReturnData: false }),
        q('ra', 'RequestsA', 'Sum', { ReturnData: false }),
        q('eb', 'ErrorsB', 'Sum', { ReturnData: false }),
        q('rb', 'RequestsB', 'Sum', { ReturnData: false }),
        e('diff', 'ratio_a - ratio_b'),
        e('ratio_a', 'ea / ra', { ReturnData: false }),
        e('ratio_b', 'eb/rb', { ReturnData: false }),
      ],
      2,
    );
    // minute 0: 1/4 - 1/8 = 0.125; minute 1: 3/8 - 1/2 = -0.125
    expect(byId(out, 'diff').Values).toEqual([-0.125, 0.125]);
    expect(byId(out, 'diff').Timestamps).toEqual([T0 + MIN, T0]);
  });

  it('aligns series by timestamp; a missing value counts as 0 and a division by zero drops the point (documented)', () => {
    const store = new MetricStore();
    seed(store, 'A', [6, 8, 10]);
    seed(store, 'B', [2, null, 0]); // minute 1 missing, minute 2 is zero
    const out = run(store, [
      q('a', 'A', 'Sum', { ReturnData: false }),
      q('b', 'B', 'Sum', { ReturnData: false }),
      e('sum', 'a + b'),
      e('ratio', 'a / b'),
      e('inverse', 'b / a'),
    ]);
    // a + b: 10+0, 8+(missing = 0), 6+2
    expect(byId(out, 'sum').Values).toEqual([10, 8, 8]);
    // a / b: 10/0 dropped, 8/(missing = 0) dropped, 6/2 = 3
    expect(byId(out, 'ratio')).toMatchObject({ Timestamps: [T0], Values: [3] });
    // b / a: 0/10 = 0, (missing = 0)/8 = 0, 2/6
    expect(byId(out, 'inverse').Timestamps).toEqual([T0 + 2 * MIN, T0 + MIN, T0]);
    expect(byId(out, 'inverse').Values[0]).toBe(0);
    expect(byId(out, 'inverse').Values[1]).toBe(0);
    expect(byId(out, 'inverse').Values[2]).toBeCloseTo(1 / 3, 12);
  });

  it("drops a timestamp missing from one operand when mathMissingValues is 'drop'", () => {
    const store = new MetricStore({ mathMissingValues: 'drop' });
    seed(store, 'A', [6, 8, 10]);
    seed(store, 'B', [2, null, 5]);
    const out = run(store, [q('a', 'A', 'Sum', { ReturnData: false }), q('b', 'B', 'Sum', { ReturnData: false }), e('sum', 'a + b')]);
    expect(byId(out, 'sum')).toMatchObject({ Timestamps: [T0 + 2 * MIN, T0], Values: [15, 8] });
  });

  it('applies scalar arithmetic, unary minus, powers and precedence', () => {
    const store = new MetricStore();
    seed(store, 'A', [1, 2, 3]);
    const out = run(store, [
      q('a', 'A', 'Sum', { ReturnData: false }),
      e('times', 'a * 100'),
      e('minus', '10 - a'),
      e('neg', '-a'),
      e('prec', '1 + 2 * a ^ 2'),
      e('paren', '(1 + 2) * -a'),
      e('scalars', 'a * (2 + 3) / 10'),
      e('byzero', 'a / 0'),
    ]);
    expect(byId(out, 'times').Values).toEqual([300, 200, 100]);
    expect(byId(out, 'minus').Values).toEqual([7, 8, 9]);
    expect(byId(out, 'neg').Values).toEqual([-3, -2, -1]);
    expect(byId(out, 'prec').Values).toEqual([19, 9, 3]); // 1 + 2*9, 1 + 2*4, 1 + 2*1
    expect(byId(out, 'paren').Values).toEqual([-9, -6, -3]);
    expect(byId(out, 'scalars').Values).toEqual([1.5, 1, 0.5]);
    expect(byId(out, 'byzero')).toMatchObject({ Timestamps: [], Values: [] });
  });

  it('reproduces the comparison and logical operator examples of the metric math docs', () => {
    // "Comparison and logical operators": metric1 = [30, 20, 0, 0], metric2 = [20, -, 20, -]
    const store = new MetricStore();
    seed(store, 'M1', [30, 20, 0, 0]);
    seed(store, 'M2', [20, null, 20, null]);
    const out = run(
      store,
      [
        q('metric1', 'M1', 'Sum', { ReturnData: false }),
        q('metric2', 'M2', 'Sum', { ReturnData: false }),
        e('lt', '(metric1 < metric2)'),
        e('ge', '(metric1 >= 30)'),
        e('both', '(metric1 > 15 AND metric2 > 15)'),
        e('either', 'metric1 > 25 || metric2 > 15'),
      ],
      4,
    );
    const oldestFirst = (id: string) => [...byId(out, id).Values].reverse();
    expect(oldestFirst('lt')).toEqual([0, 0, 1, 0]);
    expect(oldestFirst('ge')).toEqual([1, 0, 0, 0]);
    expect(oldestFirst('both')).toEqual([1, 0, 0, 0]);
    expect(oldestFirst('either')).toEqual([1, 0, 1, 0]);
  });

  it('reproduces the IF examples of the metric math docs', () => {
    // "Using IF expressions": metric1 = [1, 1, 0, 0, -], metric2 = [30, -, 0, 0, 30], metric3 = [0, 0, 20, -, 20]
    const store = new MetricStore();
    seed(store, 'M1', [1, 1, 0, 0, null]);
    seed(store, 'M2', [30, null, 0, 0, 30]);
    seed(store, 'M3', [0, 0, 20, null, 20]);
    const out = run(
      store,
      [
        q('metric1', 'M1', 'Sum', { ReturnData: false }),
        q('metric2', 'M2', 'Sum', { ReturnData: false }),
        q('metric3', 'M3', 'Sum', { ReturnData: false }),
        e('three', 'IF(metric1, metric2, metric3)'),
        e('scalar2', 'IF(metric1, 5, metric3)'),
        e('scalar3', 'IF(metric1, metric2, 5)'),
        e('nofalse', 'IF(metric2 > 10, 1)'),
      ],
      5,
    );
    const oldestFirst = (id: string) => {
      const r = byId(out, id);
      return [0, 1, 2, 3, 4].map((i) => {
        const k = r.Timestamps.indexOf(T0 + i * MIN);
        return k < 0 ? '-' : r.Values[k];
      });
    };
    expect(oldestFirst('three')).toEqual([30, 0, 20, '-', '-']);
    expect(oldestFirst('scalar2')).toEqual([5, 5, 20, '-', '-']);
    expect(oldestFirst('scalar3')).toEqual([30, 0, 5, 5, '-']);
    expect(oldestFirst('nofalse')).toEqual([1, '-', '-', '-', 1]);
  });

  it('FILLs missing periods with a value, REPEAT or LINEAR', () => {
    const store = new MetricStore();
    seed(store, 'A', [null, 2, null, null, 8, null]);
    const out = run(
      store,
      [
        q('a', 'A', 'Sum', { ReturnData: false }),
        e('zero', 'FILL(a, 0)'),
        e('repeat', 'FILL(a, REPEAT)'),
        e('linear', 'FILL(a, LINEAR)'),
        e('rate', 'FILL(a, 0) / 2'),
      ],
      6,
    );
    const oldestFirst = (id: string) => {
      const r = byId(out, id);
      return [0, 1, 2, 3, 4, 5].map((i) => {
        const k = r.Timestamps.indexOf(T0 + i * MIN);
        return k < 0 ? '-' : r.Values[k];
      });
    };
    expect(oldestFirst('zero')).toEqual([0, 2, 0, 0, 8, 0]);
    expect(oldestFirst('repeat')).toEqual(['-', 2, 2, 2, 8, 8]);
    expect(oldestFirst('linear')).toEqual(['-', 2, 4, 6, 8, '-']);
    expect(oldestFirst('rate')).toEqual([0, 1, 0, 0, 4, 0]);
  });

  it('supports SUM/AVG/MAX of arrays and scalar reductions of a series', () => {
    const store = new MetricStore();
    seed(store, 'A', [1, 2]);
    seed(store, 'B', [3, null]);
    const out = run(
      store,
      [
        q('m_a', 'A', 'Sum', { ReturnData: false }),
        q('m_b', 'B', 'Sum', { ReturnData: false }),
        e('total', 'SUM([m_a, m_b])'),
        e('avg', 'AVG(METRICS())'),
        e('max', 'MAX(METRICS("m_"))'),
        e('centered', 'm_a - AVG(m_a)'),
      ],
      2,
    );
    expect(byId(out, 'total').Values).toEqual([2, 4]); // minute 1: 2 (+ missing), minute 0: 1 + 3
    expect(byId(out, 'avg').Values).toEqual([1, 2]); // missing counts as 0: (2 + 0) / 2, (1 + 3) / 2
    expect(byId(out, 'max').Values).toEqual([2, 3]);
    expect(byId(out, 'centered').Values).toEqual([0.5, -0.5]); // AVG(m_a) = 1.5
  });

  it('rejects bad requests like the API does', () => {
    const store = new MetricStore();
    expect(() => run(store, [q('M1', 'A')])).toThrow(/lowercase/);
    expect(() => run(store, [q('a', 'A'), q('a', 'B')])).toThrow(/Duplicate/);
    expect(() => run(store, [e('x', 'nope + 1')])).toThrow(/Unknown Id "nope"/);
    expect(() => run(store, [e('x', 'y'), e('y', 'x')])).toThrow(/Circular/);
    expect(() => run(store, [q('a', 'A'), e('x', 'a +')])).toThrow(ValidationError);
    expect(() => run(store, [q('a', 'A', 'Sum', { ReturnData: false }), e('x', 'AVG(a)')])).toThrow(/single time series/);
    expect(() => run(store, [q('a', 'A', 'Sum', { ReturnData: false }), e('x', 'STDEV(a)')])).toThrow(/Unsupported/);
  });
});
