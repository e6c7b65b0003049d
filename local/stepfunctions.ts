/**
 * Local Step Functions: the state machine definition the stack synthesizes, read out of the
 * template and run by the aws-local-stepfunctions interpreter (an implementation of the Amazon
 * States Language), with every Task bound to a local stand-in:
 *
 * - `arn:aws:states:::lambda:invoke` and bare Lambda ARNs -> `lambdas[logicalId]`, with the
 *   integration's result shape (`{ Payload, StatusCode, ... }`) and error shape (Error = the
 *   function's errorType, Cause = the JSON error document) as Step Functions reports them;
 *   `lambdaInvokeFault` makes Lambda refuse an invocation before the function runs (a throttle,
 *   a service error), reported as `Lambda.<Exception>` as Step Functions reports it;
 * - `arn:aws:states:::aws-sdk:<service>:<action>` -> `sdk['<service>:<action>']` (PascalCase
 *   parameters in, PascalCase output back, errors named `<Service>.<Name>Exception`), or, for
 *   `dynamodb`, the injected DynamoDB client;
 * - `arn:aws:states:::dynamodb:putItem|getItem|updateItem|deleteItem` -> the injected client;
 * - `arn:aws:states:::events:putEvents` (the optimized EventBridge integration) and
 *   `arn:aws:states:::aws-sdk:eventbridge:putEvents` -> `eventBridge` (local/eventbridge.ts). The
 *   optimized one does what Step Functions does on top of PutEvents: a Detail given as a JSON
 *   object is sent as its JSON text, the execution's and state machine's ARNs are appended to each
 *   entry's Resources, and a non-zero FailedEntryCount fails the Task with
 *   `EventBridge.FailedEntry`. The SDK one passes the call through as it is (Detail must be text,
 *   failed entries are only counted in the output), as in AWS.
 *
 * `timeScale` divides every duration of the machine: Wait states (Seconds, SecondsPath,
 * Timestamp, TimestampPath) and Retry intervals. Task timeouts and the execution timeout are
 * real time, because the handlers behind the tasks run in real time.
 */
import { randomUUID } from 'node:crypto';
import * as dynamodbSdk from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { StateMachine as InterpreterStateMachine } from 'aws-local-stepfunctions';
import type { LocalEventBridge, PutEventsEntry } from './eventbridge';

// aws-local-stepfunctions 3 declares Node >= 22; on Node 20 the one thing it lacks is
// Promise.withResolvers (ES2024). Supply it before the package is loaded; no-op where it exists.
{
  const P = Promise as unknown as {
    withResolvers?: <T>() => { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void };
  };
  if (typeof P.withResolvers !== 'function') {
    Object.defineProperty(Promise, 'withResolvers', {
      configurable: true,
      writable: true,
      value: function withResolvers<T>() {
        let resolve!: (v: T | PromiseLike<T>) => void;
        let reject!: (e: unknown) => void;
        const promise = new Promise<T>((res, rej) => {
          resolve = res;
          reject = rej;
        });
        return { promise, resolve, reject };
      },
    });
  }
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const interpreter = require('aws-local-stepfunctions') as typeof import('aws-local-stepfunctions');
/** The interpreter's own type for a definition; ours (AslDefinition) is the same JSON. */
type InterpreterDefinition = ConstructorParameters<typeof InterpreterStateMachine>[0];

export const LOCAL_REGION = 'us-east-1';
export const LOCAL_ACCOUNT = '000000000000';

/** The local ARN of a template Lambda function: its logical id is its function name. */
export const lambdaArn = (logicalId: string): string => `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${logicalId}`;
export const stateMachineArn = (name: string): string => `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:${name}`;

// ---------------------------------------------------------------------------------------------
// Reading state machines out of a template
// ---------------------------------------------------------------------------------------------

export interface TemplateResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DependsOn?: string | string[];
  Metadata?: Record<string, unknown>;
}
export interface CfnTemplate {
  Resources: Record<string, TemplateResource>;
}

/** An ASL definition (JSON). */
export type AslDefinition = {
  StartAt: string;
  States: Record<string, AslState>;
  TimeoutSeconds?: number;
  Comment?: string;
  [k: string]: unknown;
};
// biome-ignore lint/suspicious/noExplicitAny: an ASL state is JSON whose fields depend on its Type; the interpreter validates the definition (checkPaths, checkArn) before it runs
export type AslState = { Type: string; [k: string]: any };

export interface TemplateStateMachine {
  logicalId: string;
  /** `StateMachineName` when the template sets one, else the logical id. */
  name: string;
  arn: string;
  definition: AslDefinition;
}

export interface ResolveOptions {
  /** Local name of a table, by logical id (what a table `Ref` resolves to). Default: the logical id. */
  tableName?: (logicalId: string) => string;
  /** Consulted first for every `Ref` to a resource or parameter; return undefined to fall through. */
  ref?: (logicalId: string, resource: TemplateResource | undefined) => string | undefined;
  /** Consulted first for every `Fn::GetAtt`; return undefined to fall through. */
  getAtt?: (logicalId: string, attribute: string, resource: TemplateResource | undefined) => string | undefined;
  /** `AWS::StackName`. Default 'Local'. */
  stackName?: string;
}

