/**
 * CloudWatch metric alarm evaluation for the local stand-in, plus `LocalCloudWatch`, which wraps the metric store and
 * the alarms behind methods shaped like the CloudWatch API calls (PutMetricData, GetMetricData, PutMetricAlarm,
 * DescribeAlarms, DeleteAlarms, SetAlarmState). Pure TypeScript, no AWS SDK.
 *
 * Alarm semantics follow:
 * - "Evaluating an alarm": https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html
 *   (M out of N: Datapoints to Alarm breaching datapoints among the last Evaluation Periods datapoints).
 * - "Configuring how CloudWatch alarms treat missing data", section "How alarm state is evaluated when data is
 *   missing" and "Avoiding premature transitions to alarm state":
 *   https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html
 *
 * The evaluation algorithm, for N = EvaluationPeriods and M = DatapointsToAlarm, over an evaluation range of R >= N
 * periods (the docs' example retrieves 5 periods for N = 3; the real size is unpublished, so R defaults to N + 2):
 * 1. If the range holds at least N real datapoints, the N most recent real datapoints are evaluated (reaching back
 *    past missing periods) and TreatMissingData is not used. ALARM if at least M breach, else OK.
 * 2. If it holds none: missing -> INSUFFICIENT_DATA, ignore -> current state kept, breaching -> ALARM,
 *    notBreaching -> OK.
 * 3. Otherwise all real datapoints are evaluated plus N - (real count) filled ones (the most recent missing periods):
 *    - breaching: fills breach; notBreaching: fills don't; ALARM if at least M breach, else OK.
 *    - missing / ignore: fills count for nothing. ALARM if at least M real datapoints breach. Otherwise the
 *      "premature alarm" rule: if every real datapoint breaches and the oldest one is at least M periods old (so all
 *      more recent datapoints are breaching or missing), missing -> ALARM and ignore -> current state kept.
 *      Otherwise OK.
 *    Reading of the rule: the docs say "the oldest available breaching datapoint"; their table row `0 - X - -` (2 of 3,
 *    MISSING -> OK) shows that an older non-breaching datapoint in the range blocks the rule, so this module requires
 *    the oldest real datapoint in the range to be the breaching one. This reproduces every row of both docs tables.
 * Alarms on the AWS/DynamoDB namespace without TreatMissingData use `ignore`, as the same page states.
 */

import {
  MetricStore,
  ValidationError,
  dimensionsFromList,
  type MathMissingValues,
  type MetricDataQuery,
  type MetricDimension,
  type MetricDataResult,
} from './metrics';

export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
export type ComparisonOperator =
  | 'GreaterThanThreshold'
  | 'GreaterThanOrEqualToThreshold'
  | 'LessThanThreshold'
  | 'LessThanOrEqualToThreshold';
export type TreatMissingData = 'missing' | 'notBreaching' | 'breaching' | 'ignore';

/** The properties of an AWS::CloudWatch::Alarm resource (or a PutMetricAlarm request) that evaluation uses. */
export interface AlarmDefinition {
  AlarmName?: string;
  AlarmDescription?: string;
  Namespace?: string;
  MetricName?: string;
  Dimensions?: MetricDimension[];
  Statistic?: string;
  ExtendedStatistic?: string;
  Period?: number;
  Unit?: string;
  Metrics?: MetricDataQuery[];
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  Threshold: number;
  ComparisonOperator: ComparisonOperator | string;
  TreatMissingData?: TreatMissingData | string;
  ActionsEnabled?: boolean;
  AlarmActions?: unknown[];
  OKActions?: unknown[];
  InsufficientDataActions?: unknown[];
  EvaluateLowSampleCountPercentile?: string;
}

/** One period of the evaluation range: a number, null/undefined for missing, or the value with its timestamp. */
export type EvaluationSlot = number | null | undefined | { timestampMs?: number; value: number | null | undefined };

export interface EvaluatedDatapoint {
  /** 1 = the most recent period of the evaluation range. */
  age: number;
  timestampMs?: number;
  /** null for a filled (missing) datapoint. */
  value: number | null;
  breaching: boolean;
  filled: boolean;
}

