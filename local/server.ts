/**
 * The local runtime: the deployed system on one machine with no AWS account. It synthesizes
 * the stack, creates its tables in the embedded DynamoDB, and serves its HTTP API on
 * 127.0.0.1 by doing what API Gateway does: verify SigV4 against local principals, match the
 * route from the template, build the payload-2.0 event and call the function's own handler.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Clients, Deps } from '../lambdas/http/deps';
import type { BackfillOutcome, BakeTask } from '../lambdas/services/bakes';
import type { HttpFunctionHandler } from '../lambdas/functions';
import type { CallObserver } from '../lambdas/adapters/store';
import type { HttpEvent } from '../lambdas/http/api';
import { startEmbeddedDynamo, type EmbeddedDynamo } from './dynamo';
import { checkStorageLatencyMs, storageLatencyFromEnv } from './latency';
import { GATEWAY_ANSWERS, invokeFunction, matchRoute, MAX_BODY_BYTES, toEvent, type GatewayAnswer } from './gateway';
import { readSystem, synthTemplate, type LocalRoute, type LocalSystem, type Template } from './template';
import { loadOrCreateCredentials, PrincipalStore, type Principal } from './credentials';
import { splitRequestTarget, verifySigV4 } from './sigv4';
import { isAdminRoute } from '../lib/access';
import { LocalCloudWatch, alarmsFromTemplate } from './cloudwatch/alarms';
import { answerInProcess, LocalAppConfig } from './appconfig';
import { addFaults, faultsFromEnv, FaultInjector, withFaults, type FaultSpec } from './faults';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import {
  resolveIntrinsics,
  runExecution,
  stateMachinesFromTemplate,
  type ExecutionEvent,
  type SdkHandler,
  type TemplateStateMachine,
} from './stepfunctions';
import { ALARM_PERIOD_SECONDS } from '../lambdas/metrics';
import { LocalEventBridge } from './eventbridge';
import { CONSOLE_PATH, isConsoleRequest, LocalConsole } from './console';
import { join } from 'node:path';

const ACCOUNT = '000000000000';
export const PROJECT_ROOT = resolve(__dirname, '..');

export interface LocalRuntimeOptions {
  port?: number;
  host?: string;
  /** Keep the embedded store's data in this directory (default: in memory). */
  dataDir?: string;
  /** The principals' file (default: LOGRELAY_CREDENTIALS_FILE, else .logrelay/credentials.json), created when missing. */
  credentialsPath?: string;
  /** One line per request; default: console.log. */
  log?: (line: string) => void;
  /** The template to serve (default: synthesize the stack now). */
  template?: Template;
  /** Clock for the handlers (tests move it). */
  clock?: Deps['clock'];
  /** Divides the bake machinery's durations (default: LOGRELAY_TIME_SCALE, else 1). */
  timeScale?: number;
  /** Sees every storage call with its consumed capacity (benchmarks). */
  observeStorage?: CallObserver;
  /**
   * Milliseconds added to every DynamoDB call of the handlers, the Step Functions stand-in and
   * anyone using `dynamo.client`, each SDK attempt paying it (local/latency.ts); 0..10000
   * (default: LOGRELAY_STORAGE_LATENCY_MS, else 0).
   */
  storageLatencyMs?: number;
  /**
   * Injected faults (local/faults.ts) on every DynamoDB call of the handlers and the Step
   * Functions stand-in, and on the CloudWatch and AppConfig calls of the handlers and the bake
   * (default: LOGRELAY_FAULTS, else none; null: none whatever the environment).
   */
  faults?: FaultSpec | null;
}