export class TemplateResolveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateResolveError';
  }
}

const PSEUDO: Record<string, string> = {
  'AWS::Region': LOCAL_REGION,
  'AWS::AccountId': LOCAL_ACCOUNT,
  'AWS::Partition': 'aws',
  'AWS::URLSuffix': 'amazonaws.com',
};

/**
 * Resolves the CloudFormation intrinsics a synthesized template uses in string positions
 * (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split) to local values. Throws a
 * TemplateResolveError naming the intrinsic and where it was found when it cannot.
 */
export function resolveIntrinsics(template: CfnTemplate, value: unknown, where: string, options: ResolveOptions = {}): unknown {
  const res = template.Resources;
  const tableName = options.tableName ?? ((id: string) => id);
  const fail = (what: string): never => {
    throw new TemplateResolveError(`${where}: cannot resolve ${what} locally`);
  };

  const ref = (id: string): string => {
    if (id in PSEUDO) return PSEUDO[id]!;
    if (id === 'AWS::StackName') return options.stackName ?? 'Local';
    const r = res[id];
    const custom = options.ref?.(id, r);
    if (custom !== undefined) return custom;
    if (!r) return fail(`{"Ref": "${id}"} (no such resource; template parameters need a ref() resolver)`);
    switch (r.Type) {
      case 'AWS::DynamoDB::Table':
        return tableName(id);
      case 'AWS::Lambda::Function':
        return id;
      case 'AWS::CloudWatch::Alarm':
        return typeof r.Properties?.AlarmName === 'string' ? r.Properties.AlarmName : id;
      case 'AWS::StepFunctions::StateMachine':
        return stateMachineArn(typeof r.Properties?.StateMachineName === 'string' ? r.Properties.StateMachineName : id);
      default:
        return fail(`{"Ref": "${id}"} (a ${r.Type})`);
    }
  };

  const getAtt = (id: string, attr: string): string => {
    const r = res[id];
    const custom = options.getAtt?.(id, attr, r);
    if (custom !== undefined) return custom;
    if (!r) return fail(`{"Fn::GetAtt": ["${id}", "${attr}"]} (no such resource)`);
    if (r.Type === 'AWS::Lambda::Function' && attr === 'Arn') return lambdaArn(id);
    if (r.Type === 'AWS::DynamoDB::Table' && attr === 'Arn')
      return `arn:aws:dynamodb:${LOCAL_REGION}:${LOCAL_ACCOUNT}:table/${tableName(id)}`;
    if (r.Type === 'AWS::CloudWatch::Alarm' && attr === 'Arn')
      return `arn:aws:cloudwatch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:alarm:${ref(id)}`;
    if (r.Type === 'AWS::StepFunctions::StateMachine' && attr === 'Arn') return ref(id);
    return fail(`{"Fn::GetAtt": ["${id}", "${attr}"]} (a ${r.Type})`);
  };

  const sub = (text: string, vars: Record<string, unknown>): string =>
    text.replace(/\$\{([^}!][^}]*)\}/g, (_m, name: string) => {
      if (name in vars) return asString(walk(vars[name]), `Fn::Sub variable ${name}`);
      const dot = name.indexOf('.');
      if (dot > 0 && !name.startsWith('AWS::')) return getAtt(name.slice(0, dot), name.slice(dot + 1));
      return ref(name);
    });

  const asString = (v: unknown, what: string): string => {
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return fail(`${what}, which is not a string`);
  };

  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (!v || typeof v !== 'object') return v;
    const keys = Object.keys(v);
    const o = v as Record<string, unknown>;
    if (keys.length === 1) {
      const k = keys[0]!;
      if (k === 'Ref') return ref(String(o.Ref));
      if (k === 'Fn::GetAtt') {
        const a = o[k];
        const [id, attr] = Array.isArray(a) ? [String(a[0]), String(walk(a[1]))] : String(a).split(/\.(.*)/s);
        return getAtt(id!, attr!);
      }
      if (k === 'Fn::Join') {
        const [sep, parts] = o[k] as [string, unknown[]];
        const resolved = walk(parts);
        if (!Array.isArray(resolved)) return fail('an Fn::Join whose list is not a list');
        return resolved.map((p, i) => asString(p, `Fn::Join part ${i}`)).join(sep);
      }
      if (k === 'Fn::Sub') {
        const a = o[k];
        return Array.isArray(a) ? sub(String(a[0]), (a[1] ?? {}) as Record<string, unknown>) : sub(String(a), {});
      }
      if (k === 'Fn::Select') {
        const [index, list] = o[k] as [unknown, unknown];
        const l = walk(list);
        const i = Number(walk(index));
        if (!Array.isArray(l) || !(i in l)) return fail(`an Fn::Select of index ${i}`);
        return l[i];
      }
      if (k === 'Fn::Split') {
        const [sep, text] = o[k] as [string, unknown];
        return asString(walk(text), 'Fn::Split source').split(sep);
      }
      if (k.startsWith('Fn::') || k === 'Condition') return fail(`the intrinsic ${k} (${JSON.stringify(v).slice(0, 200)})`);
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) out[key] = walk(o[key]);
    return out;
  };

  return walk(value);
}

