/**
 * The bake's judge: a sequential comparison of the experiment arm with the control arm that
 * stays valid however often it is checked. No AWS client here: it takes both arms' per-period
 * statistics (what GetMetricData returns for 10-second periods) and says REJECT, APPROVE or
 * CONTINUE.
 *
 * Method: always-valid confidence sequences from the normal-mixture SPRT (mSPRT; Robbins 1970,
 * Johari, Pekelis & Walsh 2017 "Always valid inference"). For an estimate `d` of an effect with
 * variance `V`, and a mixing variance `tau2` on the effect, the set
 *
 *     { delta : |d - delta| < w },  w = sqrt( 2 V (V + tau2) / tau2 * ( ln(1/alpha) + ln((V + tau2) / V) / 2 ) )
 *
 * covers the true effect at every look simultaneously with probability >= 1 - alpha (for a
 * normally distributed estimate; the rates are sums of many requests). So the judge may look at
 * every poll without inflating its error rate, unlike a fixed-sample test repeated.
 *
 * - Error rate: d = experiment 5xx rate - control 5xx rate over the phase so far. Its variance
 *   is the larger of the unpooled estimate and the pooled one (p(1-p)(1/ne + 1/nc)), which keeps
 *   the test honest while errors are few.
 * - Latency: for each period where both arms have requests, the log of experiment p99 / control
 *   p99. Both arms run on the same hosts in the same period, so anything that hits both alike
 *   (a noisy neighbour, a cold start wave) cancels in the ratio. d = the mean log ratio, V = its
 *   sample variance / n, floored.
 *
 * REJECT when either lower bound is above 0 (the experiment is worse, with confidence). APPROVE
 * when both upper bounds are below their margins (the experiment is not worse than control by
 * more than the margin) and the experiment has the minimum samples. Otherwise CONTINUE.
 */

export interface PeriodStats {
  /** Requests, 5xx and p99 latency (ms) of one arm in one period; p99 absent with no requests. */
  requests: number;
  errors5xx: number;
  /** Reported, not judged: 4xx are the caller's mistakes (the 4xx-vs-control alarm watches them). */
  errors4xx?: number;
  p99Ms?: number;
}

export interface ArmSeries {
  control: PeriodStats[];
  experiment: PeriodStats[];
}

export interface JudgeSettings {
  /** Approve only if the experiment's 5xx rate is worse than control's by less than this many points. */
  errorMarginPoints: number;
  /** Approve only if the experiment's p99 is worse than control's by less than this many percent. */
  latencyMarginPercent: number;
  /** Total probability of a wrong verdict over a whole bake phase, split evenly between the two tests. */
  alpha: number;
  /** Fewest experiment requests before anything is approved. */
  minExperimentRequests: number;
  /** Fewest paired periods before the latency test may decide. */
  minLatencyPeriods: number;
}

export const JUDGE_DEFAULTS: JudgeSettings = {
  errorMarginPoints: 0.5,
  latencyMarginPercent: 15,
  alpha: 0.005,
  minExperimentRequests: 200,
  minLatencyPeriods: 6,
};

/** Mixing standard deviations: the effect sizes the tests are most sensitive to. */
const TAU_ERROR = 0.005; // half a point of error rate
const TAU_LATENCY = 0.1; // 10% in p99
/** Per-period log p99 ratios are never trusted to vary less than this (tiny samples look too steady). */
const MIN_LATENCY_SD = 0.05;
/** A period counts for latency only with at least this many requests in each arm. */
const MIN_PERIOD_REQUESTS = 5;
/** The 5xx test rejects only once the experiment has served at least this many requests. */
const MIN_REJECT_REQUESTS = 5;

/** z of the lower 10% tail, for the variance's upper confidence limit. */
const VARIANCE_CONFIDENCE_Z = 1.2816;

/**
 * k / chi2_{k, 0.10}: how much a sample variance with k degrees of freedom is scaled up to its
 * 90% upper confidence limit. chi2 quantile by the Wilson-Hilferty approximation.
 */
export function varianceInflation(k: number): number {
  if (k < 1) return Infinity;
  const a = 2 / (9 * k);
  const q = k * (1 - a - VARIANCE_CONFIDENCE_Z * Math.sqrt(a)) ** 3;
  return q > 0 ? k / q : Infinity;
}

/** Half-width of the always-valid (1 - alpha) confidence sequence for an estimate with variance v. */
export function mixtureHalfWidth(v: number, tau2: number, alpha: number): number {
  if (!(v > 0)) return 0;
  return Math.sqrt(((2 * v * (v + tau2)) / tau2) * (Math.log(1 / alpha) + Math.log((v + tau2) / v) / 2));
}

/** The mixture likelihood ratio for H0: effect = 0 (reject when >= 1/alpha). */
export function mixtureLikelihoodRatio(d: number, v: number, tau2: number): number {
  return Math.sqrt(v / (v + tau2)) * Math.exp((tau2 * d * d) / (2 * v * (v + tau2)));
}

export interface Interval {
  estimate: number;
  lower: number;
  upper: number;
}

