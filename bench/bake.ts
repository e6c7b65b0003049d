/**
 * `npm run bench:bake`: how well the bake's verdicts catch regressions, by simulation. No AWS,
 * no clock: seeded, repeatable. Each trial generates 10-second periods of both arms' metrics
 * (requests, 5xx, p99) for one bake phase and, at every poll, runs the bake's own decision code
 * (lambdas/domain/bake.ts `decidePoll` with lambdas/domain/judge.ts `judge`) behind the stack's
 * alarm rules (thresholds from lib/config-bake.ts). Beside it, on the very same trials, a
 * static-threshold policy in the style of AppConfig's alarm-triggered rollback: one-minute
 * datapoints of the experiment arm's own 5xx rate and p99 against fixed thresholds, 2 of 3
 * breaching rolls back, nothing else gates approval. Its thresholds are calibrated on the A/A
 * trials to the lowest ones with at most 1% false rollbacks, which favours it.
 *
 * The traffic model (stated, not measured):
 * - requests per period and arm: Poisson(total rps x share x 10 s);
 * - 5xx per period: Poisson(requests x error rate) (rates are small);
 * - p99 per period: the true p99 times exp(N(0, s^2)), with s = 1.87 / sqrt(requests): the
 *   sampling spread of a 99th percentile of log-normal latencies with shape 0.5 (asymptotic
 *   order-statistic variance); times a per-period host-load factor exp(N(0, 0.05^2)) shared by
 *   both arms;
 * - one noisy minute per trial, at a random time, that hits both arms alike: +1 point of 5xx and
 *   p99 x 1.3 (a dependency blip, a deploy next door);
 * - the regression, when there is one, applies to the experiment arm for the whole phase.
 *
 * `-- --json` prints the same figures as one JSON document, with a `targets` list.
 * `-- --trials N` sets trials per scenario (default 1000; A/A runs twice as many).
 */
import { BAKE_DEFAULTS, decidePoll, judgeSettingsOf, pollBudget, type BakeSettings, type Phase } from '../lambdas/domain/bake';
import { judge, type ArmSeries, type PeriodStats } from '../lambdas/domain/judge';
import { DEFAULT_BAKE_ALARMS } from '../lib/config-bake';
import { median, prng } from './stats';

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes('--json');
const trialsAt = argv.indexOf('--trials');
const TRIALS = trialsAt >= 0 ? Math.max(10, Number(argv[trialsAt + 1])) : 1000;
const SEED = 20261125;

// ---- The scenario the targets are stated for --------------------------------------------------
const TOTAL_RPS = 200;
const WEIGHT = 0.1;
const BASE_ERROR = 0.005;
const BASE_P99_MS = 120;
const PERIOD_S = 10;
const SETTINGS: BakeSettings = { ...BAKE_DEFAULTS, bakeSeconds: 600, pollSeconds: 30 };
const P99_LOG_SD_ONE_REQUEST = 1.87; // 0.5 * sqrt(0.99 * 0.01) / phi(2.326)
const HOST_NOISE_SD = 0.05;
const NOISY = { seconds: 60, extraErrorPoints: 1, p99Factor: 1.3 };

interface Scenario {
  name: string;
  errorPoints: number;
  p99Percent: number;
  totalRps?: number;
  /** Detection window for the table, seconds. */
  window: number;
}

const SCENARIOS: Scenario[] = [
  { name: 'A/A (no regression)', errorPoints: 0, p99Percent: 0, window: 600 },
  { name: '+0.5 points 5xx', errorPoints: 0.5, p99Percent: 0, window: 600 },
  { name: '+1 point 5xx', errorPoints: 1, p99Percent: 0, window: 300 },
  { name: '+2 points 5xx', errorPoints: 2, p99Percent: 0, window: 300 },
  { name: '+5 points 5xx', errorPoints: 5, p99Percent: 0, window: 300 },
  { name: '+10% p99', errorPoints: 0, p99Percent: 10, window: 600 },
  { name: '+50% p99', errorPoints: 0, p99Percent: 50, window: 300 },
  { name: 'A/A at 2 requests/s (too little traffic)', errorPoints: 0, p99Percent: 0, totalRps: 2, window: 600 },
];

// ---- Random numbers -------------------------------------------------------------------------------
function rng(seed: number) {
  const { next } = prng(seed);
  let spare: number | undefined;
  const normal = (): number => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  const poisson = (lambda: number): number => {
    if (lambda <= 0) return 0;
    if (lambda > 60) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * normal()));
    const l = Math.exp(-lambda);
    let k = 0;
    let p = 1;
    do {
      k++;
      p *= next();
    } while (p > l);
    return k - 1;
  };
  return { next, normal, poisson };
}

