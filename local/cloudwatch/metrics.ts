/**
 * In-memory stand-in for CloudWatch metrics: storage, statistics, Embedded Metric Format ingestion,
 * and GetMetricData with metric math. Pure TypeScript, no AWS SDK.
 *
 * Semantics follow the CloudWatch documentation:
 * - Statistics: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html
 * - Percentiles on statistic sets and negative values (GetMetricStatistics API reference):
 *   https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html
 * - EMF: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 * - GetMetricData: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html
 * - Metric math: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
 *
 * Deliberate simplifications (local use):
 * - Samples are kept raw, whatever their StorageResolution, so percentiles are exact and any period works
 *   (CloudWatch truncates standard-resolution data to the minute; with a time scale that would break short periods).
 * - Percentiles use the nearest-rank method: the smallest value whose cumulative count reaches ceil(p/100 * n).
 * - Periods are aligned to the Unix epoch (period start = floor(t / period) * period).
 */

export type Dimensions = Record<string, string>;

export interface DatapointInput {
  timestampMs: number;
  value: number;
  unit?: string;
  /** How many times the value was observed (PutMetricData `Counts`). Default 1. */
  count?: number;
}

export interface StatisticSetInput {
  timestampMs: number;
  sampleCount: number;
  sum: number;
  minimum: number;
  maximum: number;
  unit?: string;
}

export interface Datapoint {
  timestampMs: number;
  value: number;
}

export interface StatisticQuery {
  namespace: string;
  metricName: string;
  dimensions?: Dimensions;
  /** SampleCount | Sum | Average | Minimum | Maximum | pNN | pNN.N */
  stat: string;
  /** Period in CloudWatch seconds; divided by the store's time scale. */
  periodSeconds: number;
  /** Inclusive; rounded down to the period boundary like GetMetricData does. */
  startMs: number;
  /** Exclusive. */
  endMs: number;
  /** Only samples published with this unit (as the API's Unit filter). */
  unit?: string;
}

export interface MetricDimension {
  Name: string;
  Value: string;
}

export interface MetricSpec {
  Namespace: string;
  MetricName: string;
  Dimensions?: MetricDimension[];
}

export interface MetricStat {
  Metric: MetricSpec;
  Period: number;
  Stat: string;
  Unit?: string;
}

export interface MetricDataQuery {
  Id: string;
  MetricStat?: MetricStat;
  Expression?: string;
  Label?: string;
  ReturnData?: boolean;
  Period?: number;
  AccountId?: string;
}

export interface MetricDataResult {
  Id: string;
  Label: string;
  /** Epoch milliseconds, newest first unless ScanBy is TimestampAscending. */
  Timestamps: number[];
  Values: number[];
  StatusCode: 'Complete';
}

export interface GetMetricDataOptions {
  scanBy?: 'TimestampDescending' | 'TimestampAscending';
}

export interface MetricIdentity {
  namespace: string;
  metricName: string;
  dimensions: Dimensions;
  highResolution: boolean;
}

/**
 * How binary arithmetic treats a timestamp present in one series and absent from the other.
 * - 'zero' (default): as documented in "Using metric math" (Basic arithmetic functions): "Missing values in a time
 *   series are treated as 0. If the value of a data point causes a function to attempt to divide by zero, the data
 *   point is dropped." The result has the union of the timestamps.
 * - 'drop': the timestamp is missing from the result (intersection of the timestamps).
 * Comparison and logical operators always treat the missing value as 0, as the docs state explicitly for them.
 */
export type MathMissingValues = 'zero' | 'drop';

export interface MetricStoreOptions {
  /** Time compression: CloudWatch periods are divided by this factor. Default 1. */
  timeScale?: number;
  /** Clock used when an EMF document has no timestamp. Default Date.now. */
  now?: () => number;
  mathMissingValues?: MathMissingValues;
  /** Drop samples older than this (in store milliseconds) on every write. Default: keep everything. */
  retentionMs?: number;
}

/** Mirrors the SDK's ValidationError for malformed requests (bad ids, bad expressions, unknown statistics). */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
}

/** One stored observation: a raw value (min === max, sum = value * n) or a statistic set. */
interface Sample {
  t: number;
  unit: string;
  n: number;
  sum: number;
  min: number;
  max: number;
}

interface StoredMetric {
  identity: MetricIdentity;
  samples: Sample[];
}

const BASIC_STATS = new Set(['SampleCount', 'Sum', 'Average', 'Minimum', 'Maximum']);
const PERCENTILE = /^[pP](\d{1,3}(?:\.\d+)?)$/;