/**
 * Every AWS::StepFunctions::StateMachine of a synthesized template, with its DefinitionString
 * (usually an Fn::Join of JSON text and intrinsics) resolved to the ASL JSON: Lambda ARNs become
 * `arn:aws:lambda:us-east-1:000000000000:function:<LogicalId>`, table Refs become
 * `options.tableName(logicalId)`. Throws a TemplateResolveError on an intrinsic it cannot resolve.
 */
export function stateMachinesFromTemplate(template: CfnTemplate, options: ResolveOptions = {}): TemplateStateMachine[] {
  const out: TemplateStateMachine[] = [];
  for (const [logicalId, r] of Object.entries(template.Resources ?? {})) {
    if (r.Type !== 'AWS::StepFunctions::StateMachine') continue;
    const p = r.Properties ?? {};
    const where = `State machine ${logicalId}`;
    let definition: unknown;
    if (p.DefinitionString !== undefined) {
      let text = resolveIntrinsics(template, p.DefinitionString, `${where} DefinitionString`, options);
      if (typeof text !== 'string') throw new TemplateResolveError(`${where}: DefinitionString does not resolve to a string`);
      if (p.DefinitionSubstitutions) {
        const subs = resolveIntrinsics(template, p.DefinitionSubstitutions, `${where} DefinitionSubstitutions`, options) as Record<
          string,
          unknown
        >;
        text = (text as string).replace(/\$\{([^}]+)\}/g, (m, k: string) => (k in subs ? String(subs[k]) : m));
      }
      try {
        definition = JSON.parse(text as string);
      } catch (e) {
        throw new TemplateResolveError(`${where}: the resolved DefinitionString is not JSON (${(e as Error).message})`);
      }
    } else if (p.Definition !== undefined) {
      definition = resolveIntrinsics(template, p.Definition, `${where} Definition`, options);
    } else {
      throw new TemplateResolveError(
        `${where}: has neither DefinitionString nor Definition (DefinitionS3Location is not supported locally)`,
      );
    }
    const name = typeof p.StateMachineName === 'string' ? p.StateMachineName : logicalId;
    out.push({ logicalId, name, arn: stateMachineArn(name), definition: definition as AslDefinition });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Running an execution
// ---------------------------------------------------------------------------------------------

export type LambdaHandler = (event: unknown) => Promise<unknown>;
// biome-ignore lint/suspicious/noExplicitAny: a task's Parameters as the state machine resolved them (JSON); each handler declares the SDK input it expects, as the real service would take it
export type SdkHandler = (params: any) => Promise<unknown>;

export interface ExecutionEvent {
  type:
    | 'ExecutionStarted'
    | 'ExecutionSucceeded'
    | 'ExecutionFailed'
    | 'ExecutionAborted'
    | 'ExecutionTimeout'
    | 'StateEntered'
    | 'StateExited'
    | 'StateFailed'
    | 'StateRetried'
    | 'StateCaught'
    | 'MapIterationStarted'
    | 'MapIterationSucceeded'
    | 'MapIterationFailed'
    | 'ParallelBranchStarted'
    | 'ParallelBranchSucceeded'
    | 'ParallelBranchFailed';
  timestamp: number;
  /** For state events: the state's name and its type in the definition (Task, Wait, Choice, ...). */
  state?: { name: string; type: string; input: unknown; output?: unknown };
  /** ExecutionStarted: the input; ExecutionSucceeded: the output. */
  input?: unknown;
  output?: unknown;
  /** StateFailed / ExecutionFailed / *Failed: as Step Functions reports them. */
  error?: string;
  cause?: string;
  /** StateRetried: the attempt number (1 for the first retry). */
  retryAttempt?: number;
  /** StateCaught: the Next of the catcher that matched. */
  caughtNext?: string;
  /** Events from inside a Map iteration or a Parallel branch. */
  index?: number;
  parentState?: { name: string; type: string };
}

/**
 * Lambda's refusals of a synchronous Invoke, before the function runs: 429
 * TooManyRequestsException (the function's reserved concurrency, or the account's unreserved
 * concurrency, is used up) and 500 ServiceException.
 */
export type LambdaInvokeFault = 'TooManyRequestsException' | 'ServiceException';

export interface RunExecutionOptions {
  /** Lambda functions by template logical id. */
  lambdas?: Record<string, LambdaHandler>;
  /**
   * Consulted before every synchronous invocation of a template function: a fault makes Lambda
   * refuse it (the function does not run), and the Task fails with `Lambda.<fault>` and Lambda's
   * message as its Cause, so the definition's Retry and Catch see what they would in AWS.
   */
  lambdaInvokeFault?: (logicalId: string, event: unknown) => LambdaInvokeFault | undefined;
  /** AWS SDK integrations by `'<service>:<action>'` as the resource names them, e.g. `cloudwatch:describeAlarms`. */
  sdk?: Record<string, SdkHandler>;
  /**
   * The DynamoDB client behind the optimized `arn:aws:states:::dynamodb:*` integrations and, when
   * `sdk` has no handler for it, the `aws-sdk:dynamodb:*` ones (the real client, pointed at the
   * embedded store).
   */
  dynamodb?: Pick<DynamoDBClient, 'send'>;
  /**
   * The event bus behind `arn:aws:states:::events:putEvents` and, when `sdk` has no handler for
   * it, `aws-sdk:eventbridge:putEvents` (local/eventbridge.ts). Without it such a Task cannot run.
   */
  eventBridge?: Pick<LocalEventBridge, 'putEvents'>;
  /** Divides Wait durations and Retry intervals. Default 1. */
  timeScale?: number;
  signal?: AbortSignal;
  /** Every event of the execution, in order (states entered, exited, failed, retried, caught, ...). */
  onEvent?: (event: ExecutionEvent) => void;
  /** Execution name (default: a UUID) and state machine name, for the context object ($$.Execution...). */
  name?: string;
  stateMachineName?: string;
  /** Validate the definition against the ASL rules before running (default true). */
  validate?: boolean;
}

/** An execution that did not succeed: `status` as DescribeExecution reports it, with its Error and Cause. */
export class ExecutionFailedError extends Error {
  readonly status: 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  readonly Error: string | undefined;
  readonly Cause: string | undefined;
  constructor(status: 'FAILED' | 'TIMED_OUT' | 'ABORTED', error: string | undefined, cause: string | undefined) {
    super(
      status === 'ABORTED'
        ? 'Execution aborted'
        : `Execution ${status === 'TIMED_OUT' ? 'timed out' : 'failed'}: ${error ?? '(no error)'}${cause !== undefined ? `: ${cause}` : ''}`,
    );
    this.name = 'ExecutionFailedError';
    this.status = status;
    this.Error = error;
    this.Cause = cause;
  }
}

/** An error thrown inside a Task, named and described as Step Functions names and describes it. */
class TaskError extends Error {
  constructor(
    name: string,
    cause: string,
    readonly retryable = true,
    readonly catchable = true,
  ) {
    super(cause);
    this.name = name;
  }
  get isRetryable(): boolean {
    return this.retryable;
  }
  get isCatchable(): boolean {
    return this.catchable;
  }
}
const runtimeError = (cause: string) => new TaskError('States.Runtime', cause, false, false);

/** Largest delay a Node timer takes (longer ones fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_TIMER_SECONDS = Math.floor(MAX_TIMER_MS / 1000);
const LOCAL_WAIT_RESOURCE = 'arn:aws:states:::logrelay-local:wait';

/** PascalCase service names Step Functions puts in front of AWS SDK integration errors. */
const SDK_SERVICE_NAMES: Record<string, string> = {
  cloudwatch: 'CloudWatch',
  dynamodb: 'DynamoDb',
  appconfig: 'AppConfig',
  appconfigdata: 'AppConfigData',
  sfn: 'Sfn',
  lambda: 'Lambda',
  sns: 'Sns',
  sqs: 'Sqs',
  s3: 'S3',
  ssm: 'Ssm',
  eventbridge: 'EventBridge',
  cloudwatchlogs: 'CloudWatchLogs',
  secretsmanager: 'SecretsManager',
};

const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** JSON-shaped copy of an SDK result: Dates as ISO strings, bytes as base64, no $metadata. */
function jsonOf(v: unknown): unknown {
  if (v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(jsonOf);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== '$metadata' && x !== undefined) out[k] = jsonOf(x);
    return out;
  }
  return v;
}

