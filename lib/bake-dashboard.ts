/**
 * The bake's CloudWatch dashboard, `<stack name>-bake`, top to bottom: a text header; what is
 * under test (weight % and version by profile, BAKE_METRICS); per arm, requests, 5xx rate,
 * 4xx rate and p99 service latency (ARM_METRICS); the states of the bake's alarms.
 *
 * Fixed defaults: default interval 1 hour; every metric over ARM_PERIOD (10 s), the same period
 * as the alarms; a rate reads 0 in a period with no requests.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { PROFILES } from '../lambdas/domain/config';
import { ARM_METRICS, BAKE_METRICS, METRIC_NAMESPACE, SERVICE_NAME } from '../lambdas/metrics';
import { ARM_PERIOD, armMetric, type Arm } from './arm-alarms';

export interface BakeDashboardProps {
  /** The alarms whose states the bottom row shows (ArmAlarms' `alarms`). */
  readonly alarms: cloudwatch.IAlarm[];
}

export class BakeDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: BakeDashboardProps) {
    super(scope, id);
    const both = (f: (arm: Arm) => cloudwatch.IMetric) => [f('control'), f('experiment')];
    const rate = (arm: Arm, errors: string, label: string) =>
      new cloudwatch.MathExpression({
        expression: `IF(r${arm[0]} > 0, 100 * e${arm[0]} / r${arm[0]}, 0)`,
        usingMetrics: { [`r${arm[0]}`]: armMetric(arm, ARM_METRICS.requests), [`e${arm[0]}`]: armMetric(arm, errors) },
        period: ARM_PERIOD,
        label: `${arm} ${label}`,
      });
    const underTest = (metricName: string, statistic: string) =>
      PROFILES.map(
        (p) =>
          new cloudwatch.Metric({
            namespace: METRIC_NAMESPACE,
            metricName,
            dimensionsMap: { service: SERVICE_NAME, Profile: p },
            statistic,
            period: ARM_PERIOD,
            label: p,
          }),
      );
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${Stack.of(this).stackName}-bake`,
      defaultInterval: Duration.hours(1),
      widgets: [
        [
          new cloudwatch.TextWidget({
            markdown:
              '# Logrelay config bake\nEach request is served by the **control** arm (every profile at its control version) or the **experiment** arm (one profile at the version under test). A phase is rejected the moment any alarm below fires; the bake record (`GET /bakes/{bakeId}`) has each verdict in numbers.',
            width: 24,
            height: 2,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Under test: weight % by profile',
            left: underTest(BAKE_METRICS.weight, 'Maximum'),
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Under test: version by profile',
            left: underTest(BAKE_METRICS.version, 'Maximum'),
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Requests per arm',
            left: both((a) => armMetric(a, ARM_METRICS.requests).with({ label: a })),
            width: 6,
          }),
          new cloudwatch.GraphWidget({
            title: '5xx rate per arm (%)',
            left: both((a) => rate(a, ARM_METRICS.errors5xx, '5xx %')),
            width: 6,
          }),
          new cloudwatch.GraphWidget({
            title: '4xx rate per arm (%)',
            left: both((a) => rate(a, ARM_METRICS.errors4xx, '4xx %')),
            width: 6,
          }),
          new cloudwatch.GraphWidget({
            title: 'p99 service latency per arm (ms)',
            left: both((a) => armMetric(a, ARM_METRICS.latency, 'p99').with({ label: a })),
            width: 6,
          }),
        ],
        [new cloudwatch.AlarmStatusWidget({ title: 'Bake alarms', alarms: props.alarms, width: 24, height: 3 })],
      ],
    });
  }
}
