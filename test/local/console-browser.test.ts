/**
 * The local console in a real browser: headless Chromium (the system's, driven by
 * playwright-core, which downloads none) opens the console while a two-phase bake runs under
 * traffic at a time scale, and the rendered page must show every widget of the template's
 * dashboard with its title, per-arm graphs with drawn points, each alarm with the state the
 * local CloudWatch reports, and the bake's phases with the verdicts GET /bakes/{id} reports.
 * A screenshot is saved to .vitest/console.png. Chromium missing: `npm test`'s pretest
 * installs it as root (scripts/ensure-chromium.sh); otherwise this fails saying how.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { chromium, type Browser } from 'playwright-core';
import type { LocalRuntime } from '../../local/server';
import type { SignedHttp } from '../../local/client';
import { startTestRuntime } from '../support/runtime';
import { Traffic } from '../../local/traffic';
import { synthTemplate, type Template } from '../../local/template';
import { alarmsFromTemplate } from '../../local/cloudwatch/alarms';

const SCALE = 10;

/** The system Chromium: LOGRELAY_CHROMIUM, else chromium on the PATH (Debian's package puts it at /usr/bin/chromium). */
function chromiumPath(): string {
  const candidates = [process.env.LOGRELAY_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
  for (const p of candidates) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      "The console's browser test needs Chromium and found none. Install it with 'apt-get install -y chromium' (as root; npm test's pretest does this itself when run as root), or set LOGRELAY_CHROMIUM to a Chromium or Chrome binary.",
    );
  }
}

