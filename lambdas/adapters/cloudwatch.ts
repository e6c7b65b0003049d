/**
 * Reads both arms' traffic over a time window from CloudWatch (GetMetricData), for the bake's
 * verdicts. The metric identities come from lambdas/metrics.ts, as the handlers emit them.
 */
import { GetMetricDataCommand, type CloudWatchClient, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { ArmSeries, PeriodStats } from '../domain/judge';
import type { ArmMetricsReader } from '../ports';
import { ALARM_PERIOD_SECONDS, ARM_METRICS, ARMS, METRIC_NAMESPACE, armDimensions } from '../metrics';

// Re-exported for the callers that import them from here (the interface lives in ports.ts, totalsOf in domain/bake.ts).
export type { ArmMetricsReader } from '../ports';
export { totalsOf } from '../domain/bake';

type Arm = (typeof ARMS)[number];

export class CloudWatchArmMetrics implements ArmMetricsReader {
  constructor(
    private readonly client: Pick<CloudWatchClient, 'send'>,
    /** Divides metric periods (the local runtime's time scale; 1 in AWS). */
    private readonly timeScale = 1,
  ) {}

  async armSeries(fromMs: number, toMs: number): Promise<ArmSeries> {
    const periodMs = (ALARM_PERIOD_SECONDS * 1000) / this.timeScale;
    // Whole periods only, starting at or after fromMs, so no earlier traffic is counted.
    const start = Math.ceil(fromMs / periodMs) * periodMs;
    const end = Math.max(start + periodMs, Math.floor(toMs / periodMs) * periodMs);
    const queries: MetricDataQuery[] = [];
    const metric = (arm: Arm, name: string, stat: string, id: string): MetricDataQuery => ({
      Id: id,
      MetricStat: {
        Metric: {
          Namespace: METRIC_NAMESPACE,
          MetricName: name,
          Dimensions: Object.entries(armDimensions(arm)).map(([Name, Value]) => ({ Name, Value })),
        },
        Period: ALARM_PERIOD_SECONDS,
        Stat: stat,
      },
      ReturnData: true,
    });
    for (const arm of ARMS) {
      queries.push(metric(arm, ARM_METRICS.requests, 'Sum', `${arm}_requests`));
      queries.push(metric(arm, ARM_METRICS.errors4xx, 'Sum', `${arm}_errors4xx`));
      queries.push(metric(arm, ARM_METRICS.errors5xx, 'Sum', `${arm}_errors5xx`));
      queries.push(metric(arm, ARM_METRICS.latency, 'p99', `${arm}_p99`));
    }
    // Values by query id and period index.
    const values = new Map<string, Map<number, number>>();
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new GetMetricDataCommand({
          MetricDataQueries: queries,
          StartTime: new Date(start),
          EndTime: new Date(end),
          ...(token ? { NextToken: token } : {}),
        }),
      );
      for (const r of out.MetricDataResults ?? []) {
        const byPeriod = values.get(r.Id ?? '') ?? new Map<number, number>();
        // Each value belongs to the period its timestamp names (CloudWatch returns newest first by
        // default, and leaves out periods without data); a period appears once across pages.
        (r.Values ?? []).forEach((v, i) => {
          const t = r.Timestamps?.[i];
          if (t === undefined) return;
          byPeriod.set(Math.round((new Date(t).getTime() - start) / periodMs), v);
        });
        values.set(r.Id ?? '', byPeriod);
      }
      token = out.NextToken;
    } while (token);
    const periods = Math.max(1, Math.round((end - start) / periodMs));
    const series = (arm: Arm): PeriodStats[] =>
      Array.from({ length: periods }, (_, i) => {
        const get = (k: string) => values.get(`${arm}_${k}`)?.get(i);
        const requests = get('requests') ?? 0;
        const p99 = get('p99');
        return {
          requests,
          errors4xx: get('errors4xx') ?? 0,
          errors5xx: get('errors5xx') ?? 0,
          ...(requests > 0 && p99 !== undefined ? { p99Ms: p99 } : {}),
        };
      });
    return { control: series('control'), experiment: series('experiment') };
  }
}
