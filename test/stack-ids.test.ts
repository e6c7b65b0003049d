/**
 * Logical IDs of the stack's stateful resources, and of those with a fixed physical name, pinned
 * to the values of the stacks already deployed. CloudFormation replaces a resource whose logical
 * ID changes: a new AppConfig application and profiles without the hosted versions of the old
 * ones, new (empty) tables, new log groups; and a replacement with a fixed name (the alarms, the
 * dashboard, the vended log groups) fails the deploy with "already exists". A logical ID derives
 * from the construct path, so moving a construct (a refactor such as ConfigBake's split into
 * parts) changes it unless the move keeps it (lib/logical-ids.ts). This test fails when one of
 * these resources would get another ID; if a replacement is really meant, change its line here
 * and say so in the change.
 *
 * Each resource is found by what it is (a profile by its name, a table by its stack output, a
 * log group by what writes to it), never by its ID, so a swap of two IDs fails too.
 *
 * Also: hideFromLogicalIds gives a part's resources exactly the IDs CDK gives them without the
 * part (its MD5-based algorithm is re-implemented there, so it is checked against CDK's own).
 */
import { App, CfnResource, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as appconfig from 'aws-cdk-lib/aws-appconfig';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { LogrelayStack } from '../lib/logrelay-stack';
import { hideFromLogicalIds, makeUniqueId } from '../lib/logical-ids';

// Synthesized CloudFormation is untyped JSON.
type Json = any;

/** What each pinned resource is (see `identify`) -> its logical ID in deployed stacks. */
const PINNED: Readonly<Record<string, string>> = {
  // AppConfig: the versions are hosted on the profiles; a new profile starts with none.
  'AWS::AppConfig::Application Logrelay': 'ConfigBakeApplication3F0BFED7',
  'AWS::AppConfig::Environment live': 'ConfigBakeEnvironmentFE049C46',
  'AWS::AppConfig::ConfigurationProfile delivery': 'ConfigBakeDeliveryProfile2340DF28',
  'AWS::AppConfig::ConfigurationProfile limits': 'ConfigBakeLimitsProfileEEF1D8F5',
  'AWS::AppConfig::HostedConfigurationVersion of delivery': 'ConfigBakeDeliveryInitialVersion82A83CC2',
  'AWS::AppConfig::HostedConfigurationVersion of limits': 'ConfigBakeLimitsInitialVersionA6BF6DFB',
  // The bake: running executions live on the state machine.
  'AWS::StepFunctions::StateMachine bake': 'ConfigBakeBakeStateMachine798EA8F9',
  'AWS::Logs::LogGroup of the bake state machine': 'ConfigBakeStateMachineLogsEB568D47',
  'AWS::CloudWatch::Alarm Logrelay-bake-experiment-5xx-rate': 'ConfigBakeExperiment5xxRateAlarmB5A4DCEA',
  'AWS::CloudWatch::Alarm Logrelay-bake-experiment-p99-latency': 'ConfigBakeExperimentP99LatencyAlarm682EC30D',
  'AWS::CloudWatch::Alarm Logrelay-bake-experiment-5xx-vs-control': 'ConfigBakeExperiment5xxVsControlAlarm9D9BD65C',
  'AWS::CloudWatch::Alarm Logrelay-bake-experiment-4xx-vs-control': 'ConfigBakeExperiment4xxVsControlAlarm80F117D5',
  'AWS::CloudWatch::Alarm Logrelay-bake-slo-5xx-rate': 'ConfigBakeSlo5xxRateAlarm2CC648B0',
  'AWS::CloudWatch::Alarm Logrelay-bake-slo-p99-latency': 'ConfigBakeSloP99LatencyAlarmEF450198',
  'AWS::CloudWatch::Dashboard Logrelay-bake': 'ConfigBakeDashboard35F06663',
  // The tables: every log, session and bake.
  'AWS::DynamoDB::Table Logs': 'Logs6819BB44',
  'AWS::DynamoDB::Table Records': 'Records091F6ECA',
  'AWS::DynamoDB::Table Sessions': 'Sessions8896A56D',
  'AWS::DynamoDB::Table Control': 'Control42E771B2',
  // The log groups.
  'AWS::Logs::LogGroup of the API access log': 'ApiAccessLogsE9DF007D',
  'AWS::Logs::LogGroup of function logs': 'LogsFunctionLogsD7A8ABD0',
  'AWS::Logs::LogGroup of function append': 'AppendFunctionLogsB5EF11F8',
  'AWS::Logs::LogGroup of function sessions': 'SessionsFunctionLogs18FA380F',
  'AWS::Logs::LogGroup of function receive': 'ReceiveFunctionLogs67EAF4C7',
  'AWS::Logs::LogGroup of function leases': 'LeasesFunctionLogs549D09A0',
  'AWS::Logs::LogGroup of function admin': 'AdminFunctionLogsF72D6C6B',
  'AWS::Logs::LogGroup of function bake': 'BakeFunctionLogs42D89FF4',
  'AWS::Logs::LogGroup of function upgrade': 'UpgradeFunctionLogsB50DF21E',
};

let resources: Record<string, { Type: string; Properties: Json; Metadata?: Record<string, unknown> }>;
let outputs: Record<string, { Value: Json }>;

beforeAll(() => {
  // No bundling: logical IDs do not depend on the functions' code (only the Lambda versions'
  // do, and none is pinned).
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const json = Template.fromStack(new LogrelayStack(app, 'Logrelay')).toJSON();
  resources = json.Resources;
  outputs = json.Outputs;
});

const refTo = (v: Json, id: string): boolean => v?.Ref === id || (Array.isArray(v?.['Fn::GetAtt']) && v['Fn::GetAtt'][0] === id);

/** What a resource is, from its properties and what refers to it; undefined when not pinned here. */
function identify(id: string): string | undefined {
  const { Type: type, Properties: p } = resources[id]!;
  const others = Object.entries(resources);
  switch (type) {
    case 'AWS::AppConfig::Application':
    case 'AWS::AppConfig::Environment':
    case 'AWS::AppConfig::ConfigurationProfile':
      return `${type} ${p.Name}`;
    case 'AWS::AppConfig::HostedConfigurationVersion':
      return `${type} of ${resources[p.ConfigurationProfileId.Ref]!.Properties.Name}`;
    case 'AWS::StepFunctions::StateMachine':
      return `${type} bake`;
    case 'AWS::CloudWatch::Alarm':
      return `${type} ${p.AlarmName}`;
    case 'AWS::CloudWatch::Dashboard':
      return `${type} ${p.DashboardName}`;
    case 'AWS::DynamoDB::Table': {
      const output = Object.entries(outputs).find(([, o]) => refTo(o.Value, id));
      return `${type} ${output?.[0].replace(/TableName$/, '')}`;
    }
    case 'AWS::Logs::LogGroup': {
      for (const [, r] of others) {
        if (r.Type === 'AWS::Lambda::Function' && refTo(r.Properties.LoggingConfig?.LogGroup, id)) {
          // The handler it runs (lib/service-function.ts: lambdas/handlers/<fn>.ts).
          return `${type} of function ${/\/(\w+)\.ts$/.exec(String(r.Metadata?.['logrelay:entry']))?.[1] ?? '?'}`;
        }
        if (
          r.Type === 'AWS::StepFunctions::StateMachine' &&
          r.Properties.LoggingConfiguration?.Destinations?.some((d: Json) => refTo(d.CloudWatchLogsLogGroup?.LogGroupArn, id))
        ) {
          return `${type} of the bake state machine`;
        }
        if (r.Type === 'AWS::ApiGatewayV2::Stage' && refTo(r.Properties.AccessLogSettings?.DestinationArn, id))
          return `${type} of the API access log`;
      }
      return `${type} written by nothing known`;
    }
    default:
      return undefined;
  }
}

describe('logical IDs of stateful resources', () => {
  it.each(Object.entries(PINNED))('%s keeps logical ID %s', (identity, logicalId) => {
    const found = Object.keys(resources).filter((id) => identify(id) === identity);
    expect(found, `${identity}: its logical ID changed, so CloudFormation would replace it`).toEqual([logicalId]);
  });

  it('tells apart every resource of the pinned types (no identity is shared or unknown)', () => {
    const pinnedTypes = new Set(Object.keys(PINNED).map((k) => k.split(' ')[0]));
    const identities = Object.keys(resources)
      .filter((id) => pinnedTypes.has(resources[id]!.Type))
      .map(identify);
    expect(identities.filter((i) => i?.endsWith('?') || i?.endsWith('nothing known') || i?.endsWith('undefined'))).toEqual([]);
    expect(new Set(identities).size).toBe(identities.length);
  });
});

describe('hideFromLogicalIds', () => {
  /** A few resources of the kinds ConfigBake's parts hold: an L1, L2s with `Resource` and a nested DefaultPolicy, a repeated id, a Default. */
  const populate = (scope: Construct): void => {
    new appconfig.CfnApplication(scope, 'Application', { name: 'a' });
    new logs.LogGroup(scope, 'Logs');
    const role = new iam.Role(scope, 'Role', { assumedBy: new iam.ServicePrincipal('states.amazonaws.com') });
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['*'] }));
    new logs.LogGroup(new Construct(scope, 'Parent'), 'Parent');
    new CfnResource(new Construct(scope, 'Wrapper'), 'Default', { type: 'Custom::Thing' });
  };
  const templateOf = (build: (stack: Stack) => void): Record<string, unknown> => {
    const stack = new Stack(new App(), 'S');
    build(stack);
    return Template.fromStack(stack).toJSON().Resources;
  };

  it('gives a part the logical IDs its resources had directly in its parent', () => {
    const before = templateOf((s) => populate(new Construct(s, 'Owner')));
    const after = templateOf((s) => {
      const part = new Construct(new Construct(s, 'Owner'), 'Part');
      populate(part);
      hideFromLogicalIds(part);
    });
    const unhidden = templateOf((s) => populate(new Construct(new Construct(s, 'Owner'), 'Part')));
    expect(Object.keys(before)).toHaveLength(6);
    expect(after).toEqual(before);
    // Without it every ID changes: what the split of ConfigBake would have done.
    expect(Object.keys(unhidden).filter((id) => id in before)).toEqual([]);
  });

  it('makeUniqueId: a single component is its own ID; Default dropped; Resource only out of the readable part', () => {
    expect(makeUniqueId(['Logs'])).toBe('Logs');
    expect(makeUniqueId(['A', 'Default', 'B'])).toBe(makeUniqueId(['A', 'B']));
    expect(makeUniqueId(['A', 'Resource'])).toMatch(/^A[0-9A-F]{8}$/);
    expect(makeUniqueId(['A', 'Resource'])).not.toBe(makeUniqueId(['A']));
    expect(() => makeUniqueId(['Default'])).toThrow(/at least one/);
  });
});