const sdkHttpMetadata = (requestId: string, status = 200) => ({
  SdkHttpMetadata: { HttpHeaders: { 'Content-Type': 'application/x-amz-json-1.0', 'x-amzn-RequestId': requestId }, HttpStatusCode: status },
  SdkResponseMetadata: { RequestId: requestId },
});

/** Error name/Cause of a failed SDK call, as a Step Functions service integration reports it. */
function sdkTaskError(prefix: string, e: unknown): TaskError {
  if (e instanceof TaskError) return e;
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number; requestId?: string }; $fault?: string };
  const isService =
    !!err &&
    (err.$metadata !== undefined ||
      err.$fault !== undefined ||
      (typeof err.name === 'string' && err.name !== 'Error' && !/^(Type|Range|Reference|Syntax)Error$/.test(err.name)));
  if (!isService) return new TaskError('States.TaskFailed', String(err?.message ?? e));
  const name = err.name!.endsWith('Exception') ? err.name! : `${err.name}Exception`;
  const status = err.$metadata?.httpStatusCode ?? (err.$fault === 'server' ? 500 : 400);
  return new TaskError(
    `${prefix}.${name}`,
    `${err.message ?? name} (Service: ${prefix}, Status Code: ${status}, Request ID: ${err.$metadata?.requestId ?? randomUUID()})`,
  );
}

