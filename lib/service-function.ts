/**
 * One handler of lambdas/handlers/ as a Lambda function (ServiceFunction): its log group, then
 * its role (allowed to write to that log group only), then the function, bundled locally with
 * esbuild from the handler's entry, which the local runtime finds through the function's
 * `logrelay:entry` metadata (local/template.ts).
 *
 * Fixed defaults: runtime LAMBDA_RUNTIME (Node.js 24), arm64, X-Ray tracing ACTIVE, no AWS
 * managed policy on the role; environment POWERTOOLS_SERVICE_NAME=logrelay,
 * POWERTOOLS_METRICS_NAMESPACE=Logrelay, NODE_OPTIONS=--enable-source-maps; bundle minified CJS
 * for ESBUILD_TARGET with source maps (without sources), the AWS SDK v3 left to the runtime.
 */
import * as path from 'node:path';
import { type Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { FunctionName, TaskFunctionName } from '../lambdas/routes';

/**
 * The newest Node.js runtime aws-cdk-lib 2.276 knows (Runtime.NODEJS_24_X); cdk-nag's
 * AwsSolutions-L1 checks the same list, so bumping aws-cdk-lib may require bumping this.
 */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_24_X;
/** esbuild target matching LAMBDA_RUNTIME. */
export const ESBUILD_TARGET = 'node24';

export const PROJECT_ROOT = path.resolve(__dirname, '..');

/** What a function behind no route does (the others serve their routes). */
const TASK_DESCRIPTIONS: Partial<Record<FunctionName | TaskFunctionName, string>> = {
  bake: 'Logrelay: config bake state machine tasks',
  upgrade: "Logrelay: deploy-time upgrade of the rollout item (CloudFormation trigger, before the data routes' functions)",
};
export const handlerEntry = (fn: FunctionName | TaskFunctionName): string => path.join(PROJECT_ROOT, 'lambdas', 'handlers', `${fn}.ts`);

/** ServiceFunctionProps.memorySize's default, MB. */
export const DEFAULT_MEMORY_SIZE = 512;

export interface ServiceFunctionProps {
  /** The handler: lambdas/handlers/<fn>.ts. */
  fn: FunctionName | TaskFunctionName;
  /** The function's timeout. */
  timeout: Duration;
  /** Environment variables, besides the Powertools ones and NODE_OPTIONS this construct sets. */
  environment: Record<string, string>;
  /** Retention of the function's log group. */
  logRetention: logs.RetentionDays;
  /** Removal policy of the function's log group. */
  removalPolicy: RemovalPolicy;
  /**
   * Memory, MB (Lambda gives CPU in proportion).
   * @default 512
   */
  memorySize?: number;
  /**
   * Lambda reserved concurrency: this many concurrent executions are set aside for the function
   * (no other function of the account can take them) and it can never run more. 0 or undefined
   * leaves it unreserved: it shares the account's unreserved pool, uncapped. (Lambda's own 0
   * would stop the function; nobody means that here.)
   * @default undefined (unreserved)
   */
  reservedConcurrency?: number;
}

/**
 * One handler of lambdas/handlers/ as a Lambda function: its own role (no AWS managed policy;
 * it may write only to its own log group), its own log group with a retention, X-Ray tracing,
 * arm64, bundled locally with esbuild.
 */
export class ServiceFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Logrelay ${props.fn} function`,
    });
    // Replaces AWSLambdaBasicExecutionRole (which allows every log group): this log group only.
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, 'Function', {
      entry: handlerEntry(props.fn),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? DEFAULT_MEMORY_SIZE,
      timeout: props.timeout,
      ...(props.reservedConcurrency ? { reservedConcurrentExecutions: props.reservedConcurrency } : {}),
      tracing: lambda.Tracing.ACTIVE,
      role: this.role,
      logGroup: this.logGroup,
      description: TASK_DESCRIPTIONS[props.fn] ?? `Logrelay: ${props.fn} routes`,
      environment: {
        ...props.environment,
        POWERTOOLS_SERVICE_NAME: 'logrelay',
        POWERTOOLS_METRICS_NAMESPACE: 'Logrelay',
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        target: ESBUILD_TARGET,
        format: OutputFormat.CJS,
        // The Node.js 24 runtime ships AWS SDK v3; everything else (Powertools, zod) is bundled.
        externalModules: ['@aws-sdk/*'],
      },
    });

    // The local runtime (local/template.ts) finds the handler module of each function here, so
    // it serves the very code this function deploys.
    (this.function.node.defaultChild as lambda.CfnFunction).addMetadata(
      'logrelay:entry',
      path.relative(PROJECT_ROOT, handlerEntry(props.fn)).split(path.sep).join('/'),
    );

    // The role's DefaultPolicy (a child of the role) gets X-Ray's statement from tracing ACTIVE.
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Tracing ACTIVE adds xray:PutTraceSegments and xray:PutTelemetryRecords, and the bake function needs cloudwatch:GetMetricData: none of these supports resource-level permissions, so their resource must be "*". No other statement of this role has a "*" resource.',
    });
  }
}
