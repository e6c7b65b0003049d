/**
 * The bake's statistical judge. Reference values are worked by hand in the comments (or taken
 * from published tables), never from the code under test; the always-valid property is checked
 * by a seeded Monte Carlo against a naive z-test repeated at every look.
 */
import { describe, expect, it } from 'vitest';
import {
  errorRateInterval,
  judge,
  JUDGE_DEFAULTS,
  latencyInterval,
  mixtureHalfWidth,
  mixtureLikelihoodRatio,
  varianceInflation,
  type ArmSeries,
  type JudgeSettings,
  type PeriodStats,
} from '../../lambdas/domain/judge';
import { prng } from './model';

// ---------------------------------------------------------------------------------------------
// Helpers (test-only)
// ---------------------------------------------------------------------------------------------

const period = (requests: number, errors5xx: number, p99Ms?: number, errors4xx = 0): PeriodStats => ({
  requests,
  errors5xx,
  errors4xx,
  ...(p99Ms === undefined ? {} : { p99Ms }),
});

/** A series of `n` periods, both arms built per period by `f`. */
const seriesOf = (n: number, f: (i: number) => { c: PeriodStats; e: PeriodStats }): ArmSeries => {
  const control: PeriodStats[] = [];
  const experiment: PeriodStats[] = [];
  for (let i = 0; i < n; i++) {
    const { c, e } = f(i);
    control.push(c);
    experiment.push(e);
  }
  return { control, experiment };
};

/** Standard normal draws (Box-Muller) from the seeded PRNG. */
const gaussian = (r: ReturnType<typeof prng>) => (): number => {
  const u = 1 - r.next(); // (0, 1]
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.next());
};

/** Binomial(n, p) by inversion (fine for the small n * p used here). */
const binomial = (r: ReturnType<typeof prng>, n: number, p: number): number => {
  const u = r.next();
  let x = 0;
  let pmf = (1 - p) ** n;
  let cdf = pmf;
  while (u > cdf && x < n) {
    pmf *= ((n - x) / (x + 1)) * (p / (1 - p));
    x++;
    cdf += pmf;
  }
  return x;
};

// ---------------------------------------------------------------------------------------------
// The mixture SPRT
// ---------------------------------------------------------------------------------------------

describe('mixtureLikelihoodRatio and mixtureHalfWidth', () => {
  it('match hand-computed values', () => {
    // LR(d, v, tau2) = sqrt(v / (v + tau2)) * exp(tau2 d^2 / (2 v (v + tau2))).
    // d = 0, v = 1, tau2 = 3: sqrt(1/4) * e^0 = 0.5.
    expect(mixtureLikelihoodRatio(0, 1, 3)).toBeCloseTo(0.5, 12);
    // d = 2: exponent 3 * 4 / (2 * 1 * 4) = 1.5, so 0.5 * e^1.5 = 0.5 * 4.481689 = 2.240845.
    expect(mixtureLikelihoodRatio(2, 1, 3)).toBeCloseTo(2.240845, 6);
    // The LR is even in d.
    expect(mixtureLikelihoodRatio(-2, 1, 3)).toBeCloseTo(2.240845, 6);
    // w(v=1, tau2=3, alpha=0.05) = sqrt(2 * 1 * 4 / 3 * (ln 20 + ln(4) / 2))
    //   = sqrt(8/3 * (2.995732 + 0.693147)) = sqrt(8/3 * 3.688879) = sqrt(9.837011) = 3.136401.
    expect(mixtureHalfWidth(1, 3, 0.05)).toBeCloseTo(3.1364, 4);
  });

  it('the half-width is exactly where the likelihood ratio reaches 1/alpha', () => {
    for (const v of [1e-6, 2.0153e-5, 0.01, 1, 7]) {
      for (const tau2 of [2.5e-5, 0.01, 3]) {
        for (const alpha of [0.0025, 0.05, 0.2]) {
          const w = mixtureHalfWidth(v, tau2, alpha);
          expect({ v, tau2, alpha, lr: mixtureLikelihoodRatio(w, v, tau2) * alpha }).toEqual({ v, tau2, alpha, lr: expect.closeTo(1, 9) });
          // Just inside the boundary the ratio is below 1/alpha, just outside above.
          expect(mixtureLikelihoodRatio(w * 0.999, v, tau2)).toBeLessThan(1 / alpha);
          expect(mixtureLikelihoodRatio(w * 1.001, v, tau2)).toBeGreaterThan(1 / alpha);
        }
      }
    }
  });

  it('is 0 wide for no variance', () => {
    expect(mixtureHalfWidth(0, 1, 0.05)).toBe(0);
  });
});