/** Error/Cause of a Lambda function that threw, as Lambda reports it (errorType, errorMessage, trace). */
function lambdaTaskError(e: unknown): TaskError {
  const err = e instanceof Error ? e : new Error(typeof e === 'string' ? e : JSON.stringify(e));
  const errorType = err.name || 'Error';
  const trace = (err.stack ?? '').split('\n');
  return new TaskError(errorType, JSON.stringify({ errorType, errorMessage: err.message, trace }));
}

/**
 * Lambda's refusal of an Invoke as Step Functions reports it: Error `Lambda.<Exception>`, Cause
 * Lambda's message with the AWS SDK's service, status and error code. Retryable and catchable.
 */
function lambdaInvokeError(fault: LambdaInvokeFault): TaskError {
  const [status, message] = fault === 'TooManyRequestsException' ? [429, 'Rate Exceeded.'] : [500, 'An internal error occurred.'];
  return new TaskError(
    `Lambda.${fault}`,
    `${message} (Service: AWSLambda; Status Code: ${status}; Error Code: ${fault}; Request ID: ${randomUUID()}; Proxy: null)`,
  );
}

/** The function a lambda:invoke FunctionName (name, partial or full ARN, with or without qualifier) names. */
function functionIdOf(functionName: string): string {
  const m = /(?:^|:)function:([^:]+)/.exec(functionName);
  if (m) return m[1]!;
  return functionName.split(':')[0]!;
}

/** Evaluates a Reference Path (`$.a.b[0]['c']`, or `$$.` for the context object). */
function referencePath(path: string, input: unknown, context: unknown): unknown {
  let cur: unknown;
  let rest: string;
  if (path.startsWith('$$')) {
    cur = context;
    rest = path.slice(2);
  } else if (path.startsWith('$')) {
    cur = input;
    rest = path.slice(1);
  } else throw runtimeError(`Invalid path '${path}'`);
  const re = /^(?:\.([^.[\]]+)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\])/;
  while (rest.length) {
    const m = re.exec(rest);
    if (!m) throw runtimeError(`Unsupported reference path '${path}'`);
    rest = rest.slice(m[0].length);
    const key = m[2] !== undefined ? Number(m[2]) : (m[1] ?? m[3] ?? m[4])!;
    if (cur === null || typeof cur !== 'object' || !(key in (cur as object))) {
      throw runtimeError(`The JSONPath '${path}' could not be found in the input '${JSON.stringify(input)}'`);
    }
    cur = (cur as Record<string | number, unknown>)[key];
  }
  return cur;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      Math.min(ms, MAX_TIMER_MS),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface Prepared {
  definition: AslDefinition;
  // biome-ignore lint/suspicious/noExplicitAny: the interpreter's task resources: JSON in and out; each handler declares the input shape it reads and checks it
  handlers: Record<string, (input: any) => Promise<any>>;
  waitTimeOverrides: Record<string, number>;
  types: Map<string, string>;
  failStates: Map<string, AslState>;
}

/**
 * Binds every Task of a definition to its local stand-in and applies the time scale. Fails, before
 * anything runs, on a Task whose resource has no stand-in.
 */