// ---- One trial: the periods of one phase ------------------------------------------------------------
interface Trial {
  series: ArmSeries;
}

function generate(r: ReturnType<typeof rng>, sc: Scenario, periods: number): Trial {
  const rps = sc.totalRps ?? TOTAL_RPS;
  const noisyStart = Math.floor(r.next() * (periods - NOISY.seconds / PERIOD_S));
  const control: PeriodStats[] = [];
  const experiment: PeriodStats[] = [];
  for (let i = 0; i < periods; i++) {
    const noisy = i >= noisyStart && i < noisyStart + NOISY.seconds / PERIOD_S;
    const host = HOST_NOISE_SD * r.normal();
    const arm = (share: number, errorRate: number, p99Ms: number): PeriodStats => {
      const requests = r.poisson(rps * share * PERIOD_S);
      const errors5xx = Math.min(requests, r.poisson(requests * errorRate));
      if (requests === 0) return { requests, errors5xx };
      const p99 = p99Ms * Math.exp(host + (P99_LOG_SD_ONE_REQUEST / Math.sqrt(requests)) * r.normal());
      return { requests, errors5xx, p99Ms: p99 };
    };
    const err = BASE_ERROR + (noisy ? NOISY.extraErrorPoints / 100 : 0);
    const p99 = BASE_P99_MS * (noisy ? NOISY.p99Factor : 1);
    control.push(arm(1 - WEIGHT, err, p99));
    experiment.push(arm(WEIGHT, err + sc.errorPoints / 100, p99 * (1 + sc.p99Percent / 100)));
  }
  return { series: { control, experiment } };
}

interface Outcome {
  verdict: 'APPROVED' | 'REJECTED';
  /** Seconds into the phase when the verdict came. */
  atSeconds: number;
  experimentRequests: number;
  inconclusive?: boolean;
  /** What decided a rejection: an alarm's name, the judge's test, or inconclusive. */
  cause?: string;
}

const slice = (s: ArmSeries, n: number): ArmSeries => ({ control: s.control.slice(0, n), experiment: s.experiment.slice(0, n) });

/** The stack's alarm rules on the periods seen so far (lib/config-bake.ts; 4xx plays no part here). */
function alarmsFiring(s: ArmSeries, n: number): string[] {
  const t = DEFAULT_BAKE_ALARMS;
  const min = t.minRequestsPerPeriod;
  const k = t.minErrorsPerPeriod;
  const firing: string[] = [];
  const rule = (name: string, value: (i: number) => number, threshold: number, periods: number, needed: number) => {
    let breaching = 0;
    for (let i = Math.max(0, n - periods); i < n; i++) if (value(i) > threshold) breaching++;
    if (breaching >= needed) firing.push(name);
  };
  const e = (i: number) => s.experiment[i]!;
  const c = (i: number) => s.control[i]!;
  const rate = (p: PeriodStats) => (100 * p.errors5xx) / p.requests;
  rule('experiment-5xx-rate', (i) => (e(i).requests >= min && e(i).errors5xx >= k ? rate(e(i)) : 0), t.experiment5xxPercent, 3, 2);
  rule('experiment-p99-latency', (i) => (e(i).requests >= min ? (e(i).p99Ms ?? 0) : 0), t.experimentP99Ms, 3, 2);
  rule(
    'experiment-5xx-vs-control',
    (i) => (e(i).requests >= min && c(i).requests >= min && e(i).errors5xx >= k ? rate(e(i)) - rate(c(i)) : 0),
    t.relative5xxPoints,
    3,
    2,
  );
  rule(
    'slo-5xx-rate',
    (i) =>
      e(i).requests + c(i).requests >= min && e(i).errors5xx + c(i).errors5xx >= k
        ? (100 * (e(i).errors5xx + c(i).errors5xx)) / (e(i).requests + c(i).requests)
        : 0,
    t.slo5xxPercent,
    6,
    3,
  );
  rule(
    'slo-p99-latency',
    (i) => Math.max(c(i).requests >= min ? (c(i).p99Ms ?? 0) : 0, e(i).requests >= min ? (e(i).p99Ms ?? 0) : 0),
    t.sloP99Ms,
    6,
    3,
  );
  return firing;
}