describe('varianceInflation', () => {
  // k / chi2_{k, 0.10}. Lower 10% chi-square quantiles from the standard tables (NIST/SEMATECH
  // e-Handbook of Statistical Methods, 1.3.6.7.4 "Critical values of the chi-square
  // distribution", lower-tail column 0.10): df 5 -> 1.610, 10 -> 4.865, 30 -> 20.599, 60 -> 46.459.
  it.each([
    [5, 1.61],
    [10, 4.865],
    [30, 20.599],
    [60, 46.459],
  ])('df %i matches the published quantile %f within 1%', (k, quantile) => {
    const got = varianceInflation(k);
    expect(Math.abs(got / (k / quantile) - 1)).toBeLessThan(0.01);
  });

  it('always scales a variance up, less so with more degrees of freedom, and is infinite with none', () => {
    let last = Infinity;
    for (const k of [1, 2, 3, 5, 10, 30, 60, 200, 1000]) {
      const f = varianceInflation(k);
      expect(f).toBeGreaterThan(1);
      expect(f).toBeLessThan(last);
      last = f;
    }
    expect(varianceInflation(0)).toBe(Infinity);
  });
});

// ---------------------------------------------------------------------------------------------
// Error rate
// ---------------------------------------------------------------------------------------------

describe('errorRateInterval', () => {
  it('uses the unpooled variance when it is the larger, with the mixture half-width (worked by hand)', () => {
    // pe = 20/1000 = 0.02, pc = 45/9000 = 0.005, d = 0.015.
    // Unpooled: 0.02 * 0.98 / 1000 + 0.005 * 0.995 / 9000 = 1.96e-5 + 5.5278e-7 = 2.01528e-5.
    // Pooled: p = 65/10000 = 0.0065; 0.0065 * 0.9935 * (1/1000 + 1/9000) = 0.00645775 * 0.00111111 = 7.17528e-6.
    // V = 2.01528e-5; tau2 = 0.005^2 = 2.5e-5; V + tau2 = 4.51528e-5.
    // 2 V (V + tau2) / tau2 = 2 * 2.01528e-5 * 1.806111 = 7.27963e-5.
    // ln(1/0.0025) = ln 400 = 5.991465; ln((V + tau2) / V) / 2 = ln(2.240523) / 2 = 0.403355; sum 6.394820.
    // w = sqrt(7.27963e-5 * 6.394820) = sqrt(4.65519e-4) = 0.021576.
    const got = errorRateInterval({ n: 1000, x: 20 }, { n: 9000, x: 45 }, 0.0025)!;
    expect(got.estimate).toBeCloseTo(0.015, 12);
    expect(got.upper - got.estimate).toBeCloseTo(0.021576, 5);
    expect(got.lower).toBeCloseTo(-0.006576, 5);
    expect(got.upper).toBeCloseTo(0.036576, 5);
  });

  it('uses the pooled variance when it is the larger (no errors in the experiment yet)', () => {
    // pe = 0/100 = 0, pc = 100/10000 = 0.01, d = -0.01.
    // Unpooled: 0 + 0.01 * 0.99 / 10000 = 9.9e-7 (the experiment's 0 errors look certain: too narrow).
    // Pooled: p = 100/10100 = 0.00990099; p(1-p) = 0.00980296; * (1/100 + 1/10000) = 0.0101 -> 9.90099e-5.
    // V = 9.90099e-5; V + tau2 = 1.240099e-4; 2 V (V + tau2) / tau2 = 2 * 9.90099e-5 * 4.960396 = 9.82257e-4.
    // ln 400 = 5.991465; ln(1.240099e-4 / 9.90099e-5) / 2 = ln(1.252500) / 2 = 0.112571; sum 6.104035.
    // w = sqrt(9.82257e-4 * 6.104035) = sqrt(5.99573e-3) = 0.077432.
    const got = errorRateInterval({ n: 100, x: 0 }, { n: 10000, x: 100 }, 0.0025)!;
    expect(got.estimate).toBeCloseTo(-0.01, 12);
    expect(got.upper - got.estimate).toBeCloseTo(0.077432, 5);
    expect(got.lower).toBeCloseTo(-0.087432, 5);
  });

  it('is never zero-width, even with no errors at all', () => {
    // Pooled p floored at 0.5 / (ne + nc) = 0.5 / 2000 = 2.5e-4: V = 2.5e-4 * 0.99975 * 0.002 = 4.99875e-7.
    const got = errorRateInterval({ n: 1000, x: 0 }, { n: 1000, x: 0 }, 0.0025)!;
    expect(got.estimate).toBe(0);
    expect(got.upper).toBeGreaterThan(0.001);
    expect(got.lower).toBeLessThan(-0.001);
  });

  it('is undefined with no requests in an arm', () => {
    expect(errorRateInterval({ n: 0, x: 0 }, { n: 9000, x: 45 }, 0.0025)).toBeUndefined();
    expect(errorRateInterval({ n: 1000, x: 20 }, { n: 0, x: 0 }, 0.0025)).toBeUndefined();
    expect(errorRateInterval({ n: 0, x: 0 }, { n: 0, x: 0 }, 0.0025)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------------------------

describe('latencyInterval', () => {
  /** Six paired periods with log(experiment p99 / control p99) = 0.1, 0.3, 0.1, 0.3, 0.1, 0.3. */
  const alternating = (i: number) => ({ c: period(100, 0, 200), e: period(20, 0, 200 * Math.exp(i % 2 ? 0.3 : 0.1)) });

  it('matches a hand-worked case', () => {
    // Mean 0.2; sample variance 6 * 0.1^2 / 5 = 0.012 (above the floor 0.05^2 = 0.0025).
    // Upper confidence limit of the variance: * 5 / chi2_{5, 0.10} = 5 / 1.610 (NIST table) = 3.105590.
    // V = 0.012 * 3.105590 / 6 = 0.00621118; tau2 = 0.1^2 = 0.01; V + tau2 = 0.01621118.
    // 2 V (V + tau2) / tau2 = 0.0201381; ln 400 = 5.991465; ln(0.01621118 / 0.00621118) / 2 = ln(2.61) / 2 = 0.479675.
    // w = sqrt(0.0201381 * 6.471140) = sqrt(0.130317) = 0.360994 (the code's Wilson-Hilferty quantile 1.6097
    // instead of the table's 1.610 moves this by less than 1e-4).
    const got = latencyInterval(seriesOf(6, alternating), 0.0025)!;
    expect(got.periods).toBe(6);
    expect(got.estimate).toBeCloseTo(0.2, 10);
    expect(got.upper - got.estimate).toBeCloseTo(0.360994, 3);
    expect(got.lower).toBeCloseTo(-0.160994, 3);
  });

  it('skips periods with fewer than 5 requests in either arm, or without a p99', () => {
    const withJunk = seriesOf(12, (i) => {
      const j = Math.floor(i / 2);
      if (i % 2 === 0) return alternating(j);
      // Wild ratios that would move the estimate a lot if counted.
      return [
        { c: period(4, 0, 10), e: period(500, 0, 5000) },
        { c: period(500, 0, 10), e: period(4, 4, 5000) },
        { c: period(0, 0), e: period(100, 0, 5000) },
        { c: period(100, 0, 10), e: period(100, 0) },
        { c: period(100, 0, 10), e: period(100, 0, 0) },
        { c: period(3, 0, 10), e: period(2, 0, 5000) },
      ][j]!;
    });
    expect(latencyInterval(withJunk, 0.0025)).toEqual(latencyInterval(seriesOf(6, alternating), 0.0025));
    // Exactly 5 requests in each arm counts.
    const five = seriesOf(2, (i) => ({ c: period(5, 0, 100), e: period(5, 0, i ? 300 : 100) }));
    expect(latencyInterval(five, 0.0025)?.periods).toBe(2);
  });

  it('floors the per-period sd at 0.05', () => {
    // All six ratios 1.25: sample variance 0, floored to 0.0025.
    // V = 0.0025 * 3.105590 / 6 = 0.00129400; V + tau2 = 0.01129400; 2 V (V + tau2) / tau2 = 0.00292288.
    // ln((V + tau2) / V) / 2 = ln(8.728) / 2 = 1.083268; sum with ln 400: 7.074733.
    // w = sqrt(0.00292288 * 7.074733) = sqrt(0.0206786) = 0.143800; estimate ln 1.25 = 0.223144.
    const flat = latencyInterval(
      seriesOf(6, () => ({ c: period(100, 0, 100), e: period(20, 0, 125) })),
      0.0025,
    )!;
    expect(flat.estimate).toBeCloseTo(0.223144, 6);
    expect(flat.upper - flat.estimate).toBeCloseTo(0.1438, 3);
    expect(flat.lower).toBeCloseTo(0.079344, 3);
    // A sd of 0.02 (below the floor) gives the same width as none.
    const small = latencyInterval(
      seriesOf(6, (i) => ({ c: period(100, 0, 100), e: period(20, 0, 125 * Math.exp(i % 2 ? 0.02 : -0.02)) })),
      0.0025,
    )!;
    expect(small.upper - small.estimate).toBeCloseTo(flat.upper - flat.estimate, 10);
  });

  it('is undefined with fewer than 2 usable periods', () => {
    expect(latencyInterval({ control: [], experiment: [] }, 0.0025)).toBeUndefined();
    const one = seriesOf(4, (i) =>
      i === 2 ? { c: period(100, 0, 100), e: period(100, 0, 150) } : { c: period(4, 0, 100), e: period(100, 0, 150) },
    );
    expect(latencyInterval(one, 0.0025)).toBeUndefined();
    // Only the periods both arms have are paired.
    const uneven: ArmSeries = { control: [period(100, 0, 100)], experiment: [period(100, 0, 150), period(100, 0, 150)] };
    expect(latencyInterval(uneven, 0.0025)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// Always valid: looking at every poll does not inflate the error rate
// ---------------------------------------------------------------------------------------------

describe('always-valid under repeated looks (seeded Monte Carlo)', () => {
  const SEQUENCES = 2000;
  const LOOKS = 50;
  const P = 0.01; // the same 5xx rate in both arms: an A/A test
  const NE = 1000; // experiment requests per look
  const NC = 9000; // control requests per look

  it('the error-rate confidence sequence stays within alpha; a z-test repeated at every look does not', () => {
    const alpha = 0.05;
    const z = 1.959964; // two-sided 5% normal quantile
    const r = prng(20240611);
    let sequential = 0;
    let naive = 0;
    for (let s = 0; s < SEQUENCES; s++) {
      let ne = 0;
      let nc = 0;
      let xe = 0;
      let xc = 0;
      let seqRejected = false;
      let naiveRejected = false;
      for (let look = 0; look < LOOKS; look++) {
        ne += NE;
        nc += NC;
        xe += binomial(r, NE, P);
        xc += binomial(r, NC, P);
        const ci = errorRateInterval({ n: ne, x: xe }, { n: nc, x: xc }, alpha)!;
        if (ci.lower > 0 || ci.upper < 0) seqRejected = true;
        // The textbook two-proportion z-test (pooled variance), as if each look were the only one.
        const p = (xe + xc) / (ne + nc);
        const d = xe / ne - xc / nc;
        if (Math.abs(d) > z * Math.sqrt(p * (1 - p) * (1 / ne + 1 / nc))) naiveRejected = true;
      }
      if (seqRejected) sequential++;
      if (naiveRejected) naive++;
    }
    const seqRate = sequential / SEQUENCES;
    const naiveRate = naive / SEQUENCES;
    // Monte Carlo slack: 3 binomial standard deviations at rate alpha, sqrt(0.05 * 0.95 / 2000) = 0.0049.
    expect(seqRate).toBeLessThanOrEqual(alpha + 0.015);
    // Looking 50 times at a fixed-sample test rejects a true null several times more often than alpha.
    expect(naiveRate).toBeGreaterThan(3 * alpha);
    expect(naiveRate).toBeGreaterThan(5 * Math.max(seqRate, 1 / SEQUENCES));
  });

  it('judge() rejects an A/A experiment in at most alpha of the sequences, looking at every period', () => {
    const settings: JudgeSettings = { ...JUDGE_DEFAULTS, alpha: 0.05 };
    const r = prng(7);
    const g = gaussian(r);
    let rejected = 0;
    for (let s = 0; s < SEQUENCES; s++) {
      const series: ArmSeries = { control: [], experiment: [] };
      for (let look = 0; look < LOOKS; look++) {
        // Same p99 distribution in both arms (log-normal, 10% sd), independent per period.
        series.control.push(period(NC, binomial(r, NC, P), 100 * Math.exp(0.1 * g())));
        series.experiment.push(period(NE, binomial(r, NE, P), 100 * Math.exp(0.1 * g())));
        if (judge(series, settings).decision === 'REJECT') {
          rejected++;
          break;
        }
      }
    }
    // 3 binomial standard deviations of slack at rate 0.05 over 2000 sequences.
    expect(rejected / SEQUENCES).toBeLessThanOrEqual(settings.alpha + 0.015);
  });
});

// ---------------------------------------------------------------------------------------------
// judge()
// ---------------------------------------------------------------------------------------------

describe('judge', () => {
  /** Healthy A/A traffic: 100 periods, 1% 5xx in both arms, p99 near 100 ms with a little noise. */
  const healthy = (over: { periods?: number; ne?: number; nc?: number } = {}): ArmSeries => {
    const g = gaussian(prng(42));
    const ne = over.ne ?? 200;
    const nc = over.nc ?? 1800;
    return seriesOf(over.periods ?? 100, () => ({
      c: period(nc, nc / 100, 100 * Math.exp(0.03 * g())),
      e: period(ne, ne / 100, 100 * Math.exp(0.03 * g())),
    }));
  };

  it('REJECTs a clear 5xx regression, with the numbers in the reason', () => {
    // 5% vs 1% of 5xx over 30 periods; p99 equal.
    const s = seriesOf(30, () => ({ c: period(900, 9, 100), e: period(100, 5, 100) }));
    const j = judge(s);
    expect(j.decision).toBe('REJECT');
    expect(j.reason).toMatch(/^Judge: the experiment's 5xx rate is higher than control's: /);
    expect(j.reason).toContain('5xx 5.00% (150/3000) vs control 1.00% (270/27000), difference 4.00 points');
    expect(j.reason).toContain('99.75% bounds');
    expect(j).toMatchObject({ experimentRequests: 3000, controlRequests: 27000 });
    expect(j.errors!.lower).toBeGreaterThan(0);
    expect(j.errors!.estimate).toBeCloseTo(0.04, 12);
  });

  it('needs at least 5 experiment requests to reject on 5xx', () => {
    const s = (n: number) => ({ control: [period(10000, 0, 100)], experiment: [period(n, n, 100)] });
    expect(judge(s(4)).decision).toBe('CONTINUE');
    expect(judge(s(5)).decision).toBe('REJECT');
  });

  it('REJECTs a clear p99 regression only once there are minLatencyPeriods paired periods', () => {
    // Experiment p99 50% above control's in every period (a little noise), errors equal.
    const slow = (i: number) => ({ c: period(900, 0, 100), e: period(100, 0, 150 * Math.exp(i % 2 ? 0.02 : -0.02)) });
    expect(JUDGE_DEFAULTS.minLatencyPeriods).toBe(6);
    const five = judge(seriesOf(5, slow));
    expect(five.decision).toBe('CONTINUE');
    expect(five.latency).toBeUndefined();
    expect(five.reason).toContain('p99: fewer than 6 periods with traffic in both arms');
    const six = judge(seriesOf(6, slow));
    expect(six.decision).toBe('REJECT');
    expect(six.reason).toMatch(/^Judge: the experiment's p99 latency is higher than control's: p99 ratio 50\.0% over 6 periods, bounds \[/);
    expect(six.latency!.periods).toBe(6);
    expect(six.latency!.lower).toBeGreaterThan(0);
    // Periods without enough traffic in both arms are not paired periods.
    const sparse = seriesOf(11, (i) => (i % 2 ? slow(i) : { c: period(900, 0, 100), e: period(4, 0, 150) }));
    expect(judge(sparse).decision).toBe('CONTINUE');
    // The minimum is a setting.
    expect(judge(seriesOf(6, slow), { ...JUDGE_DEFAULTS, minLatencyPeriods: 7 }).decision).toBe('CONTINUE');
    expect(judge(seriesOf(7, slow), { ...JUDGE_DEFAULTS, minLatencyPeriods: 7 }).decision).toBe('REJECT');
  });

  it('APPROVEs when both arms are equal with plenty of traffic', () => {
    const j = judge(healthy());
    expect(j.decision).toBe('APPROVE');
    expect(j.reason).toMatch(/^Judge: not worse than control by more than 0\.5 points of 5xx or 15% of p99: /);
    expect(j.errors!.upper).toBeLessThan(0.005);
    expect(j.latency!.upper).toBeLessThan(Math.log(1.15));
    expect(j.experimentRequests).toBe(20000);
  });

  it('CONTINUEs, never APPROVEs, with fewer than minExperimentRequests experiment requests however clean', () => {
    const clean = healthy();
    const j = judge(clean, { ...JUDGE_DEFAULTS, minExperimentRequests: 20001 });
    expect(j.decision).toBe('CONTINUE');
    expect(j.reason).toContain('20000 experiment requests, fewer than the 20001 needed');
    // With the default minimum (200), any amount of spotless traffic below it.
    for (const [periods, ne] of [
      [1, 199],
      [6, 33],
      [10, 19],
      [39, 5],
    ] as const) {
      const s = seriesOf(periods, () => ({ c: period(100000, 0, 100), e: period(ne, 0, 100) }));
      expect({ periods, ne, d: judge(s).decision }).toEqual({ periods, ne, d: 'CONTINUE' });
    }
    expect(judge(seriesOf(10, () => ({ c: period(100000, 0, 100), e: period(20, 0, 100) }))).decision).not.toBe('CONTINUE');
  });

  it('approves only once the bounds, not just the estimates, are within the margins', () => {
    // Same rates, a tenth of the traffic: the 5xx bounds are still wider than 0.5 points.
    const early = judge(healthy({ periods: 10 }));
    expect(early.errors!.estimate).toBe(0);
    expect(early.errors!.upper).toBeGreaterThan(0.005);
    expect(early.decision).toBe('CONTINUE');
    expect(early.reason).toContain('not yet shown within the margins (0.5 points, 15%)');
    // Plenty of requests, but only 20 periods of noisy p99 (sd 15% per period): the latency
    // bounds are still wider than the 15% margin.
    const g = gaussian(prng(3));
    const noisy = judge(
      seriesOf(20, () => ({ c: period(9000, 90, 100 * Math.exp(0.1 * g())), e: period(1000, 10, 100 * Math.exp(0.1 * g())) })),
    );
    expect(noisy.errors!.upper).toBeLessThan(0.005);
    expect(Math.abs(noisy.latency!.estimate)).toBeLessThan(Math.log(1.15));
    expect(noisy.latency!.upper).toBeGreaterThan(Math.log(1.15));
    expect(noisy.latency!.lower).toBeLessThan(0);
    expect(noisy.decision).toBe('CONTINUE');
  });

  it('CONTINUEs with no traffic in an arm', () => {
    const j = judge(seriesOf(10, () => ({ c: period(1000, 0, 100), e: period(0, 0) })));
    expect(j.decision).toBe('CONTINUE');
    expect(j.errors).toBeUndefined();
    expect(j.reason).toContain('no traffic in an arm yet');
  });

  it('never lets 4xx influence the verdict', () => {
    const cases: ArmSeries[] = [
      healthy(),
      seriesOf(30, () => ({ c: period(900, 9, 100), e: period(100, 5, 100) })),
      seriesOf(8, () => ({ c: period(900, 0, 100), e: period(100, 0, 150) })),
      seriesOf(3, () => ({ c: period(900, 0, 100), e: period(30, 0, 100) })),
    ];
    const with4xx = (s: ArmSeries, e4: number, c4: number): ArmSeries => ({
      control: s.control.map((p) => ({ ...p, errors4xx: Math.floor(p.requests * c4) })),
      experiment: s.experiment.map((p) => ({ ...p, errors4xx: Math.floor(p.requests * e4) })),
    });
    const decisions = cases.map((s) => judge(s).decision);
    expect(decisions).toEqual(['APPROVE', 'REJECT', 'REJECT', 'CONTINUE']);
    for (const s of cases) {
      const want = judge(s);
      expect(judge(with4xx(s, 0.5, 0))).toEqual(want);
      expect(judge(with4xx(s, 0, 0.5))).toEqual(want);
      expect(judge(with4xx(s, 1, 0.01))).toEqual(want);
    }
  });

  it('does not reject on latency noise that hits both arms in the same periods', () => {
    const base = healthy();
    const spike = (s: ArmSeries, arms: ('control' | 'experiment')[]): ArmSeries => {
      const out: ArmSeries = { control: [...s.control], experiment: [...s.experiment] };
      for (const arm of arms) out[arm] = s[arm].map((p, i) => (i % 3 === 0 ? { ...p, p99Ms: p.p99Ms! * 1.3 } : p));
      return out;
    };
    const both = judge(spike(base, ['control', 'experiment']));
    expect(both.decision).toBe('APPROVE');
    // The ratios, and so the bounds, are exactly those without the noise: it cancels per period.
    const quiet = judge(base).latency!;
    expect(both.latency!.estimate).toBeCloseTo(quiet.estimate, 10);
    expect(both.latency!.upper).toBeCloseTo(quiet.upper, 10);
    expect(both.latency!.lower).toBeCloseTo(quiet.lower, 10);
    // The same spikes in the experiment alone are a regression it does see.
    expect(judge(spike(base, ['experiment'])).decision).toBe('REJECT');
  });
});

describe('mutation survivors: a control-dominated variance, enough experiment requests and no control', () => {
  it("errorRateInterval: the control arm's term of the unpooled variance, when it is the larger (worked by hand)", () => {
    // The hand-worked unpooled case above with the arms swapped, so the control's term dominates:
    // pe = 45/9000 = 0.005, pc = 20/1000 = 0.02, d = -0.015.
    // Unpooled: 0.005 * 0.995 / 9000 + 0.02 * 0.98 / 1000 = 5.5278e-7 + 1.96e-5 = 2.01528e-5 (control: 97%).
    // Pooled: the same 7.17528e-6, smaller. V = 2.01528e-5 as above, so w = 0.021576.
    const got = errorRateInterval({ n: 9000, x: 45 }, { n: 1000, x: 20 }, 0.0025)!;
    expect(got.estimate).toBeCloseTo(-0.015, 12);
    expect(got.upper - got.estimate).toBeCloseTo(0.021576, 5);
    expect(got.lower).toBeCloseTo(-0.036576, 5);
    expect(got.upper).toBeCloseTo(0.006576, 5);
  });

  it('judge CONTINUEs, and says why, with enough experiment requests and none in control', () => {
    // 10 periods of 1000 clean experiment requests (10000 >= minExperimentRequests 200), control empty.
    const j = judge(seriesOf(10, () => ({ c: period(0, 0), e: period(1000, 0, 100) })));
    expect(j.decision).toBe('CONTINUE');
    expect(j.experimentRequests).toBe(10_000);
    expect(j.controlRequests).toBe(0);
    expect(j.errors).toBeUndefined();
    expect(j.latency).toBeUndefined();
    expect(j.reason).toContain('no traffic in an arm yet');
    expect(j.reason).toContain('not yet shown within the margins (0.5 points, 15%)');
    expect(j.reason).not.toContain('fewer than the 200 needed');
  });
});

// ---------------------------------------------------------------------------------------------
// Mutation survivors: the decision boundaries hit exactly, a control p99 of 0, the reason's words
// ---------------------------------------------------------------------------------------------

/** `x` moved by `n` units in the last place (n > 0: away from 0 for positive x). */
const ulps = (x: number, n: number): number => {
  const f = new Float64Array([x]);
  const b = new BigInt64Array(f.buffer);
  b[0]! += BigInt(n);
  return f[0]!;
};

/** The float nearest `x` (within `n` ulps either way) at which `f` is exactly 0, if any. */
const exactZeroNear = (x: number, f: (y: number) => number, n: number): number | undefined => {
  for (let k = 0; k <= n; k++) for (const y of [ulps(x, k), ulps(x, -k)]) if (f(y) === 0) return y;
  return undefined;
};

/** The float at which the monotone `f` is exactly 0 on [lo, hi]: bisected to the last bit, then looked for around it. */
const exactRoot = (f: (x: number) => number, lo: number, hi: number): number | undefined => {
  const rising = f(hi) > f(lo);
  for (let i = 0; i < 200; i++) {
    const m = (lo + hi) / 2;
    if (f(m) > 0 === rising) hi = m;
    else lo = m;
  }
  return exactZeroNear(lo, f, 4000);
};

describe('mutation survivors: the decision boundaries hit exactly, a control p99 of 0, the reason in words', () => {
  const withAlpha = (alpha: number): JudgeSettings => ({ ...JUDGE_DEFAULTS, alpha });

  it("a 5xx lower bound of exactly 0 is not 'above 0': no REJECT", () => {
    // 3% vs 1% of 5xx, no p99: only the error test can decide. Its bounds narrow as alpha grows;
    // at this alpha the lower bound is exactly 0.
    const s: ArmSeries = { control: [period(9000, 90)], experiment: [period(1000, 30)] };
    const alpha = exactRoot((al) => judge(s, withAlpha(al)).errors!.lower, 1e-12, 0.5)!;
    expect(alpha).toBeGreaterThan(0.1);
    const j = judge(s, withAlpha(alpha));
    expect(j.errors!.lower).toBe(0);
    expect(j.decision).toBe('CONTINUE');
    // A hair narrower, and it rejects.
    expect(judge(s, withAlpha(ulps(alpha, 1e9))).decision).toBe('REJECT');
  });

  it("a p99 lower bound of exactly 0 is not 'above 0': no REJECT", () => {
    // Experiment p99 20% above control's (±5% per period), six periods, no 5xx.
    const s = seriesOf(6, (i) => ({ c: period(900, 0, 100), e: period(100, 0, 120 * Math.exp(i % 2 ? 0.05 : -0.05)) }));
    const alpha = exactRoot((al) => judge(s, withAlpha(al)).latency!.lower, 1e-12, 0.9)!;
    const j = judge(s, withAlpha(alpha));
    expect(j.latency!.lower).toBe(0);
    expect(j.decision).toBe('CONTINUE');
    expect(judge(s, withAlpha(ulps(alpha, 1e9))).decision).toBe('REJECT');
  });

  /** Clean traffic the default judge approves: 1% 5xx in both arms, p99 equal within 2% per period. */
  const clean = seriesOf(20, (i) => ({
    c: period(9000, 90, 100 * Math.exp(i % 2 ? 0.02 : -0.02)),
    e: period(1000, 10, 100 * Math.exp(i % 3 ? 0.02 : -0.02)),
  }));

  it('a 5xx upper bound exactly at the margin is not below it: no APPROVE', () => {
    expect(judge(clean).decision).toBe('APPROVE');
    // A margin m with m / 100 exactly the upper bound: alpha moved by a few ulps until one exists.
    let found: { alpha: number; margin: number } | undefined;
    for (let k = 0; k < 1000 && !found; k++) {
      const alpha = ulps(JUDGE_DEFAULTS.alpha, k);
      const upper = judge(clean, withAlpha(alpha)).errors!.upper;
      const margin = exactZeroNear(upper * 100, (m) => upper - m / 100, 3);
      if (margin !== undefined) found = { alpha, margin };
    }
    const { alpha, margin } = found!;
    const at = judge(clean, { ...JUDGE_DEFAULTS, alpha, errorMarginPoints: margin });
    expect(at.errors!.upper).toBe(margin / 100);
    expect(at.decision).toBe('CONTINUE');
    expect(at.reason).toContain('not yet shown within the margins');
    expect(judge(clean, { ...JUDGE_DEFAULTS, alpha, errorMarginPoints: margin * (1 + 1e-9) }).decision).toBe('APPROVE');
  });

  it('a p99 upper bound exactly at the margin is not below it: no APPROVE', () => {
    // A margin p with log(1 + p / 100) exactly the upper bound: alpha moved until one exists.
    let found: { alpha: number; pct: number } | undefined;
    for (let k = 0; k < 4000 && !found; k++) {
      const alpha = ulps(JUDGE_DEFAULTS.alpha, k);
      const upper = judge(clean, withAlpha(alpha)).latency!.upper;
      const y = exactZeroNear(Math.exp(upper), (y) => Math.log(y) - upper, 3);
      const pct = y === undefined ? undefined : exactZeroNear((y - 1) * 100, (p) => 1 + p / 100 - y, 50);
      if (pct !== undefined) found = { alpha, pct };
    }
    const { alpha, pct } = found!;
    const at = judge(clean, { ...JUDGE_DEFAULTS, alpha, latencyMarginPercent: pct });
    expect(at.latency!.upper).toBe(Math.log(1 + pct / 100));
    expect(at.decision).toBe('CONTINUE');
    expect(judge(clean, { ...JUDGE_DEFAULTS, alpha, latencyMarginPercent: pct * (1 + 1e-9) }).decision).toBe('APPROVE');
  });

  it('exactly minExperimentRequests is enough requests: a CONTINUE then says the margins, not the count', () => {
    // 10 periods of 20 experiment requests: 200, the default minimum; too few for the bounds.
    const j = judge(
      seriesOf(10, () => ({ c: period(1000, 10, 100), e: period(20, 0, 100) })),
      { ...JUDGE_DEFAULTS, minLatencyPeriods: 100 },
    );
    expect(j.experimentRequests).toBe(200);
    expect(j.decision).toBe('CONTINUE');
    expect(j.reason).toContain(': not yet shown within the margins (0.5 points, 15%): ');
    expect(j.reason).not.toContain('fewer than the 200 needed');
  });

  it('skips a period whose control p99 is 0 (no ratio to take)', () => {
    const two = [
      { c: period(900, 0, 100), e: period(100, 0, 110) },
      { c: period(900, 0, 100), e: period(100, 0, 130) },
    ];
    const series = (rows: typeof two): ArmSeries => ({ control: rows.map((r) => r.c), experiment: rows.map((r) => r.e) });
    const want = latencyInterval(series(two), 0.0025)!;
    expect(want.periods).toBe(2);
    expect(latencyInterval(series([two[0]!, { c: period(900, 0, 0), e: period(100, 0, 500) }, two[1]!]), 0.0025)).toEqual(want);
  });

  it("states the bounds' confidence as a positive percentage: 1 - alpha/2", () => {
    const j = judge(seriesOf(30, () => ({ c: period(900, 9, 100), e: period(100, 5, 100) })));
    expect(j.reason).toContain('difference 4.00 points, 99.75% bounds [');
    expect(
      judge(
        seriesOf(30, () => ({ c: period(900, 9, 100), e: period(100, 5, 100) })),
        withAlpha(0.01),
      ).reason,
    ).toContain('difference 4.00 points, 99.5% bounds [');
  });
});