function prepare(source: AslDefinition, options: RunExecutionOptions, signal: AbortSignal, context: () => unknown): Prepared {
  const scale = options.timeScale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`timeScale must be a positive number (got ${scale})`);
  const definition = structuredClone(source);
  const handlers: Prepared['handlers'] = {};
  const waitTimeOverrides: Record<string, number> = {};
  const types = new Map<string, string>();
  const failStates = new Map<string, AslState>();
  const lambdas = options.lambdas ?? {};
  const sdk = options.sdk ?? {};
  const problems: string[] = [];
  const skip = (problem: string): void => {
    problems.push(problem);
  };

  const lambdaHandler = (fnId: string): LambdaHandler => {
    const fn = lambdas[fnId];
    if (!fn)
      throw new TaskError(
        'Lambda.ResourceNotFoundException',
        `Function not found: ${lambdaArn(fnId)} (Service: Lambda, Status Code: 404, Request ID: ${randomUUID()})`,
      );
    return fn;
  };
  /** Runs a synchronous invocation as Lambda would: refused first when `lambdaInvokeFault` says so. */
  const invoke = async (fnId: string, fn: LambdaHandler, event: unknown): Promise<unknown> => {
    const fault = options.lambdaInvokeFault?.(fnId, event);
    if (fault) throw lambdaInvokeError(fault);
    try {
      return await fn(event);
    } catch (e) {
      throw lambdaTaskError(e);
    }
  };

  const bindTask = (name: string, state: AslState) => {
    const resource = String(state.Resource);
    if (state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined)
      state.TimeoutSeconds = MAX_TIMER_SECONDS; // AWS: 99999999
    else if (typeof state.TimeoutSeconds === 'number') state.TimeoutSeconds = Math.min(state.TimeoutSeconds, MAX_TIMER_SECONDS);
    if (state.HeartbeatSeconds !== undefined || state.HeartbeatSecondsPath !== undefined) {
      delete state.HeartbeatSeconds;
      delete state.HeartbeatSecondsPath;
    }
    if (state.Credentials !== undefined) problems.push(`${name}: Task Credentials are not supported locally`);

    let m: RegExpExecArray | null;
    m = /^arn:[^:]+:states:::lambda:invoke(\.\w+)?$/.exec(resource);
    if (m) {
      if (m[1]) return skip(`${name}: ${resource} (the ${m[1]} pattern is not supported locally)`);
      const fnParam = state.Parameters?.FunctionName;
      if (typeof fnParam === 'string' && !lambdas[functionIdOf(fnParam)])
        return skip(`${name}: no local handler for Lambda ${functionIdOf(fnParam)}`);
      handlers[name] = async (input: { FunctionName?: string; Payload?: unknown; InvocationType?: string }) => {
        if (typeof input?.FunctionName !== 'string') throw runtimeError(`${name}: lambda:invoke without a FunctionName`);
        const fn = lambdaHandler(functionIdOf(input.FunctionName));
        const requestId = randomUUID();
        const event = input.Payload === undefined ? {} : structuredClone(input.Payload);
        if (input.InvocationType === 'Event') {
          void fn(event).catch(() => undefined);
          return { Payload: '', StatusCode: 202, ...sdkHttpMetadata(requestId, 202) };
        }
        const result = await invoke(functionIdOf(input.FunctionName), fn, event);
        return { ExecutedVersion: '$LATEST', Payload: jsonOf(result), StatusCode: 200, ...sdkHttpMetadata(requestId) };
      };
      return;
    }
    m = /^arn:[^:]+:lambda:[^:]*:[^:]*:function:([^:]+)(:[^:]+)?$/.exec(resource);
    if (m) {
      const fnId = m[1]!;
      if (!lambdas[fnId]) return skip(`${name}: no local handler for Lambda ${fnId}`);
      handlers[name] = async (input: unknown) => jsonOf(await invoke(fnId, lambdas[fnId]!, structuredClone(input)));
      return;
    }
    m = /^arn:[^:]+:states:::aws-sdk:([a-z0-9-]+):([A-Za-z0-9]+)(\.\w+)?$/.exec(resource);
    if (m) {
      const [, service, action, pattern] = m as unknown as [string, string, string, string | undefined];
      if (pattern) return skip(`${name}: ${resource} (the ${pattern} pattern is not supported locally)`);
      const prefix = SDK_SERVICE_NAMES[service] ?? pascal(service);
      const key = `${service}:${action}`;
      const fn = sdk[key];
      if (fn) {
        handlers[name] = async (params: unknown) => {
          try {
            return jsonOf(await fn(structuredClone(params ?? {})));
          } catch (e) {
            throw sdkTaskError(prefix, e);
          }
        };
        return;
      }
      if (service === 'eventbridge' && action === 'putEvents' && options.eventBridge) {
        const bus = options.eventBridge;
        handlers[name] = async (params: { Entries?: PutEventsEntry[] }) => {
          try {
            return jsonOf(bus.putEvents(structuredClone(params ?? {})));
          } catch (e) {
            throw sdkTaskError(prefix, e);
          }
        };
        return;
      }
      if (service === 'dynamodb' && options.dynamodb) {
        // biome-ignore lint/suspicious/noExplicitAny: a DynamoDB command class looked up by the action's name; its input is the task's JSON, checked by DynamoDB itself
        const Command = (dynamodbSdk as unknown as Record<string, new (input: unknown) => any>)[`${pascal(action)}Command`];
        if (!Command) return skip(`${name}: DynamoDB has no action ${action}`);
        const client = options.dynamodb;
        handlers[name] = async (params: unknown) => {
          try {
            return jsonOf(await client.send(new Command(params ?? {})));
          } catch (e) {
            throw sdkTaskError(prefix, e);
          }
        };
        return;
      }
      return skip(`${name}: no local handler for ${key} (give one in options.sdk)`);
    }
    m = /^arn:[^:]+:states:::dynamodb:(putItem|getItem|updateItem|deleteItem)$/.exec(resource);
    if (m) {
      const action = m[1]!;
      const client = options.dynamodb;
      const fn = sdk[`dynamodb:${action}`];
      if (!client && !fn) return skip(`${name}: ${resource} needs options.dynamodb`);
      // biome-ignore lint/suspicious/noExplicitAny: as above: a command class looked up by name, its input checked by DynamoDB
      const Command = (dynamodbSdk as unknown as Record<string, new (input: unknown) => any>)[`${pascal(action)}Command`]!;
      handlers[name] = async (params: unknown) => {
        try {
          const out = client ? await client.send(new Command(params ?? {})) : await fn!(structuredClone(params ?? {}));
          return { ...(jsonOf(out) as object), ...sdkHttpMetadata(randomUUID()) };
        } catch (e) {
          throw sdkTaskError('DynamoDB', e);
        }
      };
      return;
    }
    m = /^arn:[^:]+:states:::events:putEvents(\.\w+)?$/.exec(resource);
    if (m) {
      if (m[1]) return skip(`${name}: ${resource} (the ${m[1]} pattern is not supported locally)`);
      const bus = options.eventBridge;
      if (!bus) return skip(`${name}: ${resource} needs options.eventBridge`);
      handlers[name] = async (params: { Entries?: PutEventsEntry[] }) => {
        const ctx = context() as { Execution: { Id: string }; StateMachine: { Id: string } };
        const entries = Array.isArray(params?.Entries)
          ? params.Entries.map((e) => ({
              ...e,
              // Step Functions sends a Detail given as JSON as its text, and names the execution.
              ...(e && typeof e === 'object' && e.Detail !== null && typeof e.Detail === 'object'
                ? { Detail: JSON.stringify(e.Detail) }
                : {}),
              Resources: [...(Array.isArray(e?.Resources) ? e.Resources : []), ctx.Execution.Id, ctx.StateMachine.Id],
            }))
          : params?.Entries;
        let out: ReturnType<typeof bus.putEvents>;
        try {
          out = bus.putEvents({ Entries: entries as PutEventsEntry[] });
        } catch (e) {
          throw sdkTaskError('EventBridge', e);
        }
        if (out.FailedEntryCount > 0) throw new TaskError('EventBridge.FailedEntry', JSON.stringify(out));
        return jsonOf(out);
      };
      return;
    }
    return skip(`${name}: the resource ${resource} has no local stand-in`);
  };

  /** A Wait whose duration depends on its input or on the clock, run as a local task that sleeps the scaled time. */
  const bindDynamicWait = (name: string, state: AslState): AslState => {
    handlers[name] = async (input: unknown) => {
      let ms: number;
      if (state.SecondsPath !== undefined) {
        const s = referencePath(state.SecondsPath, input, context());
        if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) {
          throw runtimeError(`Wait ${name}: SecondsPath '${state.SecondsPath}' is ${JSON.stringify(s)}, not a non-negative integer`);
        }
        ms = (s * 1000) / scale;
      } else {
        const ts = state.Timestamp ?? referencePath(state.TimestampPath, input, context());
        const t = typeof ts === 'string' ? Date.parse(ts) : NaN;
        if (Number.isNaN(t)) throw runtimeError(`Wait ${name}: ${JSON.stringify(ts)} is not a timestamp`);
        ms = (t - Date.now()) / scale;
      }
      await sleep(ms, signal);
      return input;
    };
    const task: AslState = { Type: 'Task', Resource: LOCAL_WAIT_RESOURCE, TimeoutSeconds: MAX_TIMER_SECONDS };
    for (const k of ['Comment', 'InputPath', 'OutputPath', 'Next', 'End']) if (k in state) task[k] = state[k];
    return task;
  };

  const scaleRetry = (state: AslState) => {
    if (!Array.isArray(state.Retry) || scale === 1) return;
    state.Retry = state.Retry.map((r: { IntervalSeconds?: number; MaxDelaySeconds?: number }) => ({
      ...r,
      IntervalSeconds: (r.IntervalSeconds ?? 1) / scale,
      ...(r.MaxDelaySeconds !== undefined ? { MaxDelaySeconds: r.MaxDelaySeconds / scale } : {}),
    }));
  };

  const walk = (machine: { States: Record<string, AslState>; TimeoutSeconds?: number; QueryLanguage?: string }) => {
    if (machine.QueryLanguage === 'JSONata') problems.push('JSONata is not supported locally (the interpreter speaks JSONPath)');
    if (typeof machine.TimeoutSeconds === 'number') machine.TimeoutSeconds = Math.min(machine.TimeoutSeconds, MAX_TIMER_SECONDS);
    for (const [name, state] of Object.entries(machine.States)) {
      if (types.has(name)) problems.push(`state name ${name} is used twice`);
      types.set(name, state.Type);
      if (state.QueryLanguage === 'JSONata') problems.push(`${name}: JSONata is not supported locally`);
      if (state.Assign !== undefined) problems.push(`${name}: Assign (variables) is not supported locally`);
      switch (state.Type) {
        case 'Task':
          bindTask(name, state);
          scaleRetry(state);
          break;
        case 'Wait':
          if (scale === 1) break;
          if (typeof state.Seconds === 'number') waitTimeOverrides[name] = Math.min((state.Seconds * 1000) / scale, MAX_TIMER_MS);
          else machine.States[name] = bindDynamicWait(name, state);
          break;
        case 'Parallel':
          scaleRetry(state);
          for (const branch of state.Branches ?? []) walk(branch);
          break;
        case 'Map':
          scaleRetry(state);
          if (state.ItemReader || state.ResultWriter) problems.push(`${name}: distributed Map is not supported locally`);
          if (state.ItemProcessor) walk(state.ItemProcessor);
          if (state.Iterator) walk(state.Iterator);
          break;
        case 'Fail':
          failStates.set(name, state);
          break;
        default:
          break;
      }
    }
  };
  walk(definition);
  if (problems.length) throw new Error(`The state machine cannot run locally:\n  ${problems.join('\n  ')}`);
  return { definition, handlers, waitTimeOverrides, types, failStates };
}