export interface LocalRuntime {
  url: string;
  port: number;
  system: LocalSystem;
  principals: Principal[];
  credentialsCreated: boolean;
  credentialsPath: string;
  dynamo: EmbeddedDynamo;
  /** Metrics the handlers emit (as EMF, like in Lambda) and the stack's alarms. */
  cloudwatch: LocalCloudWatch;
  /** The stack's AppConfig applications, profiles (with their JSON Schemas) and hosted versions. */
  appConfig: LocalAppConfig;
  /** The stack's state machines, their definitions resolved for this runtime. */
  stateMachines: TemplateStateMachine[];
  /**
   * Runs one of the stack's state machines (by logical id or name) on the local stand-ins:
   * Lambda tasks call the local functions, `aws-sdk:cloudwatch` the local CloudWatch,
   * `aws-sdk:appconfig` the local AppConfig, DynamoDB integrations the embedded store; Wait
   * states and retry intervals are divided by the time scale.
   */
  startExecution(
    machine: string,
    input: unknown,
    opts?: { onEvent?: (e: ExecutionEvent) => void; signal?: AbortSignal; name?: string },
  ): Promise<unknown>;
  /**
   * The default event bus of the stack's state machines (EventBridge PutEvents, optimized or
   * aws-sdk): every event they publish, in order (`list()`), and `onEvent` for each as it comes.
   */
  events: LocalEventBridge;
  /** Executions started by the admin routes (POST /bakes), by bake id: each settles when its execution ends. */
  bakeExecutions: ReadonlyMap<string, Promise<unknown>>;
  timeScale: number;
  /** Milliseconds added to every DynamoDB call (0: none). */
  storageLatencyMs: number;
  /** The fault injector when faults are on: its spec (with the seed) and what it injected so far. */
  faults: FaultInjector | undefined;
  /** The local console's page (local/console.ts), on this port, answered to loopback callers only. */
  consoleUrl: string;
  close(): Promise<void>;
}