/** The bake's own decision loop over one trial. */
function ours(trial: Trial): Outcome {
  const perPoll = SETTINGS.pollSeconds / PERIOD_S;
  const settings = judgeSettingsOf(SETTINGS);
  let phase: Phase = { profile: 'limits', version: '2', verdict: 'BAKING', polls: 0 };
  for (;;) {
    phase = { ...phase, polls: phase.polls + 1 };
    const n = phase.polls * perPoll;
    const seen = slice(trial.series, n);
    const alarms = alarmsFiring(seen, n).map((name) => ({ name, state: 'ALARM' as const }));
    const judgement = judge(seen, settings);
    const d = decidePoll({ phase, settings: SETTINGS, alarms, judgement, abortRequested: false });
    if (d.action === 'CONTINUE') continue;
    if (d.action === 'ABORT') throw new Error('no abort in the simulation');
    return {
      verdict: d.action === 'APPROVE' ? 'APPROVED' : 'REJECTED',
      atSeconds: n * PERIOD_S,
      experimentRequests: judgement.experimentRequests,
      ...(d.action === 'REJECT' && d.reason.startsWith('Inconclusive') ? { inconclusive: true } : {}),
      ...(d.action === 'REJECT'
        ? {
            cause: d.reason.startsWith('Inconclusive')
              ? 'inconclusive'
              : alarms.length
                ? `alarm ${alarms.map((a) => a.name).join('+')}`
                : judgement.errors && judgement.errors.lower > 0
                  ? 'judge: 5xx'
                  : 'judge: p99',
          }
        : {}),
    };
  }
}

/** One-minute datapoints of the experiment arm, ending at each poll: 5xx % and p99. */
interface Minutes {
  /** [poll index][0..2]: the minute ending at the poll, one minute earlier, two minutes earlier (undefined before the phase). */
  windows: ({ errorPercent: number; p99Ms: number } | undefined)[][];
}

function minutesOf(trial: Trial): Minutes {
  const perPoll = SETTINGS.pollSeconds / PERIOD_S;
  const polls = Math.ceil(SETTINGS.bakeSeconds / SETTINGS.pollSeconds);
  const minute = 60 / PERIOD_S;
  const windows: Minutes['windows'] = [];
  for (let poll = 1; poll <= polls; poll++) {
    const n = poll * perPoll;
    const row: Minutes['windows'][number] = [];
    for (let m = 0; m < 3; m++) {
      const end = n - m * minute;
      if (end < minute) {
        row.push(undefined);
        continue;
      }
      const ps = trial.series.experiment.slice(end - minute, end);
      const req = ps.reduce((a, p) => a + p.requests, 0);
      if (req === 0) {
        row.push(undefined);
        continue;
      }
      // The minute's p99, approximated by the request-weighted mean of the periods' log p99.
      const logP99 = ps.reduce((a, p) => a + (p.p99Ms ? p.requests * Math.log(p.p99Ms) : 0), 0) / req;
      row.push({ errorPercent: (100 * ps.reduce((a, p) => a + p.errors5xx, 0)) / req, p99Ms: Math.exp(logP99) });
    }
    windows.push(row);
  }
  return { windows };
}

/** AppConfig-style: 1-minute datapoints of the experiment arm against static thresholds, 2 of 3. */
function staticPolicy(m: Minutes, errorPercent: number, p99Ms: number): Outcome {
  for (let i = 0; i < m.windows.length; i++) {
    const breaching = m.windows[i]!.filter((w) => w && (w.errorPercent > errorPercent || w.p99Ms > p99Ms)).length;
    if (breaching >= 2) return { verdict: 'REJECTED', atSeconds: (i + 1) * SETTINGS.pollSeconds, experimentRequests: 0 };
  }
  return { verdict: 'APPROVED', atSeconds: m.windows.length * SETTINGS.pollSeconds, experimentRequests: 0 };
}

// ---- Run ----------------------------------------------------------------------------------------------
const budget = pollBudget(SETTINGS);
const maxPeriods = ((budget.polls + budget.extension) * SETTINGS.pollSeconds) / PERIOD_S;

interface Row {
  scenario: string;
  trials: number;
  ours: {
    rejected: number;
    withinWindow: number;
    medianSecondsToReject: number | null;
    inconclusive: number;
    approvedBelowMinimum: number;
    causes: Record<string, number>;
  };
  static: { rejected: number; withinWindow: number; medianSecondsToReject: number | null };
  windowSeconds: number;
}

const started = Date.now();
const trialsBy = new Map<string, Trial[]>();
SCENARIOS.forEach((sc, k) => {
  const r = rng(SEED + 7919 * k);
  const n = sc.name.startsWith('A/A (no') ? 2 * TRIALS : TRIALS;
  trialsBy.set(
    sc.name,
    Array.from({ length: n }, () => generate(r, sc, maxPeriods)),
  );
});