// biome-ignore lint/suspicious/noExplicitAny: the interpreter's event union read field by field, each field copied only when the event has it
function toEvent(e: any, types: Map<string, string>): ExecutionEvent {
  const ev: ExecutionEvent = { type: e.type, timestamp: e.timestamp };
  if (e.state) {
    ev.state = { name: e.state.name, type: types.get(e.state.name) ?? e.state.type, input: e.state.input };
    if ('output' in e.state) ev.state.output = e.state.output;
  }
  if (e.type === 'ExecutionStarted') ev.input = e.input;
  if ('output' in e && !e.state) ev.output = e.output;
  if (e.Error !== undefined) ev.error = e.Error;
  if (e.Cause !== undefined) ev.cause = typeof e.Cause === 'string' ? e.Cause : JSON.stringify(e.Cause);
  if (e.retry) ev.retryAttempt = e.retry.attempt;
  if (e.catch) ev.caughtNext = e.catch.catcher?.Next;
  if (e.index !== undefined) ev.index = e.index;
  if (e.parentState) ev.parentState = { name: e.parentState.name, type: e.parentState.type };
  return ev;
}

/**
 * Runs one execution of an ASL definition locally. Resolves to the execution's output; rejects
 * with an ExecutionFailedError (status FAILED, TIMED_OUT or ABORTED, with Error and Cause as
 * Step Functions reports them) when it does not succeed. Configuration mistakes (a Task with no
 * stand-in, an invalid definition) reject before anything runs, with a plain Error.
 */
