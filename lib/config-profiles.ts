/**
 * The config profiles' store: one AppConfig application named after the stack, its environment
 * `live`, and per config profile (lambdas/domain/config.ts PROFILES) a hosted freeform profile
 * whose validator is the profile's JSON Schema (profileJsonSchema) and whose version 1 is the
 * defaults (initialContent), so hosts have a control version from the first request.
 *
 * AppConfig is the store of versions only: versions are baked by the bake state machine
 * (lib/bake-workflow.ts), never by AppConfig deployments, and hosts serve each version's content
 * from the rollout item (lambdas/services/rollout.ts), so only the control path gets the ids
 * (`environmentVariables`) and a grant (`grantManageVersions`, `grantReadVersions`).
 *
 * Fixed defaults: location `hosted`, type AWS.Freeform, content type application/json.
 */
import { Stack } from 'aws-cdk-lib';
import * as appconfig from 'aws-cdk-lib/aws-appconfig';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { initialContent, PROFILES, profileJsonSchema, type ProfileName } from '../lambdas/domain/config';
import { acknowledgeWildcardResources } from './nag';

export class ConfigProfiles extends Construct {
  readonly application: appconfig.CfnApplication;
  readonly environment: appconfig.CfnEnvironment;
  readonly profiles: Readonly<Record<ProfileName, appconfig.CfnConfigurationProfile>>;
  /** Each profile's version 1 (the defaults). */
  readonly initialVersions: Readonly<Record<ProfileName, appconfig.CfnHostedConfigurationVersion>>;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.application = new appconfig.CfnApplication(this, 'Application', {
      name: Stack.of(this).stackName,
      description: 'Logrelay config profiles; versions are baked by the Logrelay bake state machine, not AppConfig deployments',
    });
    this.environment = new appconfig.CfnEnvironment(this, 'Environment', { applicationId: this.application.ref, name: 'live' });
    const profiles = {} as Record<ProfileName, appconfig.CfnConfigurationProfile>;
    const initialVersions = {} as Record<ProfileName, appconfig.CfnHostedConfigurationVersion>;
    for (const p of PROFILES) {
      const profile = new appconfig.CfnConfigurationProfile(this, `${cap(p)}Profile`, {
        applicationId: this.application.ref,
        name: p,
        locationUri: 'hosted',
        type: 'AWS.Freeform',
        description: `Logrelay ${p} profile (fields and ranges: shared/API.md)`,
        validators: [{ type: 'JSON_SCHEMA', content: JSON.stringify(profileJsonSchema(p)) }],
      });
      // Version 1: the defaults, so hosts have a control version from the first request. Its
      // content is the one the initial rollout state carries (hosts never read it from here).
      initialVersions[p] = new appconfig.CfnHostedConfigurationVersion(this, `${cap(p)}InitialVersion`, {
        applicationId: this.application.ref,
        configurationProfileId: profile.ref,
        contentType: 'application/json',
        content: initialContent(p),
        description: 'Initial version: the defaults of shared/API.md',
      });
      profiles[p] = profile;
    }
    this.profiles = profiles;
    this.initialVersions = initialVersions;
  }

  /** Lets the admin routes list, read and create versions. */
  grantManageVersions(grantee: iam.Role): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['appconfig:CreateHostedConfigurationVersion', 'appconfig:ListHostedConfigurationVersions'],
      resourceArns: this.profileArns(),
    });
    this.grantReadVersions(grantee);
  }

  /** Lets a function read the versions of this stack's two profiles, and nothing else of AppConfig (the deploy-time upgrade). */
  grantReadVersions(grantee: iam.Role): void {
    iam.Grant.addToPrincipal({ grantee, actions: ['appconfig:GetHostedConfigurationVersion'], resourceArns: this.versionArns() });
    acknowledgeWildcardResources(grantee, this.versionArns(), VERSIONS_REASON);
  }

  /** Environment variables naming the AppConfig application and profiles (lambdas/adapters/appconfig.ts). */
  get environmentVariables(): Record<string, string> {
    return {
      APPCONFIG_APPLICATION_ID: this.application.ref,
      APPCONFIG_DELIVERY_PROFILE_ID: this.profiles.delivery.ref,
      APPCONFIG_LIMITS_PROFILE_ID: this.profiles.limits.ref,
    };
  }

  /** The ARN of each profile, in PROFILES' order (what ValidateVersion may validate). */
  profileArns(): string[] {
    const stack = Stack.of(this);
    return PROFILES.map((p) =>
      stack.formatArn({
        service: 'appconfig',
        resource: 'application',
        resourceName: `${this.application.ref}/configurationprofile/${this.profiles[p].ref}`,
      }),
    );
  }

  private versionArns(): string[] {
    return this.profileArns().map((a) => `${a}/hostedconfigurationversion/*`);
  }
}

const VERSIONS_REASON =
  "Each '*' is a hosted configuration version number of one of this stack's two profiles: versions are created at run time (POST /configs/{profile}/versions), so they cannot be listed in the policy.";

const cap = (s: string): string => s[0]!.toUpperCase() + s.slice(1);
