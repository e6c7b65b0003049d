/**
 * The local console: the stack's CloudWatch dashboard on this machine, with the bakes and the
 * local principals' logs and sessions beside it. Flow: the dashboards are read from the
 * synthesized template (AWS::CloudWatch::Dashboard, DashboardBody with its intrinsics resolved
 * as the runtime resolves the rest of the template), never restated here; each JSON route
 * answers from the runtime's own stand-ins on every request: metric widgets query the local
 * metric store (GetMetricData, metric math included), the alarm widget DescribeAlarms of the
 * local alarm evaluator, the bakes panel the same BakeList that answers GET /bakes, the logs and
 * sessions panel a scan of the embedded tables described by LogService and SessionService (what
 * GET /logs/{id} and GET /sessions/{id} answer). The page (local/console-page.ts) polls them.
 *
 * Routes, all GET, all under /local/ (the deployed stack has no such routes), answered only to
 * loopback callers (anyone else gets 403): /local/console (the page), /local/console/uPlot.*
 * (the charting library, from node_modules), /local/api/dashboard, /local/api/bakes,
 * /local/api/principals. Reads only: nothing here writes to any store.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { ScanCommand, type DynamoDBClient, type AttributeValue } from '@aws-sdk/client-dynamodb';
import type { LocalCloudWatch } from './cloudwatch/alarms';
import type { MetricDataQuery } from './cloudwatch/metrics';
import { resolveIntrinsics, type ResolveOptions } from './stepfunctions';
import type { Template } from './template';
import type { Principal } from './credentials';
import type { BakeList } from '../lambdas/services/bake-list';
import type { LogService } from '../lambdas/services/logs';
import type { SessionService } from '../lambdas/services/sessions';
import { CONSOLE_PAGE } from './console-page';
import { HEAD, SESSION } from '../lambdas/adapters/items';

export const CONSOLE_PREFIX = '/local/';
export const CONSOLE_PATH = '/local/console';

/** One widget of a dashboard body, as CloudWatch's dashboard body structure defines it. */
export interface DashboardWidget {
  type: string;
  x: number;
  y: number;
  width: number;
  height: number;
  properties: Record<string, unknown>;
}

export interface Dashboard {
  logicalId: string;
  name: string;
  /** The body's `start` (e.g. -PT1H): how far back the graphs reach, in the stack's time. */
  start?: string;
  widgets: DashboardWidget[];
}