export async function runExecution(definition: AslDefinition, input: unknown, options: RunExecutionOptions = {}): Promise<unknown> {
  const signal = options.signal;
  if (signal?.aborted) throw new ExecutionFailedError('ABORTED', undefined, undefined);
  if (options.validate !== false) {
    // Validates the definition as written (the interpreter's ASL validator); the prepared copy
    // below carries local-only resources and fractional intervals, so it is not validated again.
    new interpreter.StateMachine(definition as InterpreterDefinition, { validationOptions: { checkArn: true, checkPaths: true } });
  }
  const internal = new AbortController();
  const onAbort = () => internal.abort();
  signal?.addEventListener('abort', onAbort, { once: true });

  const name = options.name ?? randomUUID();
  const smName = options.stateMachineName ?? 'Local';
  const executionInput = JSON.parse(JSON.stringify(input ?? {}));
  const startTime = new Date().toISOString();
  const context = {
    Execution: {
      Id: `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:execution:${smName}:${name}`,
      Name: name,
      RoleArn: `arn:aws:iam::${LOCAL_ACCOUNT}:role/local`,
      StartTime: startTime,
    },
    StateMachine: { Id: stateMachineArn(smName), Name: smName },
  };
  const contextForPaths = () => ({ ...context, Execution: { ...context.Execution, Input: executionInput } });

  try {
    const prepared = prepare(definition, options, internal.signal, contextForPaths);
    const machine: InterpreterStateMachine = new interpreter.StateMachine(prepared.definition as InterpreterDefinition, {
      validationOptions: { noValidate: true },
    });
    const execution = machine.run(executionInput, {
      overrides: { taskResourceLocalHandlers: prepared.handlers, waitTimeOverrides: prepared.waitTimeOverrides },
      context,
    });
    const onInternalAbort = () => execution.abort();
    internal.signal.addEventListener('abort', onInternalAbort, { once: true });
    if (internal.signal.aborted) execution.abort();

    let lastEntered: string | undefined;
    const drained = (async () => {
      for await (const e of execution.eventLogs) {
        const ev = toEvent(e, prepared.types);
        if (ev.type === 'StateEntered' && ev.index === undefined) lastEntered = ev.state!.name;
        try {
          options.onEvent?.(ev);
        } catch {
          // an observer's failure is not the execution's
        }
      }
    })();
    const settle = async () => {
      // The event log closes when the execution ends; do not hang on it if it ever does not.
      await Promise.race([drained, new Promise((r) => setTimeout(r, 1000).unref())]);
    };

    try {
      const output = await execution.result;
      await settle();
      return output;
    } catch (e) {
      await settle();
      const err = e as Error & { cause?: unknown };
      if (err instanceof interpreter.ExecutionAbortedError) throw new ExecutionFailedError('ABORTED', undefined, undefined);
      if (err instanceof interpreter.ExecutionTimeoutError)
        throw new ExecutionFailedError('TIMED_OUT', 'States.Timeout', 'The execution timed out');
      if (err instanceof interpreter.ExecutionError) {
        const inner = err.cause as Error;
        let error: string | undefined = inner?.name;
        let cause: string | undefined = inner?.message;
        const fail = lastEntered !== undefined ? prepared.failStates.get(lastEntered) : undefined;
        if (fail) {
          // A Fail state without Error/Cause reports none (the interpreter fills in defaults).
          if (fail.Error === undefined && fail.ErrorPath === undefined) error = undefined;
          if (fail.Cause === undefined && fail.CausePath === undefined) cause = undefined;
        }
        throw new ExecutionFailedError('FAILED', error, cause);
      }
      throw e;
    } finally {
      internal.signal.removeEventListener('abort', onInternalAbort);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    internal.abort(); // ends any scaled wait still sleeping
  }
}