export type EvaluationRule = 'enough-data' | 'filled' | 'premature-alarm' | 'all-missing' | 'retained';

export interface AlarmEvaluation {
  state: AlarmState;
  reason: string;
  /** Breaching datapoints among the evaluated ones (filled breaching datapoints included). */
  breachingCount: number;
  /** Newest first. */
  evaluatedDatapoints: EvaluatedDatapoint[];
  realDatapointCount: number;
  filledCount: number;
  rule: EvaluationRule;
  treatMissingData: TreatMissingData;
  evaluationPeriods: number;
  datapointsToAlarm: number;
}

const OPERATORS: Record<ComparisonOperator, { test: (v: number, t: number) => boolean; text: string }> = {
  GreaterThanThreshold: { test: (v, t) => v > t, text: 'greater than' },
  GreaterThanOrEqualToThreshold: { test: (v, t) => v >= t, text: 'greater than or equal to' },
  LessThanThreshold: { test: (v, t) => v < t, text: 'less than' },
  LessThanOrEqualToThreshold: { test: (v, t) => v <= t, text: 'less than or equal to' },
};

const TREATMENTS: readonly TreatMissingData[] = ['missing', 'notBreaching', 'breaching', 'ignore'];

function operatorOf(def: AlarmDefinition) {
  const op = OPERATORS[def.ComparisonOperator as ComparisonOperator];
  if (!op) throw new ValidationError(`Unsupported ComparisonOperator ${def.ComparisonOperator}`);
  return op;
}

export function effectiveTreatMissingData(def: AlarmDefinition): TreatMissingData {
  if (def.TreatMissingData === undefined) return def.Namespace === 'AWS/DynamoDB' ? 'ignore' : 'missing';
  if (!TREATMENTS.includes(def.TreatMissingData as TreatMissingData)) {
    throw new ValidationError(`Unsupported TreatMissingData ${def.TreatMissingData}`);
  }
  return def.TreatMissingData as TreatMissingData;
}

function counts(def: AlarmDefinition): { n: number; m: number } {
  const n = Number(def.EvaluationPeriods);
  const m = def.DatapointsToAlarm === undefined ? n : Number(def.DatapointsToAlarm);
  if (!Number.isInteger(n) || n < 1)
    throw new ValidationError(`EvaluationPeriods must be a positive integer, got ${def.EvaluationPeriods}`);
  if (!Number.isInteger(m) || m < 1 || m > n) {
    throw new ValidationError(`DatapointsToAlarm must be between 1 and EvaluationPeriods (${n}), got ${def.DatapointsToAlarm}`);
  }
  return { n, m };
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? v.toFixed(1) : String(v);
}

