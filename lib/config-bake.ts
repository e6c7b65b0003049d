/**
 * The config-bake half of the stack, composed of four constructs with one job each:
 * - `Profiles`, ConfigProfiles (lib/config-profiles.ts): the AppConfig application, environment,
 *   one hosted profile per config profile with its JSON Schema validator, and version 1 of each;
 * - `Alarms`, ArmAlarms (lib/arm-alarms.ts): the six alarms on the arms' metrics;
 * - `Workflow`, BakeWorkflow (lib/bake-workflow.ts): the Standard state machine that runs a bake,
 *   reading those profiles and alarms, with its log group and its EventBridge events;
 * - `Dashboard`, BakeDashboard (lib/bake-dashboard.ts): the dashboard that follows a bake.
 *
 * Flow: profiles, then alarms, then the workflow (which needs the profiles' ARNs and the alarms),
 * then the dashboard (which shows the alarms). What the rest of the stack uses (`application`,
 * `profiles`, `alarms`, `stateMachine`, `dashboard`, the grants, `environmentVariables`) is
 * re-exposed here, so `LogrelayStack.bake` reads as before.
 *
 * Logical IDs: these resources were made by this one construct before the split, so their
 * logical IDs have no part's segment (`ConfigBakeApplication3F0BFED7`, not
 * `ConfigBakeProfilesApplication…`). Each part is hidden from logical IDs (lib/logical-ids.ts)
 * so that they stay the same and `cdk deploy` of a stack deployed before the split updates it
 * in place; a new ID would replace the resource (the AppConfig application and profiles with
 * every hosted version on them, the alarms, the state machine). test/stack-ids.test.ts pins them.
 * Construct paths (and the `aws:cdk:path` metadata `cdk synth` writes) do have the part's id.
 *
 * Fixed defaults: those of the four parts (see each file).
 */
import type { RemovalPolicy } from 'aws-cdk-lib';
import type * as appconfig from 'aws-cdk-lib/aws-appconfig';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ProfileName } from '../lambdas/domain/config';
import { ArmAlarms, type BakeAlarmThresholds } from './arm-alarms';
import { BakeDashboard } from './bake-dashboard';
import { BakeWorkflow } from './bake-workflow';
import { ConfigProfiles } from './config-profiles';
import { hideFromLogicalIds } from './logical-ids';

// Their home is the part that uses them; re-exported for the importers of before the split.
export { DEFAULT_BAKE_ALARMS, type BakeAlarmThresholds } from './arm-alarms';
export { CLEANUP_THROTTLE_ATTEMPTS, EVENT_RETRY, EVENT_TIMEOUT_SECONDS, THROTTLE_RETRY } from './bake-workflow';

export interface ConfigBakeProps {
  /** The state machine's task function (lambdas/handlers/bake.ts). */
  readonly bakeFunction: lambda.IFunction;
  /**
   * Thresholds of the bake's alarms, merged over the defaults.
   * @default DEFAULT_BAKE_ALARMS
   */
  readonly thresholds?: Partial<BakeAlarmThresholds>;
  /** Removal policy of the state machine's log group. */
  readonly removalPolicy: RemovalPolicy;
  /** Retention of the state machine's log group. */
  readonly logRetention: logs.RetentionDays;
}

export class ConfigBake extends Construct {
  readonly configProfiles: ConfigProfiles;
  readonly armAlarms: ArmAlarms;
  readonly workflow: BakeWorkflow;
  readonly bakeDashboard: BakeDashboard;

  readonly application: appconfig.CfnApplication;
  readonly environment: appconfig.CfnEnvironment;
  readonly profiles: Readonly<Record<ProfileName, appconfig.CfnConfigurationProfile>>;
  readonly alarms: cloudwatch.Alarm[];
  /** The absolute SLO alarms among `alarms` (all traffic): what the watch after promotion polls. */
  readonly sloAlarms: cloudwatch.Alarm[];
  readonly stateMachine: sfn.StateMachine;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ConfigBakeProps) {
    super(scope, id);
    // Each part hidden from logical IDs at once, before anything resolves a reference to its
    // resources: kept from before the split, so `cdk deploy` updates them in place (see above).
    this.configProfiles = new ConfigProfiles(this, 'Profiles');
    hideFromLogicalIds(this.configProfiles);
    this.armAlarms = new ArmAlarms(this, 'Alarms', props.thresholds ? { thresholds: props.thresholds } : {});
    hideFromLogicalIds(this.armAlarms);
    this.workflow = new BakeWorkflow(this, 'Workflow', {
      bakeFunction: props.bakeFunction,
      profileArns: this.configProfiles.profileArns(),
      alarms: this.armAlarms.alarms,
      sloAlarms: this.armAlarms.sloAlarms,
      removalPolicy: props.removalPolicy,
      logRetention: props.logRetention,
    });
    hideFromLogicalIds(this.workflow);
    this.bakeDashboard = new BakeDashboard(this, 'Dashboard', { alarms: this.armAlarms.alarms });
    hideFromLogicalIds(this.bakeDashboard);

    this.application = this.configProfiles.application;
    this.environment = this.configProfiles.environment;
    this.profiles = this.configProfiles.profiles;
    this.alarms = this.armAlarms.alarms;
    this.sloAlarms = this.armAlarms.sloAlarms;
    this.stateMachine = this.workflow.stateMachine;
    this.dashboard = this.bakeDashboard.dashboard;
  }

  /** Lets the admin routes list, read and create versions (ConfigProfiles). */
  grantManageVersions(grantee: iam.Role): void {
    this.configProfiles.grantManageVersions(grantee);
  }

  /** Lets a function read the versions of the profiles, and nothing else of AppConfig (ConfigProfiles). */
  grantReadVersions(grantee: iam.Role): void {
    this.configProfiles.grantReadVersions(grantee);
  }

  /** Environment variables naming the AppConfig application and profiles (ConfigProfiles). */
  get environmentVariables(): Record<string, string> {
    return this.configProfiles.environmentVariables;
  }
}