export async function startLocalRuntime(opts: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
  // The handlers' Powertools read these when first imported: log less, trace nothing, and
  // write metrics (EMF) through the global console, where the local CloudWatch picks them up.
  process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
  process.env.POWERTOOLS_TRACE_ENABLED ??= 'false';
  // With tracing off nothing reads the X-Ray SDK's context, yet in its default (automatic) mode
  // the SDK installs an async hook on import that runs for every promise of the process.
  if (process.env.POWERTOOLS_TRACE_ENABLED === 'false') process.env.AWS_XRAY_MANUAL_MODE ??= 'true';
  process.env.POWERTOOLS_DEV = 'true';
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  process.env.AWS_REGION ??= 'us-east-1';
  const timeScale = opts.timeScale ?? Number(process.env.LOGRELAY_TIME_SCALE ?? 1);
  if (!(timeScale > 0)) throw new Error(`LOGRELAY_TIME_SCALE must be a positive number; it is '${process.env.LOGRELAY_TIME_SCALE}'.`);
  const storageLatencyMs =
    opts.storageLatencyMs === undefined ? storageLatencyFromEnv() : checkStorageLatencyMs(opts.storageLatencyMs, 'storageLatencyMs');
  const faultSpec = opts.faults === undefined ? faultsFromEnv() : (opts.faults ?? undefined);
  const faults = faultSpec ? new FaultInjector(faultSpec) : undefined;

  const template = opts.template ?? synthTemplate();
  const appConfig = LocalAppConfig.fromTemplate(template, opts.dataDir ? { persistPath: join(opts.dataDir, 'appconfig.json') } : {});
  const system = readSystem(template, undefined, (v, where) =>
    String(
      resolveIntrinsics(template, v, where, {
        ref: (id) => appConfig.resolveRef(id),
        getAtt: (id, attr) => appConfig.resolveGetAtt(id, attr),
      }),
    ),
  );
  const cloudwatch = new LocalCloudWatch({ timeScale });
  cloudwatch.loadAlarms(alarmsFromTemplate(template));
  const restoreConsole = routeEmfTo(cloudwatch);
  const dynamo = await startEmbeddedDynamo({
    tables: system.tables,
    storageLatencyMs,
    ...(faults ? { faults } : {}),
    ...(opts.dataDir ? { path: opts.dataDir } : {}),
  });
  // The same file the CLI and localCredentials() read when no path is given.
  const credentialsPath = resolve(opts.credentialsPath ?? process.env.LOGRELAY_CREDENTIALS_FILE ?? '.logrelay/credentials.json');
  const { principals: initialPrincipals, created } = loadOrCreateCredentials(credentialsPath);
  const tableNameOf = new Map(system.tables.map((t) => [t.logicalId, t.name]));
  const stateMachines = stateMachinesFromTemplate(template, {
    tableName: (id) => tableNameOf.get(id) ?? id,
    ref: (id) => appConfig.resolveRef(id),
    getAtt: (id, attr) => appConfig.resolveGetAtt(id, attr),
  });
  const log = opts.log ?? ((line: string) => console.log(line));
  // The file is re-read when it changes: a principal added while the runtime runs can call at once.
  const principals = new PrincipalStore(credentialsPath, initialPrincipals, { log });

  const { DynamoStore } = await import('../lambdas/adapters/store');
  const { DynamoControlStore } = await import('../lambdas/adapters/control');
  const { tableNamesFromEnv, bakeListDeps } = await import('../lambdas/http/deps');
  const { FUNCTION_NAMES } = await import('../lambdas/function-env');
  const { entryOf, startFunction } = await import('../lambdas/functions');
  const { systemClock } = await import('../lambdas/services/logs');
  const clock = opts.clock ?? systemClock;

  // The bake machinery's clients: real AWS SDK clients (three attempts, as deployed) whose
  // calls the local AppConfig and CloudWatch answer inside the SDK's retry loop, with any
  // injected faults around the answer; and StartExecution running the stack's state machine
  // here, in the background.
  const appConfigClient = appConfig.toClient(faults ? { faults } : {});
  const cloudwatchClient = new CloudWatchClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
  });
  answerInProcess(cloudwatchClient, 'localCloudWatch', async (operation, input) => {
    if (operation !== 'GetMetricData') throw new Error(`The local CloudWatch client answers GetMetricData only, not ${operation}.`);
    return cloudwatch.getMetricData(input as never);
  });
  if (faults) addFaults(cloudwatchClient, faults, 'cloudwatch', 'localCloudWatch');
  const executions = new Map<string, Promise<unknown>>();
  const events = new LocalEventBridge();
  const stopBakes = new AbortController();
  let startExecution: LocalRuntime['startExecution'] = () => Promise.reject(new Error('the local runtime is still starting'));
  const runner = {
    async start(bakeId: string) {
      if (executions.has(bakeId)) return;
      const sm = stateMachines.find((m) => m.logicalId.includes('BakeStateMachine'));
      if (!sm) throw new Error('The stack has no bake state machine.');
      const run = startExecution(sm.logicalId, { bakeId }, { name: bakeId, signal: stopBakes.signal }).catch((e: unknown) => {
        log(`bake ${bakeId}: execution ended ${(e as Error).message}`);
        return undefined;
      });
      executions.set(bakeId, run);
    },
  };

  // One handler instance per function: its module (the template's entry), its environment
  // checked as Lambda checks it at cold start (a variable the template lacks stops the start,
  // naming it), its deps from the builder Lambda uses, over the local stand-ins.
  const clients: Clients = {
    dynamo: dynamo.client,
    clock,
    timeScale,
    observeStorage: opts.observeStorage,
    appConfig: appConfigClient,
    cloudwatch: cloudwatchClient,
    // The admin routes start bakes on the stack's state machine, run here.
    bakeRunner: () => runner,
  };
  const handlers = new Map<string, HttpFunctionHandler>();
  /** Each function as Step Functions' Lambda tasks invoke it: any JSON in. */
  const lambdas: Record<string, (event: unknown) => Promise<unknown>> = {};
  let upgrade: (() => Promise<BackfillOutcome>) | undefined;
  for (const fn of Object.values(system.functions)) {
    const name = FUNCTION_NAMES.find((n) => entryOf(n) === fn.entry);
    if (!name)
      throw new Error(
        `${fn.entry} is not one of the service's functions (lambdas/functions.ts: ${FUNCTION_NAMES.map(entryOf).join(', ')})`,
      );
    if (name === 'bake') {
      const h = startFunction(name, fn.environment, clients);
      lambdas[fn.logicalId] = (event) => h(event as BakeTask);
    } else if (name === 'upgrade') {
      upgrade = startFunction(name, fn.environment, clients);
      lambdas[fn.logicalId] = upgrade;
    } else {
      const h = startFunction(name, fn.environment, clients);
      handlers.set(fn.logicalId, h);
      lambdas[fn.logicalId] = (event) =>
        h(event as HttpEvent, {
          awsRequestId: `local-sfn-${Date.now().toString(36)}`,
          getRemainingTimeInMillis: () => fn.timeoutSeconds * 1000,
        });
    }
  }

  // What the deploy-time trigger does in AWS, done at start: a --data-dir written by a version
  // from before the rollout item kept contents is filled in before any host serves from it (a
  // fresh or already filled store: one read, no write). A failure stops the start, as it fails
  // a deployment, with the version it could not find.
  if (upgrade) {
    const out = await upgrade();
    if (out.wrote) log(`upgraded the stored rollout state: copied ${out.filled.join(', ')} from AppConfig`);
  }

  // Step Functions' aws-sdk integrations take PascalCase parameters, as the local stand-ins do.
  // They make one call per task attempt (the state machine's Retry is their retry loop), so
  // injected faults wrap each call as a whole.
  const sdk: Record<string, SdkHandler> = {
    'cloudwatch:describeAlarms': async (p) => cloudwatch.describeAlarms(p),
    'cloudwatch:getMetricData': async (p) => cloudwatch.getMetricData(p),
    'cloudwatch:putMetricData': async (p) => cloudwatch.putMetricData(p),
    'appconfig:getHostedConfigurationVersion': async (p) => appConfig.getHostedConfigurationVersion(p),
    'appconfig:listHostedConfigurationVersions': async (p) => appConfig.listHostedConfigurationVersions(p),
    'appconfig:validateConfiguration': async (p) => appConfig.validateConfiguration(p),
  };
  if (faults)
    for (const key of Object.keys(sdk))
      sdk[key] = withFaults(faults, key.startsWith('cloudwatch:') ? 'cloudwatch' : 'appconfig', sdk[key]!);
  startExecution = (machine, input, run = {}) => {
    const sm = stateMachines.find((m) => m.logicalId === machine || m.name === machine);
    if (!sm)
      throw new Error(`No state machine '${machine}' in the stack (it has: ${stateMachines.map((m) => m.name).join(', ') || 'none'}).`);
    return runExecution(sm.definition, input, {
      lambdas,
      sdk,
      dynamodb: dynamo.client,
      eventBridge: events,
      timeScale,
      stateMachineName: sm.name,
      ...(run.name ? { name: run.name } : {}),
      ...(run.onEvent ? { onEvent: run.onEvent } : {}),
      ...(run.signal ? { signal: run.signal } : {}),
    });
  };

  // The local console: the template's dashboard and the bakes, logs and sessions, read through
  // the same services the handlers use (local/console.ts); not a route of the stack.
  const { LogService } = await import('../lambdas/services/logs');
  const { SessionService } = await import('../lambdas/services/sessions');
  // Each function's environment names only the tables it uses: together they name all four.
  const consoleTables = tableNamesFromEnv(Object.assign({}, ...Object.values(system.functions).map((f) => f.environment)));
  const consoleStore = new DynamoStore(dynamo.client, consoleTables);
  const localConsole = new LocalConsole({
    template,
    resolve: {
      tableName: (id) => tableNameOf.get(id) ?? id,
      ref: (id) => appConfig.resolveRef(id),
      getAtt: (id, attr) => appConfig.resolveGetAtt(id, attr),
    },
    cloudwatch,
    timeScale,
    bakeList: bakeListDeps(new DynamoControlStore(dynamo.client, consoleTables.control), clock).bakeList,
    logs: new LogService(consoleStore, clock),
    sessions: new SessionService(consoleStore, clock),
    dynamo: dynamo.client,
    tables: consoleTables,
    principals: () => principals.current(),
    ownerOf: (p) => `arn:aws:iam::${ACCOUNT}:user/${p.name}`,
  });

  // Alarms are evaluated as CloudWatch does, once per (scaled) alarm period.
  const stopEvaluating = cloudwatch.startEvaluating((ALARM_PERIOD_SECONDS * 1000) / timeScale);

  // Invocations under way by function: the reserved concurrency caps them, as in Lambda.
  const running = new Map<string, number>();
  const server = createServer((req, res) => {
    // The console's polls are not logged: they would bury the API's request lines.
    if (isConsoleRequest(req.url)) {
      localConsole.handle(req, res).catch((e: unknown) => {
        log(`local console error: ${(e as Error).stack ?? String(e)}`);
        send(res, 500, { error: { code: 'InternalError', message: "The local console failed to answer. See the runtime's console." } });
      });
      return;
    }
    const started = Date.now();
    // Every failure is answered in the catch; the last step only logs.
    void serve(req, res, system, principals, handlers, log, running)
      .catch((e: unknown) => {
        log(`local runtime error: ${(e as Error).stack ?? String(e)}`);
        send(res, 500, { error: { code: 'InternalError', message: 'The local runtime failed to handle this request. See its console.' } });
        return undefined;
      })
      .then((route) => log(`${req.method} ${route?.routeKey.split(' ')[1] ?? req.url} ${res.statusCode} ${Date.now() - started}ms`));
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 8787, opts.host ?? '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  let closed = false;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    system,
    get principals() {
      return principals.current();
    },
    credentialsCreated: created,
    credentialsPath,
    dynamo,
    cloudwatch,
    appConfig,
    stateMachines,
    startExecution,
    events,
    bakeExecutions: executions,
    timeScale,
    storageLatencyMs,
    faults,
    consoleUrl: `http://127.0.0.1:${port}${CONSOLE_PATH}`,
    close: async () => {
      if (closed) return;
      closed = true;
      stopEvaluating();
      stopBakes.abort();
      await Promise.allSettled(executions.values());
      await closeServer(server);
      await dynamo.close();
      restoreConsole();
    },
  };
}