/** Parses `p99`, `p99.9`, `p0`…`p100`; returns undefined for anything else. */
export function parsePercentile(stat: string): number | undefined {
  const m = PERCENTILE.exec(stat);
  if (!m) return undefined;
  const p = Number(m[1]);
  return p >= 0 && p <= 100 ? p : undefined;
}

export function isSupportedStat(stat: string): boolean {
  return BASIC_STATS.has(stat) || parsePercentile(stat) !== undefined;
}

function metricKey(namespace: string, metricName: string, dimensions: Dimensions): string {
  const dims = Object.keys(dimensions)
    .sort()
    .map((k) => [k, dimensions[k]]);
  return JSON.stringify([namespace, metricName, dims]);
}

export function dimensionsFromList(list: readonly MetricDimension[] | undefined): Dimensions {
  const out: Dimensions = {};
  for (const d of list ?? []) out[d.Name] = d.Value;
  return out;
}

/**
 * Computes one statistic over the samples of one period. Returns undefined when CloudWatch would return no datapoint.
 * Percentile: nearest rank over the weighted values. Not available (undefined) when a sample is a statistic set
 * with Minimum != Maximum or when any value is negative, as the GetMetricStatistics reference documents.
 */
function computeStat(samples: readonly Sample[], stat: string): number | undefined {
  if (samples.length === 0) return undefined;
  let n = 0;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const s of samples) {
    n += s.n;
    sum += s.sum;
    if (s.min < min) min = s.min;
    if (s.max > max) max = s.max;
  }
  switch (stat) {
    case 'SampleCount':
      return n;
    case 'Sum':
      return sum;
    case 'Average':
      return n === 0 ? undefined : sum / n;
    case 'Minimum':
      return min;
    case 'Maximum':
      return max;
    default:
      break;
  }
  const p = parsePercentile(stat);
  if (p === undefined) throw new ValidationError(`Unsupported statistic: ${stat}`);
  if (samples.some((s) => s.min !== s.max || s.min < 0)) return undefined;
  const sorted = [...samples].sort((a, b) => a.min - b.min);
  // Tolerance so that binary rounding (99.9 / 100 * 1000 = 999.0000000000001) does not push the rank up by one.
  const exact = (p * n) / 100;
  const rank = Math.max(1, Math.ceil(exact - 1e-9 * Math.max(1, exact)));
  let seen = 0;
  for (const s of sorted) {
    seen += s.n;
    if (seen >= rank) return s.min;
  }
  return sorted[sorted.length - 1]!.min;
}

export class MetricStore {
  readonly timeScale: number;
  private readonly now: () => number;
  private readonly mathMissingValues: MathMissingValues;
  private readonly retentionMs: number | undefined;
  private readonly metrics = new Map<string, StoredMetric>();

