/**
 * The bake's arm alarms: six CloudWatch alarms on metric math over the arms' metrics
 * (lambdas/metrics.ts: namespace Logrelay, dimensions {service, Arm}), named
 * `<stack name>-bake-<name>`, exposed as a list (`alarms`), by name (`byName`), and the two
 * absolute SLO alarms apart (`sloAlarms`, what the watch after promotion polls).
 *
 * - experiment-5xx-rate, experiment-p99-latency: the experiment arm alone;
 * - experiment-5xx-vs-control, experiment-4xx-vs-control: the experiment arm's rate minus the
 *   control arm's, in points;
 * - slo-5xx-rate, slo-p99-latency: all traffic, whatever the arm (SLO_ALARMS).
 *
 * Fixed defaults: period ALARM_PERIOD_SECONDS (10 s); in ALARM when 2 of the last 3 periods
 * breach (the SLO alarms: SLO_ALARMS' 3 of 6); GREATER_THAN_THRESHOLD; missing data NOT_BREACHING
 * (missing data is "no traffic", never evidence of health: the bake's minimum-traffic rule, not
 * these alarms, decides whether a phase saw enough to be approved). A period in which an arm has
 * fewer than `minRequestsPerPeriod` requests reads 0, and so does an error rate with fewer than
 * `minErrorsPerPeriod` errors. No alarm actions: the bake state machine reads their states.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { ALARM_PERIOD_SECONDS, ARM_METRICS, METRIC_NAMESPACE, SLO_ALARMS, armDimensions } from '../lambdas/metrics';

/** Thresholds of the bake's alarms. Percentages are of requests; latency is service time (long-poll waits excluded). */
export interface BakeAlarmThresholds {
  /** Experiment arm's 5xx rate, %. */
  experiment5xxPercent: number;
  /** Experiment arm's p99 latency, ms. */
  experimentP99Ms: number;
  /** Experiment's 5xx rate minus control's, percentage points. */
  relative5xxPoints: number;
  /** Experiment's 4xx rate minus control's, percentage points. */
  relative4xxPoints: number;
  /** 5xx rate of all traffic, % (the SLO). */
  slo5xxPercent: number;
  /** p99 latency of either arm, ms (the SLO). */
  sloP99Ms: number;
  /** Requests an arm needs in one period before its rates count (fewer: the period reads 0). */
  minRequestsPerPeriod: number;
  /** Errors a period needs before an error-rate alarm counts it (one error in a handful of requests is not a rate). */
  minErrorsPerPeriod: number;
}

export const DEFAULT_BAKE_ALARMS: BakeAlarmThresholds = {
  experiment5xxPercent: 5,
  experimentP99Ms: 2000,
  relative5xxPoints: 5,
  relative4xxPoints: 5,
  slo5xxPercent: 2,
  sloP99Ms: 3000,
  minRequestsPerPeriod: 5,
  minErrorsPerPeriod: 3,
};

/** The alarms' names after `<stack name>-bake-`. */
export const BAKE_ALARM_NAMES = [
  'experiment-5xx-rate',
  'experiment-p99-latency',
  'experiment-5xx-vs-control',
  'experiment-4xx-vs-control',
  'slo-5xx-rate',
  'slo-p99-latency',
] as const;
export type BakeAlarmName = (typeof BAKE_ALARM_NAMES)[number];

export type Arm = 'control' | 'experiment';

/** The alarms' (and the bake dashboard's) period. */
export const ARM_PERIOD = Duration.seconds(ALARM_PERIOD_SECONDS);

/** One arm's metric (ARM_METRICS) over ARM_PERIOD. */
export const armMetric = (arm: Arm, metricName: string, statistic = 'Sum'): cloudwatch.Metric =>
  new cloudwatch.Metric({ namespace: METRIC_NAMESPACE, metricName, dimensionsMap: armDimensions(arm), statistic, period: ARM_PERIOD });

export interface ArmAlarmsProps {
  /**
   * Thresholds, merged over the defaults.
   * @default DEFAULT_BAKE_ALARMS
   */
  readonly thresholds?: Partial<BakeAlarmThresholds>;
}

export class ArmAlarms extends Construct {
  /** All six, in BAKE_ALARM_NAMES' order: what Judge reads. */
  readonly alarms: cloudwatch.Alarm[];
  /** The absolute SLO alarms among `alarms` (all traffic): what the watch after promotion polls. */
  readonly sloAlarms: cloudwatch.Alarm[];
  readonly byName: ReadonlyMap<BakeAlarmName, cloudwatch.Alarm>;

