/**
 * Reads both arms' traffic over a time window from CloudWatch (GetMetricData), for the bake's
 * verdicts. The metric identities come from lambdas/metrics.ts, as the handlers emit them.
 */
import { GetMetricDataCommand, type CloudWatchClient, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { ArmStats } from '../domain/bake';
import { ALARM_PERIOD_SECONDS, ARM_METRICS, ARMS, METRIC_NAMESPACE, armDimensions } from '../metrics';

export interface ArmMetricsReader {
  armStats(fromMs: number, toMs: number): Promise<{ control: ArmStats; experiment: ArmStats }>;
}

type Arm = (typeof ARMS)[number];

export class CloudWatchArmMetrics implements ArmMetricsReader {
  constructor(
    private readonly client: Pick<CloudWatchClient, 'send'>,
    /** Divides metric periods (the local runtime's time scale; 1 in AWS). */
    private readonly timeScale = 1,
  ) {}

  async armStats(fromMs: number, toMs: number): Promise<{ control: ArmStats; experiment: ArmStats }> {
    const periodMs = (ALARM_PERIOD_SECONDS * 1000) / this.timeScale;
    // Whole periods only, starting at or after fromMs, so no earlier traffic is counted.
    const start = Math.ceil(fromMs / periodMs) * periodMs;
    const end = Math.max(start + periodMs, Math.ceil(toMs / periodMs) * periodMs);
    const queries: MetricDataQuery[] = [];
    const metric = (arm: Arm, name: string, stat: string, period: number, id: string): MetricDataQuery => ({
      Id: id,
      MetricStat: {
        Metric: { Namespace: METRIC_NAMESPACE, MetricName: name, Dimensions: Object.entries(armDimensions(arm)).map(([Name, Value]) => ({ Name, Value })) },
        Period: period,
        Stat: stat,
      },
      ReturnData: true,
    });
    for (const arm of ARMS) {
      queries.push(metric(arm, ARM_METRICS.requests, 'Sum', ALARM_PERIOD_SECONDS, `${arm}_requests`));
      queries.push(metric(arm, ARM_METRICS.errors4xx, 'Sum', ALARM_PERIOD_SECONDS, `${arm}_errors4xx`));
      queries.push(metric(arm, ARM_METRICS.errors5xx, 'Sum', ALARM_PERIOD_SECONDS, `${arm}_errors5xx`));
      // Percentiles of periods cannot be combined: the worst period's p99 is what the phase reports.
      queries.push(metric(arm, ARM_METRICS.latency, 'p99', ALARM_PERIOD_SECONDS, `${arm}_p99`));
    }
    const sums = new Map<string, number[]>();
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new GetMetricDataCommand({ MetricDataQueries: queries, StartTime: new Date(start), EndTime: new Date(end), ...(token ? { NextToken: token } : {}) }),
      );
      for (const r of out.MetricDataResults ?? []) {
        const list = sums.get(r.Id ?? '') ?? [];
        list.push(...(r.Values ?? []));
        sums.set(r.Id ?? '', list);
      }
      token = out.NextToken;
    } while (token);
    const total = (id: string): number => (sums.get(id) ?? []).reduce((a, b) => a + b, 0);
    const stats = (arm: Arm): ArmStats => {
      const p99 = sums.get(`${arm}_p99`) ?? [];
      const requests = total(`${arm}_requests`);
      return {
        requests,
        errors4xx: total(`${arm}_errors4xx`),
        errors5xx: total(`${arm}_errors5xx`),
        ...(p99.length && requests > 0 ? { p99Ms: Math.max(...p99) } : {}),
      };
    };
    return { control: stats('control'), experiment: stats('experiment') };
  }
}