// Ours first: its A/A false-rejection rate sets the bar for the static policy.
const outcomes = new Map(SCENARIOS.map((sc) => [sc.name, trialsBy.get(sc.name)!.map(ours)]));
const aa = trialsBy.get(SCENARIOS[0]!.name)!;
const oursAA = outcomes.get(SCENARIOS[0]!.name)!.filter((x) => x.verdict === 'REJECTED').length / aa.length;

// The static policy gets its best thresholds: of the grid points whose A/A false-rejection rate
// is at least ours (so the comparison is at equal or lower false rejections for ours), up to the
// 1% target (or the least above ours, if none is that low), the one with the best mean detection
// over the regressions.
const minutesBy = new Map([...trialsBy].map(([name, ts]) => [name, ts.map(minutesOf)]));
const aaMinutes = minutesBy.get(SCENARIOS[0]!.name)!;
const ERROR_GRID = Array.from({ length: 46 }, (_, i) => +(0.75 + 0.05 * i).toFixed(2)).concat([4, 5, 7.5, 10]);
const P99_GRID = Array.from({ length: 20 }, (_, i) => Math.round(BASE_P99_MS * (1.05 + 0.05 * i))).concat([3 * BASE_P99_MS]);
const regressionScenarios = SCENARIOS.filter((sc) => !sc.name.startsWith('A/A'));
const grid = ERROR_GRID.flatMap((e) =>
  P99_GRID.map((l) => ({
    e,
    l,
    falseRejections: aaMinutes.filter((m) => staticPolicy(m, e, l).verdict === 'REJECTED').length / aaMinutes.length,
  })),
);
const eligible = grid.filter((g) => g.falseRejections >= oursAA);
const ceiling = Math.max(0.01, Math.min(...eligible.map((g) => g.falseRejections)));
let calibrated = { errorPercent: ERROR_GRID.at(-1)!, p99Ms: P99_GRID.at(-1)!, falseRejections: 0, meanDetection: -1 };
for (const g of eligible.filter((x) => x.falseRejections <= ceiling)) {
  const meanDetection =
    regressionScenarios.reduce(
      (acc, sc) =>
        acc +
        minutesBy.get(sc.name)!.filter((m) => {
          const o = staticPolicy(m, g.e, g.l);
          return o.verdict === 'REJECTED' && o.atSeconds <= sc.window;
        }).length /
          TRIALS,
      0,
    ) / regressionScenarios.length;
  if (meanDetection > calibrated.meanDetection)
    calibrated = { errorPercent: g.e, p99Ms: g.l, falseRejections: g.falseRejections, meanDetection };
}

const rows: Row[] = SCENARIOS.map((sc) => {
  const trials = trialsBy.get(sc.name)!;
  const o = outcomes.get(sc.name)!;
  const st = minutesBy.get(sc.name)!.map((m) => staticPolicy(m, calibrated.errorPercent, calibrated.p99Ms));
  const summarize = (xs: Outcome[]) => {
    const rejected = xs.filter((x) => x.verdict === 'REJECTED');
    return {
      rejected: rejected.length / xs.length,
      withinWindow: rejected.filter((x) => x.atSeconds <= sc.window).length / xs.length,
      medianSecondsToReject: rejected.length ? median(rejected.map((x) => x.atSeconds)) : null,
    };
  };
  return {
    scenario: sc.name,
    trials: trials.length,
    windowSeconds: sc.window,
    ours: {
      ...summarize(o),
      inconclusive: o.filter((x) => x.inconclusive).length / o.length,
      approvedBelowMinimum: o.filter((x) => x.verdict === 'APPROVED' && x.experimentRequests < SETTINGS.minExperimentRequests).length,
      causes: o.reduce<Record<string, number>>((acc, x) => {
        if (x.cause) acc[x.cause] = (acc[x.cause] ?? 0) + 1;
        return acc;
      }, {}),
    },
    static: summarize(st),
  };
});