  constructor(scope: Construct, id: string, props: ArmAlarmsProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    const t = { ...DEFAULT_BAKE_ALARMS, ...props.thresholds };
    const armMetrics = {
      er: armMetric('experiment', ARM_METRICS.requests),
      e4: armMetric('experiment', ARM_METRICS.errors4xx),
      e5: armMetric('experiment', ARM_METRICS.errors5xx),
      ep: armMetric('experiment', ARM_METRICS.latency, 'p99'),
      cr: armMetric('control', ARM_METRICS.requests),
      c4: armMetric('control', ARM_METRICS.errors4xx),
      c5: armMetric('control', ARM_METRICS.errors5xx),
      cp: armMetric('control', ARM_METRICS.latency, 'p99'),
    };
    const n = t.minRequestsPerPeriod;
    const k = t.minErrorsPerPeriod;
    const math = (expression: string, keys: (keyof typeof armMetrics)[], label: string) =>
      new cloudwatch.MathExpression({
        expression,
        usingMetrics: Object.fromEntries(keys.map((key) => [key, armMetrics[key]])),
        period: ARM_PERIOD,
        label,
      });
    const byName = new Map<BakeAlarmName, cloudwatch.Alarm>();
    const alarm = (
      name: BakeAlarmName,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
      evaluationPeriods = 3,
      datapointsToAlarm = 2,
    ) => {
      const a = new cloudwatch.Alarm(this, `${name.replace(/(^|-)(\w)/g, (_x, _d, c: string) => c.toUpperCase())}Alarm`, {
        alarmName: `${stack.stackName}-bake-${name}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods,
        datapointsToAlarm,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      byName.set(name, a);
      return a;
    };
    this.alarms = [
      alarm(
        'experiment-5xx-rate',
        math(`IF(er >= ${n} AND e5 >= ${k}, 100 * e5 / er, 0)`, ['er', 'e5'], 'experiment 5xx %'),
        t.experiment5xxPercent,
        `The experiment arm's 5xx rate is above ${t.experiment5xxPercent}%.`,
      ),
      alarm(
        'experiment-p99-latency',
        math(`IF(er >= ${n}, ep, 0)`, ['er', 'ep'], 'experiment p99 ms'),
        t.experimentP99Ms,
        `The experiment arm's p99 service latency is above ${t.experimentP99Ms} ms.`,
      ),
      alarm(
        'experiment-5xx-vs-control',
        math(
          `IF(er >= ${n} AND cr >= ${n} AND e5 >= ${k}, 100 * (e5 / er - c5 / cr), 0)`,
          ['er', 'e5', 'cr', 'c5'],
          'experiment minus control 5xx, points',
        ),
        t.relative5xxPoints,
        `The experiment arm's 5xx rate exceeds the control arm's by more than ${t.relative5xxPoints} points.`,
      ),
      alarm(
        'experiment-4xx-vs-control',
        math(
          `IF(er >= ${n} AND cr >= ${n} AND e4 >= ${k}, 100 * (e4 / er - c4 / cr), 0)`,
          ['er', 'e4', 'cr', 'c4'],
          'experiment minus control 4xx, points',
        ),
        t.relative4xxPoints,
        `The experiment arm's 4xx rate exceeds the control arm's by more than ${t.relative4xxPoints} points: valid requests are being refused in one arm only.`,
      ),
      alarm(
        'slo-5xx-rate',
        math(`IF(er + cr >= ${n} AND e5 + c5 >= ${k}, 100 * (e5 + c5) / (er + cr), 0)`, ['er', 'e5', 'cr', 'c5'], 'all traffic 5xx %'),
        t.slo5xxPercent,
        `The 5xx rate of all traffic is above ${t.slo5xxPercent}% (a config that breaks the process hurts both arms).`,
        SLO_ALARMS.evaluationPeriods,
        SLO_ALARMS.datapointsToAlarm,
      ),
      alarm(
        'slo-p99-latency',
        math(`MAX([IF(cr >= ${n}, cp, 0), IF(er >= ${n}, ep, 0)])`, ['cr', 'cp', 'er', 'ep'], 'p99 of the slower arm, ms'),
        t.sloP99Ms,
        `The p99 service latency of an arm is above ${t.sloP99Ms} ms.`,
        SLO_ALARMS.evaluationPeriods,
        SLO_ALARMS.datapointsToAlarm,
      ),
    ];
    this.byName = byName;
    this.sloAlarms = SLO_ALARMS.names.map((name) => byName.get(name)!);
  }
}
