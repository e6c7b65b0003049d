/**
 * The local console follows the stack: a widget added to the dashboard in the CDK stack shows up
 * in the console's dashboard (and draws the metric it names) with no other change. Also: only
 * loopback callers are answered, the routes are read-only, and the body's rows become the
 * GetMetricData queries CloudWatch would run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { LogrelayStack } from '../../lib/logrelay-stack';
import type { Template } from '../../local/template';
import { isLoopback, LocalConsole, markdownToHtml, widgetQueries, durationSeconds } from '../../local/console';
import { startTestRuntime, type TestRuntime } from '../support/runtime';

const ADDED = 'Console test: control requests (added in the stack)';

function synthWith(change: (stack: LogrelayStack) => void): Template {
  const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'logrelay-console-')), context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new LogrelayStack(app, 'Logrelay');
  change(stack);
  return app.synth().getStackByName('Logrelay').template as Template;
}

/** Titles as the template's DashboardBody spells them (its literal parts), read without the console's code. */
function titlesInTemplate(template: Template): string[] {
  const body = Object.values(template.Resources).find((r) => r.Type === 'AWS::CloudWatch::Dashboard')!.Properties.DashboardBody;
  const text = JSON.stringify(body);
  return [...text.matchAll(/\\"title\\":\\"((?:[^\\]|\\\\[^"])*?)\\"/g)].map((m) => m[1]!);
}

let t: TestRuntime;
let template: Template;
beforeAll(async () => {
  template = synthWith((stack) =>
    stack.bake.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: ADDED,
        left: [
          new cloudwatch.Metric({
            namespace: 'Logrelay',
            metricName: 'Requests',
            dimensionsMap: { service: 'logrelay', Arm: 'control' },
            statistic: 'Sum',
            period: Duration.seconds(10),
            label: 'control requests',
          }),
        ],
        width: 8,
      }),
    ),
  );
  t = await startTestRuntime('CONS', { template, timeScale: 10 });
}, 120_000);

afterAll(async () => {
  await t?.rt.close();
});

const getJson = async (path: string) => {
  const r = await fetch(t.rt.url + path);
  return { status: r.status, body: (await r.json()) as any };
};

