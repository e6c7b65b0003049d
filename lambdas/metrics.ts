/**
 * The metrics the service emits (EMF through Powertools Metrics) that the stack's alarms,
 * dashboard and the bake read back. Stated once here for the handlers, the CloudWatch adapter
 * and the CDK stack.
 */
export const METRIC_NAMESPACE = 'Logrelay';
export const SERVICE_NAME = 'logrelay';

/** Per-request metrics with dimensions {service, Arm}, high resolution (1 s). */
export const ARM_METRICS = {
  requests: 'Requests',
  errors4xx: 'Errors4xx',
  errors5xx: 'Errors5xx',
  /** Service time in ms: the request's duration minus the time a long poll spent waiting idle. */
  latency: 'Latency',
} as const;

export const ARMS = ['control', 'experiment'] as const;

export const armDimensions = (arm: (typeof ARMS)[number]): Record<string, string> => ({ service: SERVICE_NAME, Arm: arm });

/** Emitted by the bake at each step, dimensions {service, Profile}: what is under test, at what weight (0 when nothing). */
export const BAKE_METRICS = { weight: 'ExperimentWeightPercent', version: 'ExperimentVersion' } as const;

/** Period of the arms' alarms and of the bake's measurements, seconds (high-resolution metrics allow 10). */
export const ALARM_PERIOD_SECONDS = 10;

/**
 * The absolute SLO alarms (all traffic, whatever the arm): their names after `<stack>-bake-`, and
 * their evaluation (in ALARM when 3 of the last 6 periods breach). The watch after promotion
 * polls these alone, and waits for one whole window after the last experiment before it counts
 * them (services/bakes.ts, WATCH_SETTLE_SECONDS).
 */
export const SLO_ALARMS = { names: ['slo-5xx-rate', 'slo-p99-latency'], evaluationPeriods: 6, datapointsToAlarm: 3 } as const;