/** Confidence sequence for experiment rate - control rate. */
export function errorRateInterval(e: { n: number; x: number }, c: { n: number; x: number }, alpha: number): Interval | undefined {
  if (e.n <= 0 || c.n <= 0) return undefined;
  const pe = e.x / e.n;
  const pc = c.x / c.n;
  const pooled = Math.max((e.x + c.x) / (e.n + c.n), 0.5 / (e.n + c.n));
  const v = Math.max((pe * (1 - pe)) / e.n + (pc * (1 - pc)) / c.n, pooled * (1 - pooled) * (1 / e.n + 1 / c.n));
  const d = pe - pc;
  const w = mixtureHalfWidth(v, TAU_ERROR * TAU_ERROR, alpha);
  return { estimate: d, lower: d - w, upper: d + w };
}

/** Confidence sequence for the mean per-period log(experiment p99 / control p99). */
export function latencyInterval(series: ArmSeries, alpha: number): (Interval & { periods: number }) | undefined {
  const ratios: number[] = [];
  const n = Math.min(series.control.length, series.experiment.length);
  for (let i = 0; i < n; i++) {
    const c = series.control[i]!;
    const e = series.experiment[i]!;
    if (
      c.requests < MIN_PERIOD_REQUESTS ||
      e.requests < MIN_PERIOD_REQUESTS ||
      c.p99Ms === undefined ||
      e.p99Ms === undefined ||
      !(c.p99Ms > 0) ||
      !(e.p99Ms > 0)
    )
      continue;
    ratios.push(Math.log(e.p99Ms / c.p99Ms));
  }
  if (ratios.length < 2) return undefined;
  const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
  const variance = ratios.reduce((a, b) => a + (b - mean) ** 2, 0) / (ratios.length - 1);
  // The variance is estimated from few periods early in a phase, and an underestimate would
  // make the bounds too narrow. Use its upper confidence limit instead of the point estimate.
  const v = (Math.max(variance, MIN_LATENCY_SD ** 2) * varianceInflation(ratios.length - 1)) / ratios.length;
  const w = mixtureHalfWidth(v, TAU_LATENCY * TAU_LATENCY, alpha);
  return { estimate: mean, lower: mean - w, upper: mean + w, periods: ratios.length };
}

export type JudgeDecision = 'REJECT' | 'APPROVE' | 'CONTINUE';

export interface Judgement {
  decision: JudgeDecision;
  /** A sentence with the numbers behind the decision. */
  reason: string;
  errors?: Interval;
  latency?: Interval & { periods: number };
  experimentRequests: number;
  controlRequests: number;
}

const sum = (xs: PeriodStats[], f: (p: PeriodStats) => number) => xs.reduce((a, p) => a + f(p), 0);
const pts = (x: number) => `${(100 * x).toFixed(2)}`;
const pct = (logRatio: number) => `${(100 * (Math.exp(logRatio) - 1)).toFixed(1)}%`;

export function judge(series: ArmSeries, s: JudgeSettings = JUDGE_DEFAULTS): Judgement {
  const ne = sum(series.experiment, (p) => p.requests);
  const nc = sum(series.control, (p) => p.requests);
  const xe = sum(series.experiment, (p) => p.errors5xx);
  const xc = sum(series.control, (p) => p.errors5xx);
  const a = s.alpha / 2;
  const errors = errorRateInterval({ n: ne, x: xe }, { n: nc, x: xc }, a);
  const latencyRaw = latencyInterval(series, a);
  const latency = latencyRaw && latencyRaw.periods >= s.minLatencyPeriods ? latencyRaw : undefined;
  const base = { experimentRequests: ne, controlRequests: nc, ...(errors ? { errors } : {}), ...(latency ? { latency } : {}) };
  const errText = errors
    ? `5xx ${pts(xe / ne)}% (${xe}/${ne}) vs control ${pts(xc / nc)}% (${xc}/${nc}), difference ${pts(errors.estimate)} points, ${+(100 * (1 - a)).toFixed(4)}% bounds [${pts(errors.lower)}, ${pts(errors.upper)}]`
    : 'no traffic in an arm yet';
  const latText = latency
    ? `p99 ratio ${pct(latency.estimate)} over ${latency.periods} periods, bounds [${pct(latency.lower)}, ${pct(latency.upper)}]`
    : `p99: fewer than ${s.minLatencyPeriods} periods with traffic in both arms`;

  if (errors && errors.lower > 0 && ne >= MIN_REJECT_REQUESTS) {
    return { decision: 'REJECT', reason: `Judge: the experiment's 5xx rate is higher than control's: ${errText}; ${latText}.`, ...base };
  }
  if (latency && latency.lower > 0) {
    return { decision: 'REJECT', reason: `Judge: the experiment's p99 latency is higher than control's: ${latText}; ${errText}.`, ...base };
  }
  const approvable =
    ne >= s.minExperimentRequests &&
    errors !== undefined &&
    errors.upper < s.errorMarginPoints / 100 &&
    latency !== undefined &&
    latency.upper < Math.log(1 + s.latencyMarginPercent / 100);
  if (approvable) {
    return {
      decision: 'APPROVE',
      reason: `Judge: not worse than control by more than ${s.errorMarginPoints} points of 5xx or ${s.latencyMarginPercent}% of p99: ${errText}; ${latText}.`,
      ...base,
    };
  }
  const why =
    ne < s.minExperimentRequests
      ? `${ne} experiment requests, fewer than the ${s.minExperimentRequests} needed`
      : `not yet shown within the margins (${s.errorMarginPoints} points, ${s.latencyMarginPercent}%)`;
  return { decision: 'CONTINUE', reason: `Judge: ${why}: ${errText}; ${latText}.`, ...base };
}