describe('the local console follows the dashboard in the stack', () => {
  it('shows a widget added in the stack, with every other widget of the body, and draws its metric', async () => {
    expect(titlesInTemplate(template)).toContain(ADDED);
    await t.worker.call('POST', '/logs', { logId: 'console-a' });
    const appended = await t.worker.call('POST', '/logs/console-a/records', { records: [{ data: 1 }, { data: 2 }] });
    expect(appended.status).toBe(201);

    const { status, body } = await getJson('/local/api/dashboard');
    expect(status).toBe(200);
    const widgets = body.dashboards[0].widgets as {
      type: string;
      title: string;
      x: number;
      y: number;
      width: number;
      series?: { values: (number | null)[] }[];
    }[];
    expect(widgets.filter((w) => w.title).map((w) => w.title)).toEqual(titlesInTemplate(template));
    const added = widgets.find((w) => w.title === ADDED)!;
    expect(added).toMatchObject({ type: 'metric', width: 8 });
    // Placed below everything else, as CDK appends a row.
    expect(added.y).toBe(Math.max(...widgets.filter((w) => w !== added).map((w) => w.y + (w as any).height)));
    // The metric it names (the runtime's own requests, control arm) is drawn from the local store.
    const values = added.series![0]!.values.filter((v): v is number => v !== null);
    expect(values.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);

    const page = await fetch(`${t.rt.url}/local/console`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const lib = await fetch(`${t.rt.url}/local/console/uPlot.iife.min.js`);
    expect(lib.status).toBe(200);
    expect(await lib.text()).toMatch(/uPlot/);
  });

  it('lists the principals with their logs and sessions (lag, in flight, dead-lettered)', async () => {
    await t.worker.call('POST', '/logs', { logId: 'console-b' });
    await t.worker.call('POST', '/logs/console-b/records', { records: [{ data: 1 }, { data: 2 }, { data: 3 }] });
    const s = await t.worker.call('POST', '/logs/console-b/sessions', { start: 'oldest' });
    await t.worker.call('POST', `/sessions/${s.body.sessionId}/receive`, { maxRecords: 1 });
    const { body } = await getJson('/local/api/principals');
    const workers = body.principals.find((p: { name: string }) => p.name === 'workers');
    const log = workers.logs.find((l: { logId: string }) => l.logId === 'console-b');
    expect(log).toMatchObject({ firstSeq: 1, lastSeq: 3 });
    expect(log.sessions).toEqual([expect.objectContaining({ sessionId: s.body.sessionId, lag: 2, inFlight: 1, deadLettered: 0 })]);
    expect(body.principals.find((p: { name: string }) => p.name === 'ops').logs).toEqual([]);
  });

  it('lists bakes as GET /bakes does, and is read-only', async () => {
    const mine = await getJson('/local/api/bakes');
    const api = await t.admin.call('GET', '/bakes?limit=10');
    expect(mine.body).toEqual(api.body);
    const post = await fetch(`${t.rt.url}/local/api/bakes`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(((await post.json()) as any).error.message).toMatch(/read-only: use GET/);
    const missing = await getJson('/local/api/nothing');
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toMatch(/Open \/local\/console/);
  });

  it('answers loopback callers only', async () => {
    expect(['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.3.2.1'].map(isLoopback)).toEqual([true, true, true, true]);
    expect(['10.0.0.5', '::ffff:192.168.1.2', '2001:db8::1', undefined].map(isLoopback)).toEqual([false, false, false, false]);
    // A request from another machine, as the server would hand it over.
    const c = new LocalConsole({ template, resolve: {}, timeScale: 1 } as never);
    let status = 0;
    let body = '';
    const res = { headersSent: false, writeHead: (s: number) => (status = s), end: (b: string) => (body = b) };
    await c.handle({ url: '/local/api/dashboard', method: 'GET', socket: { remoteAddress: '10.0.0.5' } } as never, res as never);
    expect(status).toBe(403);
    expect(JSON.parse(body).error.message).toMatch(/from this machine only \(loopback\); 10\.0\.0\.5 is not/);
  });
});

describe('the dashboard body as queries', () => {
  it('turns metric rows and metric math into GetMetricData queries, hidden inputs not returned', () => {
    const q = widgetQueries({
      period: 60,
      metrics: [
        [{ expression: 'IF(rc > 0, 100 * ec / rc, 0)', label: 'rate' }],
        ['Logrelay', 'Requests', 'Arm', 'control', { id: 'rc', visible: false, stat: 'Sum', period: 10 }],
        ['.', 'Errors5xx', '.', '.', { id: 'ec', visible: false, stat: 'Sum' }],
      ],
    });
    expect(q.map((x) => [x.query.Id, x.visible, x.label])).toEqual([
      ['e1', true, 'rate'],
      ['rc', false, 'Requests'],
      ['ec', false, 'Errors5xx'],
    ]);
    expect(q[2]!.query.MetricStat).toEqual({
      Metric: { Namespace: 'Logrelay', MetricName: 'Errors5xx', Dimensions: [{ Name: 'Arm', Value: 'control' }] },
      Period: 60,
      Stat: 'Sum',
    });
    expect(durationSeconds('-PT1H')).toBe(3600);
    expect(durationSeconds('-P1DT30M')).toBe(88_200);
    expect(durationSeconds('yesterday')).toBeUndefined();
  });

  it('renders text widgets as escaped simple HTML', () => {
    expect(markdownToHtml('# Title\nSome **bold** and `code` <b>.\n\n- one\n- two')).toBe(
      '<h1>Title</h1>\n<p>Some <strong>bold</strong> and <code>code</code> &lt;b&gt;.</p>\n<ul><li>one</li><li>two</li></ul>',
    );
  });
});