/** Every widget title as the template's DashboardBody spells them, read without the console's code. */
function titlesInTemplate(template: Template): { titles: string[]; widgets: number } {
  const body = Object.values(template.Resources).find((r) => r.Type === 'AWS::CloudWatch::Dashboard')!.Properties.DashboardBody;
  const text = JSON.stringify(body);
  return {
    titles: [...text.matchAll(/\\"title\\":\\"((?:[^\\]|\\\\[^"])*?)\\"/g)].map((m) => m[1]!),
    widgets: [...text.matchAll(/\\"type\\":\\"/g)].length,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(250);
  }
}

let rt: LocalRuntime;
let admin: SignedHttp;
let worker: SignedHttp;
let template: Template;
let browser: Browser | undefined;

beforeAll(async () => {
  const executablePath = chromiumPath();
  template = synthTemplate();
  ({ rt, admin, worker } = await startTestRuntime('CONB', { template, timeScale: SCALE }));
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await rt?.close();
});

describe('the local console in a browser, during a bake', () => {
  it('shows every widget of the dashboard, per-arm graphs with data, the alarms and the bake verdicts', async () => {
    const good = await admin.call('POST', '/configs/delivery/versions', { content: { maxBatchRecords: 50 } });
    const bad = await admin.call('POST', '/configs/limits/versions', { content: { maxRecordsPerAppend: 1 } });
    expect([good.status, bad.status]).toEqual([201, 201]);
    const traffic = new Traffic(worker, { logs: 6, workersPerLog: 1, recordsPerBatch: 5, prefix: 'cb' });
    await traffic.start();

    const page = await browser!.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${rt.consoleUrl}?refresh=1000`);
    const started = await admin.call('POST', '/bakes', {
      changes: [
        { profile: 'delivery', version: good.body.version },
        { profile: 'limits', version: bad.body.version },
      ],
      weightPercent: 50,
      bakeSeconds: 60,
      pollSeconds: 10,
      minExperimentRequests: 20,
      latencyMarginPercent: 50,
    });
    expect(started.status).toBe(202);
    const bakeId: string = started.body.bakeId;
    // While it runs, the page shows it running.
    await until('the running bake on the page', async () => ((await page.locator(`[data-bake="${bakeId}"]`).count()) ? true : undefined));
    await rt.bakeExecutions.get(bakeId);
    const record = (await admin.call('GET', `/bakes/${bakeId}`)).body;
    await traffic.stop();
    expect(record.status).toBe('SUCCEEDED');
    const verdicts: string[] = record.phases.map((p: { verdict: string }) => p.verdict);
    expect(verdicts.every((v) => ['APPROVED', 'REJECTED'].includes(v))).toBe(true);

    // The bake's phases and verdicts, as the API reports them, on the page.
    const bake = page.locator(`[data-bake="${bakeId}"]`);
    await until('the finished bake on the page', async () => ((await bake.getAttribute('data-status')) === 'SUCCEEDED' ? true : undefined));
    expect(await bake.locator('.phase').evaluateAll((els) => els.map((e) => e.getAttribute('data-verdict')))).toEqual(verdicts);
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText(), the text as rendered (what a person sees), not the DOM property
    const bakeText = await bake.innerText();
    for (const p of record.phases) {
      expect(bakeText).toContain(`${p.profile} v${p.version}`);
      if (p.reason) expect(bakeText).toContain(p.reason);
    }

    // Every widget of the template's dashboard, with its title.
    const { titles, widgets } = titlesInTemplate(template);
    await until('every widget drawn', async () => ((await page.locator('section.widget').count()) === widgets ? true : undefined));
    const shown = await page
      .locator('section.widget')
      .evaluateAll((els) => els.map((e) => ({ type: e.getAttribute('data-type'), title: e.querySelector('h2.title')?.textContent ?? '' })));
    expect(shown.filter((w) => w.title).map((w) => w.title)).toEqual(titles);
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText(), the text as rendered
    expect(await page.locator('section.widget.text h1').innerText()).toBe('Logrelay config bake');

    // Per-arm graphs: each arm's series has drawn points (uPlot's own data, read from the page).
    const charts = await until('per-arm graphs with data in every arm', async () => {
      const c = await page.evaluate(() =>
        Object.values((globalThis as any).__console.charts).map((u: any) => ({
          title: u.__title as string,
          series: (u.series as { label: string }[])
            .slice(1)
            .map((s, i) => ({ label: s.label, points: (u.data[i + 1] as (number | null)[]).filter((v) => v !== null).length })),
          drawn: u.root.querySelector('canvas') !== null,
        })),
      );
      const perArm = c.filter((x) => /per arm/.test(x.title));
      return perArm.length === 4 && perArm.every((x) => x.series.length === 2 && x.series.every((s) => s.points > 0)) ? c : undefined;
    });
    for (const c of charts.filter((x) => /per arm/.test(x.title))) {
      expect(c.drawn).toBe(true);
      expect(c.series.map((s) => s.label.split(' ')[0])).toEqual(['control', 'experiment']);
    }
    // What was under test, by profile: both profiles had a turn.
    const underTest = charts.find((x) => x.title === 'Under test: weight % by profile')!;
    expect(underTest.series.map((s) => s.points > 0)).toEqual([true, true]);

    // The alarm widget: each of the stack's alarms, with the state the local CloudWatch has now.
    const alarmNames = alarmsFromTemplate(template)
      .map((a) => a.AlarmName)
      .sort();
    await until('the alarm states of the local CloudWatch', async () => {
      const onPage = await page
        .locator('section.widget.alarm .alarm')
        .evaluateAll((els) => els.map((e) => [e.getAttribute('data-alarm'), e.getAttribute('data-state')]));
      const now = rt.cloudwatch.describeAlarms({}).MetricAlarms.map((a) => [a.AlarmName, a.StateValue]);
      const sorted = [...onPage].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1));
      return JSON.stringify(sorted) === JSON.stringify(now) && sorted.length === alarmNames.length ? true : undefined;
    });
    const states = await page.locator('section.widget.alarm .alarm').evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));
    expect(states.every((s) => ['OK', 'ALARM', 'INSUFFICIENT_DATA'].includes(String(s)))).toBe(true);

    // The workers' logs and sessions, beside the dashboard.
    await until('the traffic logs in the sessions panel', async () =>
      (await page.locator('[data-principal="workers"] .session').count()) >= traffic.logIds.length ? true : undefined,
    );

    mkdirSync('.vitest', { recursive: true });
    await page.screenshot({ path: '.vitest/console.png', fullPage: true });
    await page.close();
  }, 150_000);
});