const row = (name: string) => rows.find((r) => r.scenario === name)!;
const aaRow = row(SCENARIOS[0]!.name);
const regressions = rows.filter((r) => !r.scenario.startsWith('A/A'));
const betterEverywhere = regressions.every((r) => r.ours.withinWindow >= r.static.withinWindow);
const betterSomewhere = regressions.some((r) => r.ours.withinWindow > r.static.withinWindow);
const targets = [
  {
    name: '+1 point 5xx rejected within 5 min',
    value: row('+1 point 5xx').ours.withinWindow,
    target: '>= 0.95',
    met: row('+1 point 5xx').ours.withinWindow >= 0.95,
  },
  {
    name: '+0.5 points 5xx rejected within 10 min',
    value: row('+0.5 points 5xx').ours.withinWindow,
    target: '>= 0.80',
    met: row('+0.5 points 5xx').ours.withinWindow >= 0.8,
  },
  {
    name: '+50% p99 rejected within 5 min',
    value: row('+50% p99').ours.withinWindow,
    target: '>= 0.95',
    met: row('+50% p99').ours.withinWindow >= 0.95,
  },
  { name: 'A/A false rejections over whole bakes', value: aaRow.ours.rejected, target: '<= 0.01', met: aaRow.ours.rejected <= 0.01 },
  {
    name: 'approvals with fewer than the minimum experiment samples',
    value: rows.reduce((a, r) => a + r.ours.approvedBelowMinimum, 0),
    target: '0',
    met: rows.every((r) => r.ours.approvedBelowMinimum === 0),
  },
  {
    name: 'detection better than the static-threshold policy at equal or lower A/A false rejections',
    value: `${regressions.filter((r) => r.ours.withinWindow > r.static.withinWindow).length} of ${regressions.length} regressions better, none worse; A/A ${aaRow.ours.rejected} vs ${aaRow.static.rejected}`,
    target: 'none worse, some better, A/A <= static',
    met: betterEverywhere && betterSomewhere && aaRow.ours.rejected <= aaRow.static.rejected,
  },
];

const doc = {
  command: ['npm run bench:bake', ...(argv.length ? ['--', ...argv] : [])].join(' '),
  seed: SEED,
  trialsPerScenario: TRIALS,
  model: {
    totalRequestsPerSecond: TOTAL_RPS,
    weightPercent: WEIGHT * 100,
    baselineErrorPercent: BASE_ERROR * 100,
    baselineP99Ms: BASE_P99_MS,
    periodSeconds: PERIOD_S,
    bakeSeconds: SETTINGS.bakeSeconds,
    pollSeconds: SETTINGS.pollSeconds,
    extensionPolls: budget.extension,
    noisyMinute: NOISY,
    judge: judgeSettingsOf(SETTINGS),
    alarms: DEFAULT_BAKE_ALARMS,
  },
  staticPolicy: {
    ...calibrated,
    rule: '1-minute datapoints of the experiment arm, 2 of 3 breaching; thresholds: the grid point with the best mean detection whose A/A false rollbacks are at least ours and at most 1%',
  },
  rows,
  targets,
  elapsedSeconds: (Date.now() - started) / 1000,
};

if (JSON_OUT) {
  console.log(JSON.stringify(doc, null, 2));
} else {
  const p = (x: number) => `${(100 * x).toFixed(1)}%`;
  const s = (x: number | null) => (x === null ? '-' : `${x} s`);
  console.log(
    `Bake judgement by simulation: ${TRIALS} trials a scenario (A/A: ${2 * TRIALS}), seed ${SEED}, ${doc.elapsedSeconds.toFixed(1)} s`,
  );
  console.log(
    `${TOTAL_RPS} requests/s, weight ${WEIGHT * 100}%, 5xx ${BASE_ERROR * 100}%, p99 ${BASE_P99_MS} ms, 10 s periods, poll every ${SETTINGS.pollSeconds} s, bake ${SETTINGS.bakeSeconds} s (+1 extension of ${budget.extension} polls); a noisy minute hits both arms (+1 point, p99 x1.3)`,
  );
  console.log(
    `judge: margin ${SETTINGS.errorMarginPoints} points / ${SETTINGS.latencyMarginPercent}%, alpha ${SETTINGS.alpha}, minimum ${SETTINGS.minExperimentRequests} experiment requests; static policy at its best thresholds with A/A false rejections between ours and 1%: 5xx > ${calibrated.errorPercent}% or p99 > ${calibrated.p99Ms} ms\n`,
  );
  console.log(
    '| scenario | window | ours: rejected in window | ours: median time to reject | ours: rejected at all (inconclusive) | static: rejected in window | static: median time | static: rejected at all |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.scenario} | ${r.windowSeconds / 60} min | ${p(r.ours.withinWindow)} | ${s(r.ours.medianSecondsToReject)} | ${p(r.ours.rejected)} (${p(r.ours.inconclusive)}) | ${p(r.static.withinWindow)} | ${s(r.static.medianSecondsToReject)} | ${p(r.static.rejected)} |`,
    );
  }
  console.log('\n| target | value | target | met |\n|---|---|---|---|');
  for (const t of targets)
    console.log(`| ${t.name} | ${typeof t.value === 'number' ? +t.value.toFixed(4) : t.value} | ${t.target} | ${t.met ? 'yes' : 'NO'} |`);
}