  constructor(options: MetricStoreOptions = {}) {
    const scale = options.timeScale ?? 1;
    if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`timeScale must be a positive number, got ${scale}`);
    this.timeScale = scale;
    this.now = options.now ?? Date.now;
    this.mathMissingValues = options.mathMissingValues ?? 'zero';
    this.retentionMs = options.retentionMs;
  }

  /** Length in store milliseconds of a CloudWatch period given in seconds (scaled, at least 1 ms). */
  periodMs(periodSeconds: number): number {
    if (!(periodSeconds > 0)) throw new ValidationError(`Period must be positive, got ${periodSeconds}`);
    return Math.max(1, Math.round((periodSeconds * 1000) / this.timeScale));
  }

  putDatapoints(
    namespace: string,
    metricName: string,
    dimensions: Dimensions,
    values: readonly DatapointInput[],
    options: { highResolution?: boolean } = {},
  ): void {
    const metric = this.metricFor(namespace, metricName, dimensions, options.highResolution);
    for (const v of values) {
      if (!Number.isFinite(v.value) || !Number.isFinite(v.timestampMs)) {
        throw new ValidationError(`Invalid datapoint for ${metricName}: ${JSON.stringify(v)}`);
      }
      const count = v.count ?? 1;
      if (!(count > 0)) continue;
      metric.samples.push({ t: v.timestampMs, unit: v.unit ?? 'None', n: count, sum: v.value * count, min: v.value, max: v.value });
    }
    this.prune();
  }

  putStatisticSet(
    namespace: string,
    metricName: string,
    dimensions: Dimensions,
    set: StatisticSetInput,
    options: { highResolution?: boolean } = {},
  ): void {
    const metric = this.metricFor(namespace, metricName, dimensions, options.highResolution);
    if (!(set.sampleCount > 0) || set.minimum > set.maximum) {
      throw new ValidationError(`Invalid statistic set for ${metricName}: ${JSON.stringify(set)}`);
    }
    metric.samples.push({
      t: set.timestampMs,
      unit: set.unit ?? 'None',
      n: set.sampleCount,
      sum: set.sum,
      min: set.minimum,
      max: set.maximum,
    });
    this.prune();
  }

  /**
   * Ingests one log line holding a CloudWatch Embedded Metric Format document. Returns false when the line is not
   * EMF. As the spec allows on Lambda, metadata before the JSON object (timestamp, request id) is skipped.
   * Each dimension set of each directive produces its own metric; an empty set (or `Dimensions: []`) produces the
   * metric without dimensions. Dimension sets whose target member is not a string are skipped.
   */
  ingestEmf(line: string): boolean {
    const start = line.indexOf('{');
    if (start < 0) return false;
    let doc: unknown;
    try {
      doc = JSON.parse(line.slice(start));
    } catch {
      return false;
    }
    if (!isRecord(doc) || !isRecord(doc._aws) || !Array.isArray(doc._aws.CloudWatchMetrics)) return false;
    const ts = typeof doc._aws.Timestamp === 'number' ? doc._aws.Timestamp : this.now();
    for (const directive of doc._aws.CloudWatchMetrics) {
      if (!isRecord(directive) || typeof directive.Namespace !== 'string' || !Array.isArray(directive.Metrics)) continue;
      const rawSets = Array.isArray(directive.Dimensions) && directive.Dimensions.length > 0 ? directive.Dimensions : [[]];
      const dimensionSets: Dimensions[] = [];
      const seen = new Set<string>();
      for (const set of rawSets) {
        if (!Array.isArray(set)) continue;
        const dims: Dimensions = {};
        let valid = true;
        for (const key of set) {
          const value = typeof key === 'string' ? doc[key] : undefined;
          if (typeof value !== 'string') {
            valid = false;
            break;
          }
          dims[key as string] = value;
        }
        const key = metricKey('', '', dims);
        if (valid && !seen.has(key)) {
          seen.add(key);
          dimensionSets.push(dims);
        }
      }
      for (const def of directive.Metrics) {
        if (!isRecord(def) || typeof def.Name !== 'string') continue;
        const target = doc[def.Name];
        const values = typeof target === 'number' ? [target] : Array.isArray(target) ? target : [];
        const numbers = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
        if (numbers.length === 0) continue;
        const unit = typeof def.Unit === 'string' ? def.Unit : 'None';
        const highResolution = def.StorageResolution === 1;
        for (const dims of dimensionSets) {
          this.putDatapoints(
            directive.Namespace,
            def.Name,
            dims,
            numbers.map((value) => ({ timestampMs: ts, value, unit })),
            { highResolution },
          );
        }
      }
    }
    return true;
  }

  listMetrics(): MetricIdentity[] {
    return [...this.metrics.values()].map((m) => ({ ...m.identity, dimensions: { ...m.identity.dimensions } }));
  }

  clear(): void {
    this.metrics.clear();
  }

  /**
   * Per-period datapoints, oldest first. Dimensions must match exactly. A period without samples yields no datapoint.
   */
  statistic(query: StatisticQuery): Datapoint[] {
    if (!isSupportedStat(query.stat)) throw new ValidationError(`Unsupported statistic: ${query.stat}`);
    const p = this.periodMs(query.periodSeconds);
    const metric = this.metrics.get(metricKey(query.namespace, query.metricName, query.dimensions ?? {}));
    if (!metric) return [];
    const from = Math.floor(query.startMs / p) * p;
    const buckets = new Map<number, Sample[]>();
    for (const s of metric.samples) {
      if (s.t < from || s.t >= query.endMs) continue;
      if (query.unit !== undefined && s.unit !== query.unit) continue;
      const bucket = Math.floor(s.t / p) * p;
      let list = buckets.get(bucket);
      if (!list) {
        list = [];
        buckets.set(bucket, list);
      }
      list.push(s);
    }
    const out: Datapoint[] = [];
    for (const [timestampMs, samples] of [...buckets.entries()].sort((a, b) => a[0] - b[0])) {
      const value = computeStat(samples, query.stat);
      if (value !== undefined) out.push({ timestampMs, value });
    }
    return out;
  }

  /** GetMetricData over [startMs, endMs): MetricStat queries and metric math expressions. */
  getMetricData(
    queries: readonly MetricDataQuery[],
    startMs: number,
    endMs: number,
    options: GetMetricDataOptions = {},
  ): { MetricDataResults: MetricDataResult[] } {
    const byId = new Map<string, MetricDataQuery>();
    for (const q of queries) {
      if (!/^[a-z][a-zA-Z0-9_]*$/.test(q.Id)) {
        throw new ValidationError(`Invalid Id "${q.Id}": it must start with a lowercase letter and hold only letters, digits and _`);
      }
      if (byId.has(q.Id)) throw new ValidationError(`Duplicate Id "${q.Id}"`);
      if ((q.MetricStat === undefined) === (q.Expression === undefined)) {
        throw new ValidationError(`Query "${q.Id}" must have exactly one of MetricStat or Expression`);
      }
      byId.set(q.Id, q);
    }
    const statPeriods = queries.filter((q) => q.MetricStat).map((q) => q.MetricStat!.Period);
    const defaultPeriodSeconds = statPeriods.length > 0 ? Math.min(...statPeriods) : 60;
    const cache = new Map<string, Value>();
    const resolving = new Set<string>();

    const seriesOfStat = (q: MetricDataQuery): Series => {
      const ms = q.MetricStat!;
      const points = new Map<number, number>();
      for (const dp of this.statistic({
        namespace: ms.Metric.Namespace,
        metricName: ms.Metric.MetricName,
        dimensions: dimensionsFromList(ms.Metric.Dimensions),
        stat: ms.Stat,
        periodSeconds: ms.Period,
        startMs,
        endMs,
        unit: ms.Unit,
      })) {
        points.set(dp.timestampMs, dp.value);
      }
      return {
        kind: 'series',
        points,
        periodSeconds: ms.Period,
        periodMs: this.periodMs(ms.Period),
        label: q.Label ?? ms.Metric.MetricName,
      };
    };

    const resolve = (id: string): Value => {
      const cached = cache.get(id);
      if (cached) return cached;
      const q = byId.get(id);
      if (!q) throw new ValidationError(`Unknown Id "${id}" in expression`);
      if (resolving.has(id)) throw new ValidationError(`Circular reference through "${id}"`);
      resolving.add(id);
      try {
        const value = q.MetricStat ? seriesOfStat(q) : evaluate(parseExpression(q.Expression!), ctx);
        cache.set(id, value);
        return value;
      } finally {
        resolving.delete(id);
      }
    };

    const ctx: EvalContext = {
      resolve,
      metricStatSeries: (filter) =>
        queries.filter((q) => q.MetricStat && (filter === undefined || q.Id.includes(filter))).map((q) => resolve(q.Id) as Series),
      grid: (periodMs) => {
        const out: number[] = [];
        for (let t = Math.floor(startMs / periodMs) * periodMs; t < endMs; t += periodMs) out.push(t);
        return out;
      },
      defaultPeriod: { seconds: defaultPeriodSeconds, ms: this.periodMs(defaultPeriodSeconds) },
      missingValues: this.mathMissingValues,
    };

    const results: MetricDataResult[] = [];
    for (const q of queries) {
      if (q.ReturnData === false) continue;
      const value = resolve(q.Id);
      if (value.kind !== 'series') {
        throw new ValidationError(`The result of "${q.Id}" must be a single time series, got ${describe(value)}`);
      }
      const ts = [...value.points.keys()].sort((a, b) => (options.scanBy === 'TimestampAscending' ? a - b : b - a));
      results.push({
        Id: q.Id,
        Label: q.Label ?? (q.MetricStat ? q.MetricStat.Metric.MetricName : q.Id),
        Timestamps: ts,
        Values: ts.map((t) => value.points.get(t)!),
        StatusCode: 'Complete',
      });
    }
    return { MetricDataResults: results };
  }

  private metricFor(namespace: string, metricName: string, dimensions: Dimensions, highResolution = false): StoredMetric {
    if (!namespace || !metricName) throw new ValidationError('Namespace and MetricName are required');
    const key = metricKey(namespace, metricName, dimensions);
    let metric = this.metrics.get(key);
    if (!metric) {
      metric = { identity: { namespace, metricName, dimensions: { ...dimensions }, highResolution }, samples: [] };
      this.metrics.set(key, metric);
    } else if (highResolution) {
      metric.identity.highResolution = true;
    }
    return metric;
  }

  private prune(): void {
    if (this.retentionMs === undefined) return;
    const cutoff = this.now() - this.retentionMs;
    for (const m of this.metrics.values()) {
      if (m.samples.length > 0 && m.samples[0]!.t < cutoff) m.samples = m.samples.filter((s) => s.t >= cutoff);
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------------------------
// Metric math: tokenizer, parser and evaluator.
// Supported: numbers, ids, + - * / ^, unary -, parentheses, == != < <= > >=, AND/&&, OR/||, [a, b] arrays,
// FILL(x, S|TS|REPEAT|LINEAR), IF(cond, a[, b]), ABS, CEIL, FLOOR, LOG, LOG10, SUM, AVG, MIN, MAX,
// DATAPOINT_COUNT, METRICS([filter]), PERIOD, TIME_SERIES.
// ---------------------------------------------------------------------------------------------------------------

export type MathNode =
  | { type: 'num'; value: number }
  | { type: 'str'; value: string }
  | { type: 'ref'; name: string }
  | { type: 'neg'; arg: MathNode }
  | { type: 'bin'; op: string; left: MathNode; right: MathNode }
  | { type: 'call'; name: string; args: MathNode[] }
  | { type: 'array'; items: MathNode[] };

interface Token {
  kind: 'num' | 'str' | 'ident' | 'op' | 'punct' | 'end';
  text: string;
  pos: number;
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = src.slice(i);
    const num = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(rest);
    if (num) {
      tokens.push({ kind: 'num', text: num[0], pos: i });
      i += num[0].length;
      continue;
    }
    const ident = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (ident) {
      const word = ident[0];
      if (word === 'AND') tokens.push({ kind: 'op', text: '&&', pos: i });
      else if (word === 'OR') tokens.push({ kind: 'op', text: '||', pos: i });
      else tokens.push({ kind: 'ident', text: word, pos: i });
      i += word.length;
      continue;
    }
    if (c === '"' || c === "'" || c === '\u201c') {
      const close = c === '\u201c' ? '\u201d' : c;
      const end = src.indexOf(close, i + 1);
      if (end < 0) throw new ValidationError(`Unterminated string at ${i} in "${src}"`);
      tokens.push({ kind: 'str', text: src.slice(i + 1, end), pos: i });
      i = end + 1;
      continue;
    }
    const op = /^(?:==|!=|<=|>=|&&|\|\||[-+*/^<>])/.exec(rest);
    if (op) {
      tokens.push({ kind: 'op', text: op[0], pos: i });
      i += op[0].length;
      continue;
    }
    if ('(),[]'.includes(c)) {
      tokens.push({ kind: 'punct', text: c, pos: i });
      i++;
      continue;
    }
    throw new ValidationError(`Unexpected character "${c}" at ${i} in "${src}"`);
  }
  tokens.push({ kind: 'end', text: '', pos: src.length });
  return tokens;
}

/** Parses a metric math expression into an AST (exported for tests and diagnostics). */
export function parseExpression(src: string): MathNode {
  const tokens = tokenize(src);
  let k = 0;
  const peek = (): Token => tokens[k]!;
  const next = (): Token => tokens[k++]!;
  const fail = (msg: string): never => {
    throw new ValidationError(`${msg} at ${peek().pos} in "${src}"`);
  };
  const expect = (text: string): void => {
    if (peek().text !== text || (peek().kind !== 'punct' && peek().kind !== 'op')) fail(`Expected "${text}"`);
    k++;
  };
  const binary = (ops: string[], sub: () => MathNode) => (): MathNode => {
    let left = sub();
    while (peek().kind === 'op' && ops.includes(peek().text)) {
      const op = next().text;
      left = { type: 'bin', op, left, right: sub() };
    }
    return left;
  };
  const primary = (): MathNode => {
    const t = next();
    if (t.kind === 'num') return { type: 'num', value: Number(t.text) };
    if (t.kind === 'str') return { type: 'str', value: t.text };
    if (t.kind === 'ident') {
      if (peek().kind === 'punct' && peek().text === '(') {
        k++;
        const args: MathNode[] = [];
        if (!(peek().kind === 'punct' && peek().text === ')')) {
          args.push(or());
          while (peek().kind === 'punct' && peek().text === ',') {
            k++;
            args.push(or());
          }
        }
        expect(')');
        return { type: 'call', name: t.text, args };
      }
      return { type: 'ref', name: t.text };
    }
    if (t.kind === 'punct' && t.text === '(') {
      const inner = or();
      expect(')');
      return inner;
    }
    if (t.kind === 'punct' && t.text === '[') {
      const items: MathNode[] = [or()];
      while (peek().kind === 'punct' && peek().text === ',') {
        k++;
        items.push(or());
      }
      expect(']');
      return { type: 'array', items };
    }
    k--;
    return fail(t.kind === 'end' ? 'Unexpected end of expression' : `Unexpected "${t.text}"`);
  };
  // unary minus binds looser than ^ (so -2^2 = -(2^2)), tighter than * and /.
  const unary = (): MathNode => {
    if (peek().kind === 'op' && peek().text === '-') {
      k++;
      return { type: 'neg', arg: unary() };
    }
    if (peek().kind === 'op' && peek().text === '+') {
      k++;
      return unary();
    }
    return power();
  };
  const power = (): MathNode => {
    const base = primary();
    if (peek().kind === 'op' && peek().text === '^') {
      k++;
      return { type: 'bin', op: '^', left: base, right: unary() };
    }
    return base;
  };
  const mul = binary(['*', '/'], unary);
  const add = binary(['+', '-'], mul);
  const cmp = binary(['==', '!=', '<', '<=', '>', '>='], add);
  const and = binary(['&&'], cmp);
  const or = binary(['||'], and);
  const ast = or();
  if (peek().kind !== 'end') fail(`Unexpected "${peek().text}"`);
  return ast;
}

interface Series {
  kind: 'series';
  points: Map<number, number>;
  periodSeconds: number;
  periodMs: number;
  label?: string;
}
interface Scalar {
  kind: 'scalar';
  value: number;
}
interface SeriesArray {
  kind: 'array';
  items: Series[];
}
interface Keyword {
  kind: 'keyword';
  name: string;
}
interface Str {
  kind: 'string';
  value: string;
}
type Value = Series | Scalar | SeriesArray | Keyword | Str;

interface EvalContext {
  resolve(id: string): Value;
  metricStatSeries(filter?: string): Series[];
  grid(periodMs: number): number[];
  defaultPeriod: { seconds: number; ms: number };
  missingValues: MathMissingValues;
}

function describe(v: Value): string {
  switch (v.kind) {
    case 'series':
      return 'a time series';
    case 'scalar':
      return `the scalar ${v.value}`;
    case 'array':
      return 'an array of time series';
    case 'keyword':
      return v.name;
    case 'string':
      return `the string "${v.value}"`;
  }
}

const ARITH: Record<string, (a: number, b: number) => number> = {
  '+': (a, b) => a + b,
  '-': (a, b) => a - b,
  '*': (a, b) => a * b,
  '/': (a, b) => a / b,
  '^': (a, b) => a ** b,
};
const LOGIC: Record<string, (a: number, b: number) => number> = {
  '==': (a, b) => Number(a === b),
  '!=': (a, b) => Number(a !== b),
  '<': (a, b) => Number(a < b),
  '<=': (a, b) => Number(a <= b),
  '>': (a, b) => Number(a > b),
  '>=': (a, b) => Number(a >= b),
  '&&': (a, b) => Number(a !== 0 && b !== 0),
  '||': (a, b) => Number(a !== 0 || b !== 0),
};

function series(points: Map<number, number>, like: Series): Series {
  return { kind: 'series', points, periodSeconds: like.periodSeconds, periodMs: like.periodMs };
}

/** Keeps only finite values: a division by zero (±Infinity or NaN) drops the datapoint. */
function put(points: Map<number, number>, t: number, v: number): void {
  if (Number.isFinite(v)) points.set(t, v);
}

function combine(a: Value, b: Value, op: string, missing: MathMissingValues): Value {
  const logical = op in LOGIC;
  const f = logical ? LOGIC[op]! : ARITH[op]!;
  if (a.kind === 'array') return { kind: 'array', items: a.items.map((s) => combine(s, b, op, missing) as Series) };
  if (b.kind === 'array') return { kind: 'array', items: b.items.map((s) => combine(a, s, op, missing) as Series) };
  if (a.kind === 'scalar' && b.kind === 'scalar') return { kind: 'scalar', value: f(a.value, b.value) };
  if (a.kind === 'series' && b.kind === 'scalar') {
    const out = new Map<number, number>();
    for (const [t, v] of a.points) put(out, t, f(v, b.value));
    return series(out, a);
  }
  if (a.kind === 'scalar' && b.kind === 'series') {
    const out = new Map<number, number>();
    for (const [t, v] of b.points) put(out, t, f(a.value, v));
    return series(out, b);
  }
  if (a.kind === 'series' && b.kind === 'series') {
    const out = new Map<number, number>();
    const union =
      !logical && missing === 'drop'
        ? [...a.points.keys()].filter((t) => b.points.has(t))
        : new Set([...a.points.keys(), ...b.points.keys()]);
    for (const t of union) put(out, t, f(a.points.get(t) ?? 0, b.points.get(t) ?? 0));
    return series(out, a.periodMs <= b.periodMs ? a : b);
  }
  throw new ValidationError(`Operator ${op} cannot take ${describe(a)} and ${describe(b)}`);
}

function mapValue(v: Value, f: (x: number) => number, fn: string): Value {
  if (v.kind === 'scalar') return { kind: 'scalar', value: f(v.value) };
  if (v.kind === 'series') {
    const out = new Map<number, number>();
    for (const [t, x] of v.points) put(out, t, f(x));
    return series(out, v);
  }
  if (v.kind === 'array') return { kind: 'array', items: v.items.map((s) => mapValue(s, f, fn) as Series) };
  throw new ValidationError(`${fn} cannot take ${describe(v)}`);
}

function truthy(x: number): boolean {
  return x !== 0;
}

function fill(target: Series, filler: Value, ctx: EvalContext): Series {
  const grid = ctx.grid(target.periodMs);
  const out = new Map(target.points);
  if (filler.kind === 'scalar') {
    for (const t of grid) if (!out.has(t)) put(out, t, filler.value);
  } else if (filler.kind === 'series') {
    for (const t of grid) if (!out.has(t) && filler.points.has(t)) out.set(t, filler.points.get(t)!);
  } else if (filler.kind === 'keyword' && filler.name === 'REPEAT') {
    // Each missing value takes the most recent real value before it; leading gaps stay missing.
    let last: number | undefined;
    for (const t of grid) {
      if (target.points.has(t)) last = target.points.get(t);
      else if (last !== undefined) out.set(t, last);
    }
  } else if (filler.kind === 'keyword' && filler.name === 'LINEAR') {
    // Linear interpolation between the real values around each gap; leading and trailing gaps stay missing.
    const real = grid.filter((t) => target.points.has(t));
    for (let i = 0; i + 1 < real.length; i++) {
      const t0 = real[i]!;
      const t1 = real[i + 1]!;
      const v0 = target.points.get(t0)!;
      const v1 = target.points.get(t1)!;
      for (const t of grid) if (t > t0 && t < t1) out.set(t, v0 + ((v1 - v0) * (t - t0)) / (t1 - t0));
    }
  } else {
    throw new ValidationError(`FILL cannot fill with ${describe(filler)}`);
  }
  return series(out, target);
}

function ifValue(cond: Value, a: Value, b: Value | undefined, ctx: EvalContext): Value {
  const isOperand = (v: Value | undefined) => v === undefined || v.kind === 'scalar' || v.kind === 'series';
  if (!isOperand(a) || !isOperand(b)) throw new ValidationError('IF branches must be scalars or time series');
  if (cond.kind === 'scalar') {
    const chosen = truthy(cond.value) ? a : b;
    if (chosen === undefined) {
      // "is an empty time series, if metric3 is omitted from the expression"
      const like = a.kind === 'series' ? a : undefined;
      return like
        ? series(new Map(), like)
        : { kind: 'series', points: new Map(), periodSeconds: ctx.defaultPeriod.seconds, periodMs: ctx.defaultPeriod.ms };
    }
    return chosen;
  }
  if (cond.kind !== 'series') throw new ValidationError(`IF condition cannot be ${describe(cond)}`);
  // Per "Using IF expressions": true -> a (0 when a is a series without that timestamp); false -> b, dropped when b
  // is omitted or has no such timestamp; a timestamp missing from the condition is dropped.
  const out = new Map<number, number>();
  for (const [t, c] of cond.points) {
    if (truthy(c)) {
      put(out, t, a.kind === 'scalar' ? a.value : a.kind === 'series' ? (a.points.get(t) ?? 0) : NaN);
    } else if (b !== undefined) {
      if (b.kind === 'scalar') put(out, t, b.value);
      else if (b.kind === 'series' && b.points.has(t)) out.set(t, b.points.get(t)!);
    }
  }
  return series(out, cond);
}

function aggregate(fn: string, v: Value, ctx: EvalContext): Value {
  const reduce = (xs: number[]): number => {
    switch (fn) {
      case 'SUM':
        return xs.reduce((s, x) => s + x, 0);
      case 'AVG':
        return xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length;
      case 'MIN':
        return xs.length === 0 ? NaN : Math.min(...xs);
      case 'MAX':
        return xs.length === 0 ? NaN : Math.max(...xs);
      default:
        return xs.length;
    }
  };
  if (v.kind === 'series') return { kind: 'scalar', value: reduce([...v.points.values()]) };
  if (v.kind === 'array') {
    if (v.items.length === 0)
      return { kind: 'series', points: new Map(), periodSeconds: ctx.defaultPeriod.seconds, periodMs: ctx.defaultPeriod.ms };
    const times = new Set(v.items.flatMap((s) => [...s.points.keys()]));
    const out = new Map<number, number>();
    for (const t of times) {
      const present = v.items.filter((s) => s.points.has(t)).map((s) => s.points.get(t)!);
      // AVG of an array treats missing values as 0 ("Missing values are treated as 0"), so it divides by the count of series.
      const value = fn === 'AVG' ? present.reduce((s, x) => s + x, 0) / v.items.length : reduce(present);
      put(out, t, value);
    }
    return series(out, v.items[0]!);
  }
  throw new ValidationError(`${fn} cannot take ${describe(v)}`);
}

function evaluate(node: MathNode, ctx: EvalContext): Value {
  switch (node.type) {
    case 'num':
      return { kind: 'scalar', value: node.value };
    case 'str':
      return { kind: 'string', value: node.value };
    case 'ref':
      if (/^[a-z]/.test(node.name)) return ctx.resolve(node.name);
      return { kind: 'keyword', name: node.name };
    case 'neg':
      return mapValue(evaluate(node.arg, ctx), (x) => -x, 'unary -');
    case 'bin':
      return combine(evaluate(node.left, ctx), evaluate(node.right, ctx), node.op, ctx.missingValues);
    case 'array': {
      const items: Series[] = [];
      for (const item of node.items) {
        const v = evaluate(item, ctx);
        if (v.kind === 'series') items.push(v);
        else if (v.kind === 'array') items.push(...v.items);
        else throw new ValidationError(`An array can hold only time series, not ${describe(v)}`);
      }
      return { kind: 'array', items };
    }
    case 'call':
      return call(node.name, node.args, ctx);
  }
}

function call(name: string, argNodes: MathNode[], ctx: EvalContext): Value {
  const args = () => argNodes.map((a) => evaluate(a, ctx));
  const arity = (min: number, max = min) => {
    if (argNodes.length < min || argNodes.length > max) {
      throw new ValidationError(`${name} takes ${min === max ? min : `${min} to ${max}`} arguments, got ${argNodes.length}`);
    }
  };
  switch (name) {
    case 'FILL': {
      arity(2);
      const [target, filler] = args() as [Value, Value];
      if (target.kind === 'series') return fill(target, filler, ctx);
      if (target.kind === 'array') return { kind: 'array', items: target.items.map((s) => fill(s, filler, ctx)) };
      throw new ValidationError(`FILL cannot fill ${describe(target)}`);
    }
    case 'IF': {
      arity(2, 3);
      const [cond, a, b] = args() as [Value, Value, Value | undefined];
      return ifValue(cond, a, b, ctx);
    }
    case 'ABS':
      arity(1);
      return mapValue(args()[0]!, Math.abs, name);
    case 'CEIL':
      arity(1);
      return mapValue(args()[0]!, Math.ceil, name);
    case 'FLOOR':
      arity(1);
      return mapValue(args()[0]!, Math.floor, name);
    case 'LOG':
      arity(1);
      return mapValue(args()[0]!, Math.log, name);
    case 'LOG10':
      arity(1);
      return mapValue(args()[0]!, Math.log10, name);
    case 'SUM':
    case 'AVG':
    case 'MIN':
    case 'MAX':
    case 'DATAPOINT_COUNT':
      arity(1);
      return aggregate(name, args()[0]!, ctx);
    case 'METRICS': {
      arity(0, 1);
      const filter = args()[0];
      if (filter !== undefined && filter.kind !== 'string') throw new ValidationError('METRICS takes an optional string');
      return { kind: 'array', items: ctx.metricStatSeries(filter?.value) };
    }
    case 'PERIOD': {
      arity(1);
      const v = args()[0]!;
      if (v.kind !== 'series') throw new ValidationError(`PERIOD cannot take ${describe(v)}`);
      return { kind: 'scalar', value: v.periodSeconds };
    }
    case 'TIME_SERIES': {
      arity(1);
      const v = args()[0]!;
      if (v.kind !== 'scalar') throw new ValidationError(`TIME_SERIES cannot take ${describe(v)}`);
      const out = new Map<number, number>();
      for (const t of ctx.grid(ctx.defaultPeriod.ms)) put(out, t, v.value);
      return { kind: 'series', points: out, periodSeconds: ctx.defaultPeriod.seconds, periodMs: ctx.defaultPeriod.ms };
    }
    default:
      throw new ValidationError(`Unsupported metric math function ${name}`);
  }
}