/** The AWS::CloudWatch::Dashboard resources of a template, their bodies resolved and parsed. */
export function dashboardsFromTemplate(template: Template, resolve: ResolveOptions = {}): Dashboard[] {
  const out: Dashboard[] = [];
  for (const [logicalId, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::CloudWatch::Dashboard') continue;
    const raw = resolveIntrinsics(template, r.Properties?.DashboardBody, `Dashboard ${logicalId} DashboardBody`, resolve);
    const body = JSON.parse(String(raw)) as { start?: string; widgets?: Partial<DashboardWidget>[] };
    // CloudWatch places a widget without x/y after the previous one, left to right; CDK always sets both.
    const widgets = (body.widgets ?? []).map((w) => ({
      type: w.type ?? 'unknown',
      x: w.x ?? 0,
      y: w.y ?? 0,
      width: w.width ?? 6,
      height: w.height ?? 6,
      properties: w.properties ?? {},
    }));
    out.push({
      logicalId,
      name: typeof r.Properties?.DashboardName === 'string' ? r.Properties.DashboardName : logicalId,
      ...(body.start ? { start: body.start } : {}),
      widgets,
    });
  }
  return out;
}

/** Seconds in an ISO 8601 duration as dashboards write `start` (-PT1H, -P1D, -PT15M); undefined if it is not one. */
export function durationSeconds(iso: string | undefined): number | undefined {
  const m = /^-?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(iso ?? '');
  if (!m || iso === '-P' || iso === 'P') return undefined;
  const [, w, d, h, min, s] = m.map((x) => Number(x ?? 0));
  return w! * 604800 + d! * 86400 + h! * 3600 + min! * 60 + s!;
}

export interface SeriesQuery {
  query: MetricDataQuery;
  label: string;
  visible: boolean;
  color?: string;
}

/**
 * A metric widget's `metrics` rows as GetMetricData queries. A row is either
 * [namespace, metricName, dimName, dimValue, ..., {options}] or [{expression, ...options}];
 * "." repeats the previous row's value at that position. Period and stat fall back to the
 * widget's properties, then CloudWatch's defaults (300, Average). Ids are the rows' own `id`,
 * else m1.. / e1.. by row.
 */
export function widgetQueries(properties: Record<string, unknown>): SeriesQuery[] {
  const rows: unknown[][] = Array.isArray(properties.metrics) ? properties.metrics : [];
  const out: SeriesQuery[] = [];
  let previous: unknown[] = [];
  rows.forEach((row, i) => {
    const last = row[row.length - 1];
    const opts = (last && typeof last === 'object' && !Array.isArray(last) ? last : {}) as Record<string, unknown>;
    const fields = (opts === last ? row.slice(0, -1) : row).map((v, j) => (v === '.' ? previous[j] : v));
    previous = fields;
    const period = Number(opts.period ?? properties.period ?? 300);
    const visible = opts.visible !== false;
    const common = { ...(opts.label ? { Label: String(opts.label) } : {}), ReturnData: visible, Period: period };
    if (typeof opts.expression === 'string') {
      const id = String(opts.id ?? `e${i + 1}`);
      out.push({
        query: { Id: id, Expression: opts.expression, ...common },
        label: String(opts.label ?? opts.expression),
        visible,
        ...(opts.color ? { color: String(opts.color) } : {}),
      });
      return;
    }
    const [namespace, metricName, ...dims] = fields.map(String);
    const dimensions = [];
    for (let j = 0; j + 1 < dims.length; j += 2) dimensions.push({ Name: dims[j]!, Value: dims[j + 1]! });
    const id = String(opts.id ?? `m${i + 1}`);
    out.push({
      query: {
        Id: id,
        MetricStat: {
          Metric: { Namespace: namespace!, MetricName: metricName!, Dimensions: dimensions },
          Period: period,
          Stat: String(opts.stat ?? properties.stat ?? 'Average'),
        },
        ...common,
      },
      label: String(opts.label ?? metricName),
      visible,
      ...(opts.color ? { color: String(opts.color) } : {}),
    });
  });
  return out;
}

/** A metric widget's visible series on one time axis (epoch seconds, as uPlot takes it); null where a series has no point. */
export interface GraphData {
  times: number[];
  series: { label: string; color?: string; values: (number | null)[] }[];
  error?: string;
}

export function graphData(
  cloudwatch: Pick<LocalCloudWatch, 'getMetricData'>,
  properties: Record<string, unknown>,
  startMs: number,
  endMs: number,
): GraphData {
  const queries = widgetQueries(properties);
  const shown = queries.filter((q) => q.visible);
  let results: { Id: string; Timestamps: Date[]; Values: number[] }[];
  try {
    results = cloudwatch.getMetricData({
      MetricDataQueries: queries.map((q) => q.query),
      StartTime: startMs,
      EndTime: endMs,
      ScanBy: 'TimestampAscending',
    }).MetricDataResults;
  } catch (e) {
    // A body the local metric store cannot answer (an unsupported math function): say so on the widget.
    return { times: [], series: shown.map((q) => ({ label: q.label, values: [] })), error: (e as Error).message };
  }
  const byId = new Map(results.map((r) => [r.Id, new Map(r.Timestamps.map((t, i) => [Math.floor(t.getTime()) / 1000, r.Values[i]!]))]));
  const times = [...new Set([...byId.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
  return {
    times,
    series: shown.map((q) => {
      const points = byId.get(q.query.Id) ?? new Map<number, number>();
      return { label: q.label, ...(q.color ? { color: q.color } : {}), values: times.map((t) => points.get(t) ?? null) };
    }),
  };
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The markdown of text widgets as simple HTML: headings, paragraphs, lists, **bold**, *italic*, `code`, [links](url). Input is escaped first. */
export function markdownToHtml(markdown: string): string {
  const inline = (s: string): string =>
    escapeHtml(s)
      .replace(/`([^`]+)`/g, '<code>$1</code>')
      .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
      .replace(/(^|[^*])\*([^*]+)\*/g, '$1<em>$2</em>')
      .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+|\/[^)\s]*|#[^)\s]*)\)/g, '<a href="$2">$1</a>');
  const html: string[] = [];
  let para: string[] = [];
  let list: string[] = [];
  const flush = () => {
    if (para.length) html.push(`<p>${para.map(inline).join(' ')}</p>`);
    if (list.length) html.push(`<ul>${list.map((l) => `<li>${inline(l)}</li>`).join('')}</ul>`);
    para = [];
    list = [];
  };
  for (const line of markdown.split('\n')) {
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = /^\s*[-*]\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      html.push(`<h${heading[1]!.length}>${inline(heading[2]!)}</h${heading[1]!.length}>`);
    } else if (item) {
      if (para.length) flush();
      list.push(item[1]!);
    } else if (!line.trim()) flush();
    else {
      if (list.length) flush();
      para.push(line.trim());
    }
  }
  flush();
  return html.join('\n');
}

export interface ConsoleDeps {
  template: Template;
  resolve: ResolveOptions;
  cloudwatch: Pick<LocalCloudWatch, 'getMetricData' | 'describeAlarms'>;
  timeScale: number;
  bakeList: Pick<BakeList, 'list'>;
  logs: Pick<LogService, 'describe'>;
  sessions: Pick<SessionService, 'describe'>;
  dynamo: DynamoDBClient;
  tables: { logs: string; sessions: string };
  principals: () => Principal[];
  /** The owner the handlers record for a principal (its IAM user ARN). */
  ownerOf: (principal: Principal) => string;
  now?: () => number;
}

/** A socket address on this machine: 127.0.0.0/8 or ::1, plain or IPv4-mapped. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

export const isConsoleRequest = (url: string | undefined): boolean => (url ?? '').startsWith(CONSOLE_PREFIX) || url === '/local';

export class LocalConsole {
  private readonly dashboards: Dashboard[];
  private readonly uplotDir: string;

  constructor(private readonly deps: ConsoleDeps) {
    // Read once: the template does not change while the runtime runs.
    this.dashboards = dashboardsFromTemplate(deps.template, deps.resolve);
    this.uplotDir = require.resolve('uplot/dist/uPlot.iife.min.js').replace(/uPlot\.iife\.min\.js$/, '');
  }

  /** Answers one request under /local/; every answer is a read. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!isLoopback(req.socket.remoteAddress)) {
      return send(res, 403, {
        error: {
          code: 'Forbidden',
          message: `The local console answers requests from this machine only (loopback); ${req.socket.remoteAddress ?? 'this caller'} is not. Open it on the machine that runs npm start.`,
        },
      });
    }
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(
        res,
        405,
        { error: { code: 'MethodNotAllowed', message: `The local console's routes are read-only: use GET, not ${req.method}.` } },
        { allow: 'GET' },
      );
    }
    switch (path) {
      case '/local':
      case '/local/':
      case CONSOLE_PATH:
      case `${CONSOLE_PATH}/`:
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        return void res.end(CONSOLE_PAGE);
      case `${CONSOLE_PATH}/uPlot.iife.min.js`:
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
        return void res.end(readFileSync(`${this.uplotDir}uPlot.iife.min.js`));
      case `${CONSOLE_PATH}/uPlot.min.css`:
        res.writeHead(200, { 'content-type': 'text/css; charset=utf-8' });
        return void res.end(readFileSync(`${this.uplotDir}uPlot.min.css`));
      case '/local/api/dashboard':
        return send(res, 200, this.dashboard());
      case '/local/api/bakes':
        return send(res, 200, await this.deps.bakeList.list({ limit: '10' }));
      case '/local/api/principals':
        return send(res, 200, { principals: await this.principals() });
      default:
        return send(res, 404, {
          error: {
            code: 'NotFound',
            message: `The local console has no ${path}. Open ${CONSOLE_PATH}; its data is at /local/api/dashboard, /local/api/bakes and /local/api/principals.`,
          },
        });
    }
  }

  /** Every dashboard of the template, each widget with what it shows now. */
  dashboard(): { timeScale: number; dashboards: unknown[] } {
    const nowMs = (this.deps.now ?? Date.now)();
    const alarms = new Map(this.deps.cloudwatch.describeAlarms({}).MetricAlarms.map((a) => [a.AlarmName, a]));
    return {
      timeScale: this.deps.timeScale,
      dashboards: this.dashboards.map((d) => ({
        name: d.name,
        start: d.start ?? '-PT3H',
        widgets: d.widgets.map((w) => {
          const base = {
            type: w.type,
            x: w.x,
            y: w.y,
            width: w.width,
            height: w.height,
            title: typeof w.properties.title === 'string' ? w.properties.title : '',
          };
          if (w.type === 'text') return { ...base, html: markdownToHtml(String(w.properties.markdown ?? '')) };
          if (w.type === 'alarm') {
            const names = (Array.isArray(w.properties.alarms) ? w.properties.alarms : []).map((arn: string) =>
              String(arn).replace(/^arn:[^:]*:cloudwatch:[^:]*:[^:]*:alarm:/, ''),
            );
            return {
              ...base,
              alarms: names.map((name: string) => {
                const a = alarms.get(name);
                return a
                  ? { name, state: a.StateValue, reason: a.StateReason, updatedAt: a.StateUpdatedTimestamp.toISOString() }
                  : { name, state: 'UNKNOWN', reason: 'No such alarm in the local CloudWatch.' };
              }),
            };
          }
          if (w.type === 'metric') {
            // The window is the dashboard's, in the stack's time: divided by the time scale, as every period is.
            const windowMs =
              ((durationSeconds((w.properties.start as string | undefined) ?? d.start) ?? 3 * 3600) * 1000) / this.deps.timeScale;
            return {
              ...base,
              view: w.properties.view ?? 'timeSeries',
              ...graphData(this.deps.cloudwatch, w.properties, nowMs - windowMs, nowMs + 1),
            };
          }
          return { ...base, unsupported: `A ${w.type} widget: the local console does not draw this type.` };
        }),
      })),
    };
  }

  /** The local principals, each with its logs and their sessions (lag, in flight, dead-lettered), read as GET /logs/{id} and GET /sessions/{id} read them. */
  async principals(): Promise<unknown[]> {
    const [logItems, sessionItems] = await Promise.all([
      scan(this.deps.dynamo, this.deps.tables.logs, [HEAD.owner, HEAD.logId, HEAD.lastSeq]),
      scan(this.deps.dynamo, this.deps.tables.sessions, [SESSION.key, SESSION.owner, SESSION.logId, SESSION.settings]),
    ]);
    const str = (v: AttributeValue | undefined) => v?.S;
    return Promise.all(
      this.deps.principals().map(async (p) => {
        const owner = this.deps.ownerOf(p);
        const logIds = logItems
          .filter((i) => str(i[HEAD.owner]) === owner && str(i[HEAD.logId]) && i[HEAD.lastSeq]?.N !== undefined)
          .map((i) => str(i[HEAD.logId])!);
        const logs = await Promise.all(
          logIds.sort().map(async (logId) => {
            const view = await this.deps.logs.describe(owner, logId).catch(() => undefined);
            const ids = sessionItems
              .filter((i) => str(i[SESSION.owner]) === owner && str(i[SESSION.logId]) === logId && i[SESSION.settings] !== undefined)
              .map((i) => str(i[SESSION.key])!);
            // A session that expired between the scan and its read answers 404: it is gone, leave it out.
            const sessions = (
              await Promise.all(ids.sort().map((id) => this.deps.sessions.describe(owner, id).catch(() => undefined)))
            ).filter((s) => s !== undefined);
            return { ...(view ?? { logId }), sessions };
          }),
        );
        return { name: p.name, admin: p.admin, logs };
      }),
    );
  }
}

/** Every item of a table, only the named attributes (a scan is fine for a local store of a few thousand items). */
async function scan(client: DynamoDBClient, table: string, attributes: string[]): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  const names = Object.fromEntries(attributes.map((a, i) => [`#a${i}`, a]));
  do {
    const page = await client.send(
      new ScanCommand({
        TableName: table,
        ProjectionExpression: Object.keys(names).join(', '),
        ExpressionAttributeNames: names,
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}