function formatPoints(points: readonly EvaluatedDatapoint[]): string {
  return points
    .map((p) => {
      const value = p.filled ? 'missing' : formatNumber(p.value!);
      return p.timestampMs === undefined ? value : `${value} (${new Date(p.timestampMs).toISOString()})`;
    })
    .join(', ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Evaluates an alarm over its evaluation range. Pure: the same inputs always give the same result.
 * @param datapointsNewestFirst one entry per period of the evaluation range, index 0 = most recent complete period.
 *   A range shorter than EvaluationPeriods is padded with missing periods.
 */
export function evaluateAlarm(
  def: AlarmDefinition,
  previousState: AlarmState,
  datapointsNewestFirst: readonly EvaluationSlot[],
): AlarmEvaluation {
  const { n, m } = counts(def);
  const op = operatorOf(def);
  const threshold = Number(def.Threshold);
  if (!Number.isFinite(threshold)) throw new ValidationError(`Threshold must be a number, got ${def.Threshold}`);
  const treat = effectiveTreatMissingData(def);

  const slots = datapointsNewestFirst.map((s, i) => {
    const raw = typeof s === 'object' && s !== null ? s : { value: s };
    const value = raw.value === undefined || raw.value === null || Number.isNaN(raw.value) ? null : raw.value;
    return { age: i + 1, timestampMs: raw.timestampMs, value };
  });
  while (slots.length < n) slots.push({ age: slots.length + 1, timestampMs: undefined, value: null });

  const point = (s: (typeof slots)[number], filled: boolean, fillBreaches = false): EvaluatedDatapoint => {
    const base: EvaluatedDatapoint = {
      age: s.age,
      value: filled ? null : s.value,
      breaching: filled ? fillBreaches : op.test(s.value!, threshold),
      filled,
    };
    if (s.timestampMs !== undefined) base.timestampMs = s.timestampMs;
    return base;
  };
  const reals = slots.filter((s) => s.value !== null).map((s) => point(s, false));
  const thresholdText = `the threshold (${formatNumber(threshold)})`;
  const result = (state: AlarmState, rule: EvaluationRule, evaluated: EvaluatedDatapoint[], reason: string): AlarmEvaluation => ({
    state,
    reason,
    breachingCount: evaluated.filter((p) => p.breaching).length,
    evaluatedDatapoints: evaluated,
    realDatapointCount: reals.length,
    filledCount: evaluated.filter((p) => p.filled).length,
    rule,
    treatMissingData: treat,
    evaluationPeriods: n,
    datapointsToAlarm: m,
  });
  const thresholdReason = (state: AlarmState, evaluated: EvaluatedDatapoint[]): string => {
    const breaching = evaluated.filter((p) => p.breaching).length;
    const fills = evaluated.filter((p) => p.filled);
    const fillText =
      fills.length === 0
        ? ''
        : ` ${plural(fills.length, 'missing datapoint')} ${fills.length === 1 ? 'was' : 'were'} treated as ${
            treat === 'breaching' ? 'breaching' : treat === 'notBreaching' ? 'not breaching' : 'missing'
          }.`;
    if (state === 'ALARM') {
      return (
        `Threshold Crossed: ${breaching} out of the last ${plural(evaluated.length, 'datapoint')} [${formatPoints(evaluated)}] ` +
        `${breaching === 1 ? 'was' : 'were'} ${op.text} ${thresholdText} ` +
        `(minimum ${plural(m, 'datapoint')} for OK -> ALARM transition).${fillText}`
      );
    }
    // Fills count as not breaching only under notBreaching; under missing/ignore they count for nothing.
    const notBreaching = evaluated.filter((p) => !p.breaching && (!p.filled || treat === 'notBreaching')).length;
    return (
      `Threshold Crossed: ${notBreaching} out of the last ${plural(evaluated.length, 'datapoint')} [${formatPoints(evaluated)}] ` +
      `${notBreaching === 1 ? 'was' : 'were'} not ${op.text} ${thresholdText}; ` +
      `${breaching} breaching, ${m} needed for ALARM.${fillText}`
    );
  };
  const byThreshold = (rule: EvaluationRule, evaluated: EvaluatedDatapoint[]): AlarmEvaluation => {
    const state: AlarmState = evaluated.filter((p) => p.breaching).length >= m ? 'ALARM' : 'OK';
    return result(state, rule, evaluated, thresholdReason(state, evaluated));
  };

  // 1. Enough real datapoints: the N most recent ones decide; missing-data treatment is not used.
  if (reals.length >= n) return byThreshold('enough-data', reals.slice(0, n));

  const fillCount = n - reals.length;
  const missingSlots = slots.filter((s) => s.value === null).slice(0, fillCount);
  const newestFirst = (points: EvaluatedDatapoint[]) => points.sort((a, b) => a.age - b.age);

  // 2. No real datapoint in the range.
  if (reals.length === 0) {
    if (treat === 'missing') {
      return result(
        'INSUFFICIENT_DATA',
        'all-missing',
        [],
        `Insufficient Data: ${plural(slots.length, 'datapoint')} ${slots.length === 1 ? 'was' : 'were'} unknown.`,
      );
    }
    if (treat === 'ignore') {
      return result(
        previousState,
        'retained',
        [],
        `No datapoints in the last ${plural(slots.length, 'period')} and missing data is ignored: state ${previousState} retained.`,
      );
    }
    return byThreshold(
      'all-missing',
      missingSlots.map((s) => point(s, true, treat === 'breaching')),
    );
  }

  // 3. Some real datapoints, fewer than N.
  if (treat === 'breaching' || treat === 'notBreaching') {
    const fills = missingSlots.map((s) => point(s, true, treat === 'breaching'));
    return byThreshold('filled', newestFirst([...reals, ...fills]));
  }
  const evaluated = newestFirst([...reals, ...missingSlots.map((s) => point(s, true, false))]);
  const realBreaching = reals.filter((p) => p.breaching).length;
  if (realBreaching >= m) return byThreshold('filled', evaluated);
  const oldest = reals[reals.length - 1]!;
  if (reals.every((p) => p.breaching) && oldest.age >= m) {
    const detail =
      `the oldest real datapoint in the last ${plural(slots.length, 'period')} [${formatPoints(reals)}] is ${op.text} ` +
      `${thresholdText}, is ${plural(oldest.age, 'period')} old (at least DatapointsToAlarm = ${m}) and every more ` +
      `recent datapoint is breaching or missing`;
    if (treat === 'missing') {
      return result('ALARM', 'premature-alarm', evaluated, `Threshold Crossed: ${detail}.`);
    }
    return result(
      previousState,
      'retained',
      evaluated,
      `Only ${plural(reals.length, 'real datapoint')}; ${detail}, and missing data is ignored: state ${previousState} retained.`,
    );
  }
  return byThreshold('filled', evaluated);
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation against the metric store
// ---------------------------------------------------------------------------------------------------------------

/** The period, in CloudWatch seconds, of a metric alarm or a metric math alarm. */
export function alarmPeriodSeconds(def: AlarmDefinition): number {
  if (def.Metrics && def.Metrics.length > 0) {
    const returned = returnedQuery(def);
    const period = returned.MetricStat?.Period ?? returned.Period;
    if (period !== undefined) return Number(period);
    const periods = def.Metrics.map((q) => q.MetricStat?.Period ?? q.Period).filter((p): p is number => p !== undefined);
    if (periods.length === 0) throw new ValidationError('A metric math alarm needs a Period on its metrics');
    return Math.min(...periods.map(Number));
  }
  if (def.Period === undefined) throw new ValidationError('Period is required');
  return Number(def.Period);
}

function returnedQuery(def: AlarmDefinition): MetricDataQuery {
  const metrics = def.Metrics ?? [];
  const flagged = metrics.filter((q) => q.ReturnData === true);
  if (flagged.length === 1) return flagged[0]!;
  if (flagged.length > 1) throw new ValidationError('Exactly one query of an alarm may have ReturnData: true');
  const candidates = metrics.filter((q) => q.ReturnData !== false);
  if (candidates.length === 1) return candidates[0]!;
  throw new ValidationError('An alarm on Metrics needs exactly one query with ReturnData: true');
}

export interface EvaluationWindow {
  periodSeconds: number;
  /** Scaled period length in store milliseconds. */
  periodMs: number;
  /** Start of the oldest period in the range (inclusive). */
  startMs: number;
  /** End of the last complete period (exclusive) = start of the current, incomplete period. */
  endMs: number;
  /** Newest first, one per period. */
  slots: { timestampMs: number; value: number | null }[];
}

export interface WindowOptions {
  /** Periods retrieved beyond EvaluationPeriods (the evaluation range is N + this). Default 2. */
  extraEvaluationPeriods?: number;
}

/** Reads the evaluation range of an alarm from the store: the periods ending at the last complete period before nowMs. */
export function collectEvaluationWindow(
  store: MetricStore,
  def: AlarmDefinition,
  nowMs: number,
  options: WindowOptions = {},
): EvaluationWindow {
  const { n } = counts(def);
  const periodSeconds = alarmPeriodSeconds(def);
  const periodMs = store.periodMs(periodSeconds);
  const range = n + Math.max(0, options.extraEvaluationPeriods ?? 2);
  const endMs = Math.floor(nowMs / periodMs) * periodMs;
  const startMs = endMs - range * periodMs;
  const values = new Map<number, number>();
  if (def.Metrics && def.Metrics.length > 0) {
    const returned = returnedQuery(def);
    const queries = def.Metrics.map((q) => ({ ...q, ReturnData: q.Id === returned.Id }));
    const result: MetricDataResult | undefined = store.getMetricData(queries, startMs, endMs).MetricDataResults[0];
    if (result) for (const [i, t] of result.Timestamps.entries()) values.set(t, result.Values[i]!);
  } else {
    const stat = def.Statistic ?? def.ExtendedStatistic;
    if (!def.Namespace || !def.MetricName || !stat) {
      throw new ValidationError('A metric alarm needs Namespace, MetricName and Statistic or ExtendedStatistic (or Metrics)');
    }
    for (const dp of store.statistic({
      namespace: def.Namespace,
      metricName: def.MetricName,
      dimensions: dimensionsFromList(def.Dimensions),
      stat,
      periodSeconds,
      startMs,
      endMs,
      unit: def.Unit,
    })) {
      values.set(dp.timestampMs, dp.value);
    }
  }
  const slots: EvaluationWindow['slots'] = [];
  for (let i = 0; i < range; i++) {
    const t = endMs - (i + 1) * periodMs;
    slots.push({ timestampMs: t, value: values.get(t) ?? null });
  }
  return { periodSeconds, periodMs, startMs, endMs, slots };
}

/** Queries the store for the alarm's evaluation range at nowMs and evaluates it. */
export function evaluateAlarmInStore(
  store: MetricStore,
  def: AlarmDefinition,
  previousState: AlarmState,
  nowMs: number,
  options: WindowOptions = {},
): AlarmEvaluation & { window: EvaluationWindow } {
  const window = collectEvaluationWindow(store, def, nowMs, options);
  return { ...evaluateAlarm(def, previousState, window.slots), window };
}

// ---------------------------------------------------------------------------------------------------------------
// CloudFormation helper
// ---------------------------------------------------------------------------------------------------------------

export interface TemplateAlarmOptions {
  /** Turns an intrinsic function (Ref, Fn::GetAtt, Fn::Join...) into a string. Default: strings as is, else JSON. */
  resolve?: (value: unknown, path: string) => unknown;
}

/**
 * Extracts the AWS::CloudWatch::Alarm resources of a synthesized template. AlarmName defaults to the logical id.
 * Dimension values, thresholds and other properties that are intrinsic functions go through `resolve`.
 */
export function alarmsFromTemplate(
  template: { Resources?: Record<string, unknown> },
  options: TemplateAlarmOptions = {},
): AlarmDefinition[] {
  const resolve =
    options.resolve ?? ((v: unknown) => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v)));
  const walk = (v: unknown, path: string): unknown => {
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
    if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      if (keys.length === 1 && (keys[0] === 'Ref' || keys[0]!.startsWith('Fn::'))) return resolve(v, path);
      const out: Record<string, unknown> = {};
      for (const k of keys) out[k] = walk((v as Record<string, unknown>)[k], `${path}.${k}`);
      return out;
    }
    return v;
  };
  const out: AlarmDefinition[] = [];
  for (const [logicalId, resource] of Object.entries(template.Resources ?? {})) {
    const r = resource as { Type?: string; Properties?: Record<string, unknown> };
    if (r.Type !== 'AWS::CloudWatch::Alarm' || !r.Properties) continue;
    const props = walk(r.Properties, logicalId) as Record<string, unknown>;
    const def = { ...props } as unknown as AlarmDefinition;
    def.AlarmName = typeof props.AlarmName === 'string' ? props.AlarmName : logicalId;
    def.EvaluationPeriods = Number(props.EvaluationPeriods);
    def.Threshold = Number(props.Threshold);
    if (props.DatapointsToAlarm !== undefined) def.DatapointsToAlarm = Number(props.DatapointsToAlarm);
    if (props.Period !== undefined) def.Period = Number(props.Period);
    out.push(def);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// LocalCloudWatch: API-shaped facade
// ---------------------------------------------------------------------------------------------------------------

export type TimeInput = Date | number | string;

export interface MetricDatum {
  MetricName: string;
  Dimensions?: MetricDimension[];
  Timestamp?: TimeInput;
  Value?: number;
  Values?: number[];
  Counts?: number[];
  StatisticValues?: { SampleCount: number; Sum: number; Minimum: number; Maximum: number };
  Unit?: string;
  StorageResolution?: number;
}

export interface PutMetricDataInput {
  Namespace: string;
  MetricData: MetricDatum[];
}

export interface GetMetricDataInput {
  MetricDataQueries: MetricDataQuery[];
  StartTime: TimeInput;
  EndTime: TimeInput;
  ScanBy?: 'TimestampDescending' | 'TimestampAscending';
}

export interface GetMetricDataOutput {
  MetricDataResults: { Id: string; Label: string; Timestamps: Date[]; Values: number[]; StatusCode: 'Complete' }[];
  Messages: never[];
}

/** An alarm as DescribeAlarms reports it: its definition, with defaults filled in, and its state. */
export interface MetricAlarmDescription
  extends Omit<
    AlarmDefinition,
    | 'AlarmName'
    | 'DatapointsToAlarm'
    | 'ComparisonOperator'
    | 'TreatMissingData'
    | 'ActionsEnabled'
    | 'AlarmActions'
    | 'OKActions'
    | 'InsufficientDataActions'
    | 'EvaluateLowSampleCountPercentile'
  > {
  AlarmName: string;
  StateValue: AlarmState;
  StateReason: string;
  /** JSON with the evaluated datapoints of the last state transition, in the spirit of CloudWatch's StateReasonData. */
  StateReasonData?: string;
  StateUpdatedTimestamp: Date;
  StateTransitionedTimestamp: Date;
  DatapointsToAlarm: number;
  ComparisonOperator: string;
  TreatMissingData: TreatMissingData;
  ActionsEnabled: boolean;
}

export interface DescribeAlarmsInput {
  AlarmNames?: string[];
  AlarmNamePrefix?: string;
  StateValue?: AlarmState;
}

export interface AlarmStateChange {
  alarmName: string;
  oldState: AlarmState;
  newState: AlarmState;
  reason: string;
  timestampMs: number;
  /** Undefined when the change came from setAlarmState. */
  evaluation?: AlarmEvaluation & { window: EvaluationWindow };
}

export interface LocalCloudWatchOptions {
  /** Injectable clock (epoch ms). Default Date.now. */
  now?: () => number;
  /** Divides every Period (bucketing and evaluation). Default 1. */
  timeScale?: number;
  /** Periods retrieved beyond EvaluationPeriods for the evaluation range. Default 2 (the docs' 3 -> 5 example). */
  extraEvaluationPeriods?: number;
  mathMissingValues?: MathMissingValues;
  retentionMs?: number;
}

interface AlarmRecord {
  def: AlarmDefinition & { AlarmName: string };
  state: AlarmState;
  reason: string;
  reasonData?: string;
  updatedMs: number;
  /** True until the first evaluation, which always records its reason (like CloudWatch leaving "Unchecked"). */
  unchecked: boolean;
  lastEvaluation?: AlarmEvaluation & { window: EvaluationWindow };
}

function toMs(t: TimeInput): number {
  const ms = t instanceof Date ? t.getTime() : typeof t === 'number' ? t : Date.parse(t);
  if (!Number.isFinite(ms)) throw new ValidationError(`Invalid timestamp ${String(t)}`);
  return ms;
}

export class LocalCloudWatch {
  readonly store: MetricStore;
  readonly timeScale: number;
  private readonly clock: () => number;
  private readonly extraEvaluationPeriods: number;
  private readonly alarms = new Map<string, AlarmRecord>();
  private readonly listeners = new Set<(change: AlarmStateChange) => void>();

  constructor(options: LocalCloudWatchOptions = {}) {
    this.clock = options.now ?? Date.now;
    this.timeScale = options.timeScale ?? 1;
    this.extraEvaluationPeriods = options.extraEvaluationPeriods ?? 2;
    this.store = new MetricStore({
      timeScale: this.timeScale,
      now: this.clock,
      mathMissingValues: options.mathMissingValues,
      retentionMs: options.retentionMs,
    });
  }

  now(): number {
    return this.clock();
  }

  putMetricData(input: PutMetricDataInput): void {
    for (const d of input.MetricData) {
      const dims = dimensionsFromList(d.Dimensions);
      const timestampMs = d.Timestamp === undefined ? this.clock() : toMs(d.Timestamp);
      const opts = { highResolution: d.StorageResolution === 1 };
      const unit = d.Unit;
      if (d.StatisticValues) {
        const s = d.StatisticValues;
        this.store.putStatisticSet(
          input.Namespace,
          d.MetricName,
          dims,
          { timestampMs, sampleCount: s.SampleCount, sum: s.Sum, minimum: s.Minimum, maximum: s.Maximum, unit },
          opts,
        );
      } else if (d.Values) {
        if (d.Counts && d.Counts.length !== d.Values.length) throw new ValidationError('Values and Counts must have the same length');
        this.store.putDatapoints(
          input.Namespace,
          d.MetricName,
          dims,
          d.Values.map((value, i) => ({ timestampMs, value, unit, count: d.Counts?.[i] ?? 1 })),
          opts,
        );
      } else if (d.Value !== undefined) {
        this.store.putDatapoints(input.Namespace, d.MetricName, dims, [{ timestampMs, value: d.Value, unit }], opts);
      } else {
        throw new ValidationError(`MetricDatum ${d.MetricName} needs Value, Values or StatisticValues`);
      }
    }
  }

  ingestEmf(line: string): boolean {
    return this.store.ingestEmf(line);
  }

  getMetricData(input: GetMetricDataInput): GetMetricDataOutput {
    const out = this.store.getMetricData(input.MetricDataQueries, toMs(input.StartTime), toMs(input.EndTime), { scanBy: input.ScanBy });
    return {
      MetricDataResults: out.MetricDataResults.map((r) => ({ ...r, Timestamps: r.Timestamps.map((t) => new Date(t)) })),
      Messages: [],
    };
  }

  /** Creates or replaces an alarm. As in CloudWatch, replacing keeps the current state. */
  putMetricAlarm(def: AlarmDefinition): void {
    if (!def.AlarmName) throw new ValidationError('AlarmName is required');
    // Validate now rather than at the first evaluation.
    counts(def);
    operatorOf(def);
    effectiveTreatMissingData(def);
    alarmPeriodSeconds(def);
    const existing = this.alarms.get(def.AlarmName);
    const copy = { ...def, AlarmName: def.AlarmName };
    if (existing) {
      existing.def = copy;
      return;
    }
    this.alarms.set(def.AlarmName, {
      def: copy,
      state: 'INSUFFICIENT_DATA',
      reason: 'Unchecked: Initial alarm creation',
      updatedMs: this.clock(),
      unchecked: true,
    });
  }

  loadAlarms(defs: readonly AlarmDefinition[]): void {
    for (const def of defs) this.putMetricAlarm(def);
  }

  deleteAlarms(input: { AlarmNames: string[] }): void {
    for (const name of input.AlarmNames) this.alarms.delete(name);
  }

  /** Re-evaluates the matching alarms at now() and describes them. */
  describeAlarms(input: DescribeAlarmsInput = {}): { MetricAlarms: MetricAlarmDescription[] } {
    const names = [...this.alarms.keys()].filter(
      (name) =>
        (input.AlarmNames === undefined || input.AlarmNames.includes(name)) &&
        (input.AlarmNamePrefix === undefined || name.startsWith(input.AlarmNamePrefix)),
    );
    const nowMs = this.clock();
    for (const name of names) this.evaluateOne(this.alarms.get(name)!, nowMs);
    return {
      MetricAlarms: names
        .sort()
        .map((name) => this.describeOne(this.alarms.get(name)!))
        .filter((a) => input.StateValue === undefined || a.StateValue === input.StateValue),
    };
  }

  /** Mirrors SetAlarmState: forces a state until the next evaluation. */
  setAlarmState(input: { AlarmName: string; StateValue: AlarmState; StateReason: string }): void {
    const record = this.alarms.get(input.AlarmName);
    if (!record) throw new ValidationError(`Alarm ${input.AlarmName} not found`);
    this.transition(record, input.StateValue, input.StateReason, this.clock(), undefined, true);
  }

  /** Evaluates every alarm at nowMs (default now()) and returns the state changes. */
  tick(nowMs: number = this.clock()): AlarmStateChange[] {
    const changes: AlarmStateChange[] = [];
    for (const record of this.alarms.values()) {
      const change = this.evaluateOne(record, nowMs);
      if (change) changes.push(change);
    }
    return changes;
  }

  /** The details of the last evaluation of an alarm (evaluated datapoints, rule used, window). */
  lastEvaluation(alarmName: string): (AlarmEvaluation & { window: EvaluationWindow }) | undefined {
    return this.alarms.get(alarmName)?.lastEvaluation;
  }

  onStateChange(listener: (change: AlarmStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls tick() every intervalMs of real time (default: one scaled minute). Returns a stop function. */
  startEvaluating(intervalMs: number = Math.max(10, 60_000 / this.timeScale)): () => void {
    const timer = setInterval(() => this.tick(), intervalMs);
    timer.unref?.();
    return () => clearInterval(timer);
  }

  private evaluateOne(record: AlarmRecord, nowMs: number): AlarmStateChange | undefined {
    const evaluation = evaluateAlarmInStore(this.store, record.def, record.state, nowMs, {
      extraEvaluationPeriods: this.extraEvaluationPeriods,
    });
    record.lastEvaluation = evaluation;
    if (evaluation.state === record.state && !record.unchecked) return undefined;
    const changed = evaluation.state !== record.state;
    const change = this.transition(record, evaluation.state, evaluation.reason, nowMs, evaluation, changed);
    return changed ? change : undefined;
  }

  private transition(
    record: AlarmRecord,
    newState: AlarmState,
    reason: string,
    nowMs: number,
    evaluation: (AlarmEvaluation & { window: EvaluationWindow }) | undefined,
    notify: boolean,
  ): AlarmStateChange {
    const change: AlarmStateChange = { alarmName: record.def.AlarmName, oldState: record.state, newState, reason, timestampMs: nowMs };
    if (evaluation) change.evaluation = evaluation;
    record.state = newState;
    record.unchecked = false;
    record.reason = reason;
    record.updatedMs = nowMs;
    record.reasonData = evaluation
      ? JSON.stringify({
          version: '1.0',
          queryDate: new Date(nowMs).toISOString(),
          startDate: new Date(evaluation.window.startMs).toISOString(),
          period: evaluation.window.periodSeconds,
          timeScale: this.timeScale,
          threshold: Number(record.def.Threshold),
          rule: evaluation.rule,
          evaluatedDatapoints: evaluation.evaluatedDatapoints.map((p) => ({
            timestamp: p.timestampMs === undefined ? undefined : new Date(p.timestampMs).toISOString(),
            value: p.value,
            breaching: p.breaching,
            filled: p.filled,
          })),
        })
      : undefined;
    if (notify) for (const listener of this.listeners) listener(change);
    return change;
  }

  private describeOne(record: AlarmRecord): MetricAlarmDescription {
    const def = record.def;
    const { n, m } = counts(def);
    const out: MetricAlarmDescription = {
      AlarmName: def.AlarmName,
      StateValue: record.state,
      StateReason: record.reason,
      StateUpdatedTimestamp: new Date(record.updatedMs),
      StateTransitionedTimestamp: new Date(record.updatedMs),
      EvaluationPeriods: n,
      DatapointsToAlarm: m,
      Threshold: Number(def.Threshold),
      ComparisonOperator: def.ComparisonOperator,
      TreatMissingData: effectiveTreatMissingData(def),
      ActionsEnabled: def.ActionsEnabled ?? true,
    };
    if (record.reasonData !== undefined) out.StateReasonData = record.reasonData;
    const optional = [
      'AlarmDescription',
      'Namespace',
      'MetricName',
      'Dimensions',
      'Statistic',
      'ExtendedStatistic',
      'Period',
      'Unit',
      'Metrics',
    ] as const;
    for (const key of optional) {
      if (def[key] !== undefined) (out as unknown as Record<string, unknown>)[key] = def[key];
    }
    return out;
  }
}