/**
 * In Lambda, CloudWatch Logs turns the function's EMF log lines into metrics. Locally the
 * functions run in this process, so their EMF lines are taken off the console here.
 */
function routeEmfTo(cloudwatch: LocalCloudWatch): () => void {
  const original = console.log;
  console.log = (...args: unknown[]) => {
    const [first] = args;
    if (args.length === 1 && typeof first === 'string' && first.startsWith('{') && first.includes('"_aws"') && cloudwatch.ingestEmf(first))
      return;
    original.apply(console, args);
  };
  return () => {
    console.log = original;
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((ok) => {
    server.close(() => ok());
    server.closeAllConnections();
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function sendGateway(res: ServerResponse, answer: GatewayAnswer): void {
  if (res.headersSent) return;
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  system: LocalSystem,
  principals: PrincipalStore,
  handlers: Map<string, HttpFunctionHandler>,
  log: (line: string) => void,
  running: Map<string, number>,
): Promise<LocalRoute | undefined> {
  // The raw target as sent: signatures cover the path exactly as the client encoded it.
  const { path, query } = splitRequestTarget(req.url ?? '/');
  const method = req.method ?? 'GET';
  const body = await readBody(req);
  if (!body) {
    sendGateway(res, GATEWAY_ANSWERS.bodyTooLarge);
    return undefined;
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;

  const matched = matchRoute(system.routes, method, path);
  // IAM authorization happens before routing in API Gateway only for routes that exist.
  if (!matched) {
    send(res, 404, { error: { code: 'RouteNotFound', message: `There is no route ${method} ${path}. See shared/API.md for the routes.` } });
    return undefined;
  }
  const route = matched.route;
  let caller: Principal | undefined;
  if (route.authorizationType === 'AWS_IAM') {
    const verify = () =>
      verifySigV4({ method, path, query, headers, body }, principals.current(), {
        nowMs: Date.now(),
        service: 'execute-api',
        maxSkewMs: 15 * 60 * 1000,
      });
    let auth = await verify();
    // An unknown key may be a principal just added to the file: look at it now, not in a second.
    if (!auth.ok && auth.code === 'UnknownAccessKey' && principals.refresh()) auth = await verify();
    if (!auth.ok) {
      const message = auth.code === 'UnknownAccessKey' ? `${auth.message} ${principals.unknownKeyNote()}` : auth.message;
      send(res, 403, { error: { code: 'Forbidden', message } });
      return route;
    }
    caller = auth.principal;
    // In AWS the operator policy decides; locally, the principal's admin flag does.
    if (isAdminRoute(route) && !caller.admin) {
      send(res, 403, {
        error: {
          code: 'Forbidden',
          message: `${route.routeKey} is an admin route and principal '${caller.name}' is not an admin. Use an admin principal from the credentials file.`,
        },
      });
      return route;
    }
  }
  const event = toEvent({
    method,
    rawPath: path,
    rawQueryString: query,
    headers,
    body: body.length ? body.toString('utf8') : undefined,
    route,
    pathParameters: matched.pathParameters,
    caller: {
      userArn: caller ? `arn:aws:iam::${ACCOUNT}:user/${caller.name}` : '',
      accessKey: caller?.accessKeyId ?? '',
      accountId: ACCOUNT,
    },
    sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
  });
  const invoked = await invokeFunction(handlers.get(route.function.logicalId)!, event, route.function, Date.now, running);
  if ('gateway' in invoked) {
    log(`${route.routeKey}: ${invoked.why}; API Gateway answers ${invoked.gateway.status}`);
    sendGateway(res, invoked.gateway);
    return route;
  }
  const result = invoked.result;
  const status = result.statusCode ?? 200;
  const outHeaders: Record<string, string> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) outHeaders[k] = String(v);
  res.writeHead(status, outHeaders);
  res.end(result.body === undefined ? undefined : result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body);
  return route;
}
