/**
 * The local AppConfig stand-in reads applications, environments, configuration profiles (with
 * their JSON Schema validators) and initial hosted versions from a synthesized TEST-ONLY stack,
 * and answers the real @aws-sdk/client-appconfig commands.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as appconfig from 'aws-cdk-lib/aws-appconfig';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sdk from '@aws-sdk/client-appconfig';
import {
  AppConfigClient,
  BadRequestException,
  ConflictException,
  CreateHostedConfigurationVersionCommand,
  GetConfigurationProfileCommand,
  GetHostedConfigurationVersionCommand,
  ListConfigurationProfilesCommand,
  ListEnvironmentsCommand,
  ListHostedConfigurationVersionsCommand,
  ResourceNotFoundException,
  ValidateConfigurationCommand,
} from '@aws-sdk/client-appconfig';
import { LocalAppConfig, type AppConfigTemplate } from '../../local/appconfig';
import { FaultInjector } from '../../local/faults';

const deliverySchema = {
  $schema: 'http://json-schema.org/draft-04/schema#',
  type: 'object',
  additionalProperties: false,
  properties: {
    maxBatchRecords: { type: 'integer', minimum: 1, maximum: 1000 },
    maxBatchBytes: { type: 'integer', minimum: 1024, maximum: 6291456 },
    longPollIntervalMs: { type: 'integer', minimum: 50, maximum: 5000 },
  },
};
// No $schema: AppConfig's draft-04 applies (here: boolean exclusiveMaximum, a draft-04 form).
const limitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maxRecordsPerAppend: { type: 'integer', minimum: 1, maximum: 501, exclusiveMaximum: true },
    defaultAckTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 43200 },
  },
};

interface Ids {
  app: string;
  env: string;
  delivery: string;
  limits: string;
  fn: string;
}

/** A throwaway stack: the delivery profile with the L1 constructs, limits with the L2s (and a second initial version). */
function synth(opts: { deliveryContent?: string } = {}): { template: AppConfigTemplate; ids: Ids } {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'AppConfigTest');
  const application = new appconfig.CfnApplication(stack, 'Logrelay', { name: 'logrelay' });
  const env = new appconfig.CfnEnvironment(stack, 'Prod', { applicationId: application.ref, name: 'prod' });
  const delivery = new appconfig.CfnConfigurationProfile(stack, 'Delivery', {
    applicationId: application.ref,
    name: 'delivery',
    locationUri: 'hosted',
    type: 'AWS.Freeform',
    validators: [{ type: 'JSON_SCHEMA', content: JSON.stringify(deliverySchema) }],
  });
  new appconfig.CfnHostedConfigurationVersion(stack, 'DeliveryV1', {
    applicationId: application.ref,
    configurationProfileId: delivery.ref,
    contentType: 'application/json',
    content: opts.deliveryContent ?? JSON.stringify({ maxBatchRecords: 100, maxBatchBytes: 1048576, longPollIntervalMs: 250 }),
  });

  const l2App = appconfig.Application.fromApplicationId(stack, 'L2App', application.ref);
  const limits = new appconfig.HostedConfiguration(stack, 'Limits', {
    application: l2App,
    name: 'limits',
    content: appconfig.ConfigurationContent.fromInlineJson(JSON.stringify({ maxRecordsPerAppend: 500, defaultAckTimeoutSeconds: 30 })),
    validators: [appconfig.JsonSchemaValidator.fromInline(JSON.stringify(limitsSchema))],
  });
  const limitsV2 = new appconfig.CfnHostedConfigurationVersion(stack, 'LimitsV2', {
    applicationId: application.ref,
    configurationProfileId: limits.configurationProfileId,
    contentType: 'application/json',
    content: JSON.stringify({ maxRecordsPerAppend: 250, defaultAckTimeoutSeconds: 60 }),
    versionLabel: 'halved',
  });
  limitsV2.node.addDependency(limits);

  const fn = new lambda.Function(stack, 'Reader', {
    runtime: lambda.Runtime.NODEJS_22_X,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => ({})'),
    environment: { APPCONFIG_APPLICATION_ID: application.ref, DELIVERY_PROFILE_ID: delivery.ref, ENVIRONMENT_ID: env.ref },
  });
  const template = app.synth().getStackByName('AppConfigTest').template as AppConfigTemplate;
  const id = (c: { node: { defaultChild?: unknown } } | appconfig.CfnApplication) =>
    stack.getLogicalId(('node' in c && c.node.defaultChild ? c.node.defaultChild : c) as appconfig.CfnApplication);
  const limitsProfile = Object.entries(template.Resources).find(
    ([, r]) => r.Type === 'AWS::AppConfig::ConfigurationProfile' && r.Properties?.Name === 'limits',
  )![0];
  return {
    template,
    ids: {
      app: stack.getLogicalId(application),
      env: stack.getLogicalId(env),
      delivery: stack.getLogicalId(delivery),
      limits: limitsProfile,
      fn: id(fn),
    },
  };
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/**
 * Adapter code as a Lambda would write it against an injected AppConfigClient: nothing here knows
 * about the stand-in.
 */
async function publishVersion(
  client: Pick<AppConfigClient, 'send'>,
  ApplicationId: string,
  ConfigurationProfileId: string,
  content: unknown,
): Promise<number> {
  const out = await client.send(
    new CreateHostedConfigurationVersionCommand({
      ApplicationId,
      ConfigurationProfileId,
      Content: json(content),
      ContentType: 'application/json',
    }),
  );
  return out.VersionNumber!;
}
async function readVersion(
  client: Pick<AppConfigClient, 'send'>,
  ApplicationId: string,
  ConfigurationProfileId: string,
  VersionNumber: number,
): Promise<unknown> {
  const out = await client.send(new GetHostedConfigurationVersionCommand({ ApplicationId, ConfigurationProfileId, VersionNumber }));
  return JSON.parse(new TextDecoder().decode(out.Content));
}

describe('LocalAppConfig', () => {
  it('reads applications, environments, profiles and their initial versions from the template', async () => {
    const { template, ids } = synth();
    const ac = LocalAppConfig.fromTemplate(template);
    const appId = ac.resolveRef(ids.app)!;
    expect(appId).toMatch(/^[a-z0-9]{7}$/);
    // Stable across starts.
    expect(LocalAppConfig.fromTemplate(template).resolveRef(ids.app)).toBe(appId);

    const apps = ac.listApplications();
    expect(apps.Items).toEqual([{ Id: appId, Name: 'logrelay' }]);
    const envs = await ac.send(new ListEnvironmentsCommand({ ApplicationId: appId }));
    expect(envs.Items).toEqual([{ ApplicationId: appId, Id: ac.resolveRef(ids.env), Name: 'prod', State: 'READY_FOR_DEPLOYMENT' }]);

    const profiles = await ac.send(new ListConfigurationProfilesCommand({ ApplicationId: appId }));
    expect(profiles.Items!.map((p) => [p.Name, p.ValidatorTypes, p.LocationUri])).toEqual([
      ['delivery', ['JSON_SCHEMA'], 'hosted'],
      ['limits', ['JSON_SCHEMA'], 'hosted'],
    ]);
    const delivery = ac.findProfile('logrelay', 'delivery')!;
    expect(delivery).toEqual({ ApplicationId: appId, ConfigurationProfileId: ac.resolveRef(ids.delivery) });
    const profile = await ac.send(new GetConfigurationProfileCommand(delivery));
    expect(JSON.parse(profile.Validators![0]!.Content!)).toEqual(deliverySchema);

    expect(await readVersion(ac, appId, delivery.ConfigurationProfileId, 1)).toEqual({
      maxBatchRecords: 100,
      maxBatchBytes: 1048576,
      longPollIntervalMs: 250,
    });
    const limits = ac.findProfile('logrelay', 'limits')!;
    const limitVersions = await ac.send(new ListHostedConfigurationVersionsCommand(limits));
    expect(limitVersions.Items!.map((v) => [v.VersionNumber, v.VersionLabel])).toEqual([
      [2, 'halved'],
      [1, undefined],
    ]);
    expect(await readVersion(ac, limits.ApplicationId, limits.ConfigurationProfileId, 2)).toEqual({
      maxRecordsPerAppend: 250,
      defaultAckTimeoutSeconds: 60,
    });

    // What Ref of each AppConfig resource resolves to, e.g. for a function's environment.
    const env = (template.Resources[ids.fn]!.Properties!.Environment as { Variables: Record<string, { Ref: string }> }).Variables;
    expect(ac.resolveRef(env.APPCONFIG_APPLICATION_ID!.Ref)).toBe(appId);
    expect(ac.resolveRef(env.DELIVERY_PROFILE_ID!.Ref)).toBe(delivery.ConfigurationProfileId);
    expect(ac.resolveGetAtt(ids.delivery, 'ConfigurationProfileId')).toBe(delivery.ConfigurationProfileId);
    expect(ac.resolveRef(ids.fn)).toBeUndefined();
  });

  it('answers the real SDK commands: adapter code runs unchanged on send() and on toClient()', async () => {
    const { template } = synth();
    const ac = LocalAppConfig.fromTemplate(template);
    const { ApplicationId, ConfigurationProfileId } = ac.findProfile('logrelay', 'delivery')!;
    const tuned = { maxBatchRecords: 500, maxBatchBytes: 2097152, longPollIntervalMs: 100 };

    // The stand-in itself, where an AppConfigClient is expected.
    expect(await publishVersion(ac, ApplicationId, ConfigurationProfileId, tuned)).toBe(2);
    expect(await readVersion(ac, ApplicationId, ConfigurationProfileId, 2)).toEqual(tuned);

    // A real AppConfigClient answered in-process.
    const client = ac.toClient();
    expect(client).toBeInstanceOf(AppConfigClient);
    expect(await publishVersion(client, ApplicationId, ConfigurationProfileId, { ...tuned, maxBatchRecords: 7 })).toBe(3);
    expect(await readVersion(client, ApplicationId, ConfigurationProfileId, 3)).toEqual({ ...tuned, maxBatchRecords: 7 });
    const out = await client.send(new GetHostedConfigurationVersionCommand({ ApplicationId, ConfigurationProfileId, VersionNumber: 2 }));
    expect(out).toMatchObject({ ApplicationId, ConfigurationProfileId, VersionNumber: 2, ContentType: 'application/json' });
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(JSON.parse(out.Content!.transformToString())).toEqual(tuned);
    await expect(
      client.send(
        new CreateHostedConfigurationVersionCommand({
          ApplicationId,
          ConfigurationProfileId,
          Content: json({ maxBatchRecords: 0 }),
          ContentType: 'application/json',
        }),
      ),
    ).rejects.toBeInstanceOf(BadRequestException);
    await expect(
      client.send(new ValidateConfigurationCommand({ ApplicationId, ConfigurationProfileId, ConfigurationVersion: '3' })),
    ).resolves.toBeDefined();
  });

  it('gives a valid version the next number and refuses invalid content with the reason, as a BadRequestException', async () => {
    const { template } = synth();
    const ac = LocalAppConfig.fromTemplate(template);
    const delivery = ac.findProfile('logrelay', 'delivery')!;
    const create = (content: unknown) =>
      ac.send(
        new CreateHostedConfigurationVersionCommand({
          ...delivery,
          Content: typeof content === 'string' ? new TextEncoder().encode(content) : json(content),
          ContentType: 'application/json',
        }),
      );
    const refusal = async (content: unknown) => {
      const e = await create(content).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(BadRequestException);
      const bad = e as BadRequestException;
      expect(bad.name).toBe('BadRequestException');
      expect(bad.$fault).toBe('client');
      expect(bad.$metadata.httpStatusCode).toBe(400);
      expect(bad.Reason).toBe('InvalidConfiguration');
      return bad;
    };

    const wrongType = await refusal({ maxBatchRecords: '100' });
    expect(wrongType.message).toMatch(/\$\.maxBatchRecords must be integer/);
    expect(wrongType.Details!.InvalidConfiguration![0]).toMatchObject({
      Constraint: 'type',
      Location: '#/properties/maxBatchRecords/type',
      Type: 'JSON_SCHEMA',
      Value: '"100"',
    });

    const outOfRange = await refusal({ maxBatchRecords: 1001, longPollIntervalMs: 10 });
    expect(outOfRange.message).toMatch(/\$\.maxBatchRecords must be <= 1000/);
    expect(outOfRange.message).toMatch(/\$\.longPollIntervalMs must be >= 50/); // every failure, not just the first
    expect(outOfRange.Details!.InvalidConfiguration).toHaveLength(2);

    const unknown = await refusal({ maxBatchRecords: 10, maxBatchSize: 10 });
    expect(unknown.message).toMatch(/must NOT have additional properties: "maxBatchSize"/);
    expect(unknown.Details!.InvalidConfiguration![0]).toMatchObject({ Constraint: 'additionalProperties', Value: '10' });

    const notJson = await refusal('{ maxBatchRecords: 10');
    expect(notJson.message).toMatch(/not valid JSON/);

    // Refusals use up no version numbers.
    const ok = await create({ maxBatchRecords: 1000 });
    expect(ok.VersionNumber).toBe(2);
    expect(ok.$metadata.httpStatusCode).toBe(201);
    expect((await create({ longPollIntervalMs: 5000 })).VersionNumber).toBe(3);

    // The schema without $schema is draft-04: a boolean exclusiveMaximum excludes the maximum.
    const limits = ac.findProfile('logrelay', 'limits')!;
    const limitsCreate = (content: unknown) =>
      ac.send(new CreateHostedConfigurationVersionCommand({ ...limits, Content: json(content), ContentType: 'application/json' }));
    await expect(limitsCreate({ maxRecordsPerAppend: 501 })).rejects.toThrow(/\$\.maxRecordsPerAppend must be < 501/);
    expect((await limitsCreate({ maxRecordsPerAppend: 500 })).VersionNumber).toBe(3);
  });

  it('counts the calls it answers through the SDK, by operation; an attempt a fault refused never reaches it', async () => {
    const { template } = synth();
    const ac = LocalAppConfig.fromTemplate(template);
    // The template's initial versions are not calls.
    expect(ac.calls).toEqual({});
    const delivery = ac.findProfile('logrelay', 'delivery')!;
    await readVersion(ac, delivery.ApplicationId, delivery.ConfigurationProfileId, 1);
    const client = ac.toClient();
    await publishVersion(client, delivery.ApplicationId, delivery.ConfigurationProfileId, { maxBatchRecords: 7 });
    // A refused call is a call too.
    await expect(
      publishVersion(client, delivery.ApplicationId, delivery.ConfigurationProfileId, { maxBatchRecords: 0 }),
    ).rejects.toBeInstanceOf(BadRequestException);
    await expect(readVersion(client, delivery.ApplicationId, delivery.ConfigurationProfileId, 99)).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
    expect(ac.calls).toEqual({ GetHostedConfigurationVersion: 2, CreateHostedConfigurationVersion: 2 });

    // Every attempt throttled before it is sent: the injector counts them, the stand-in sees none.
    const faults = new FaultInjector({ throttle: 1, appliedThenError: 0, slow: 0, slowMs: 0, seed: 1, seedGiven: true });
    const throttled = ac.toClient({ faults });
    await expect(readVersion(throttled, delivery.ApplicationId, delivery.ConfigurationProfileId, 1)).rejects.toMatchObject({
      name: 'ThrottlingException',
    });
    expect(faults.calls.appconfig).toBe(3); // the SDK's three attempts
    expect(ac.calls).toEqual({ GetHostedConfigurationVersion: 2, CreateHostedConfigurationVersion: 2 });
  });

  it('keeps versions immutable: no update API, and what a caller does to returned bytes does not reach the store', async () => {
    const { template } = synth();
    const ac = LocalAppConfig.fromTemplate(template);
    const delivery = ac.findProfile('logrelay', 'delivery')!;

    // The SDK has no operation that changes a hosted version, and neither does the stand-in.
    expect(Object.keys(sdk).filter((k) => /^Update.*HostedConfigurationVersion/.test(k))).toEqual([]);
    expect(Object.getOwnPropertyNames(LocalAppConfig.prototype).filter((k) => /update/i.test(k))).toEqual([]);

    const content = json({ maxBatchRecords: 3 });
    const created = await ac.send(
      new CreateHostedConfigurationVersionCommand({ ...delivery, Content: content, ContentType: 'application/json' }),
    );
    content.fill(0x20);
    created.Content!.fill(0x20);
    const got = await ac.send(new GetHostedConfigurationVersionCommand({ ...delivery, VersionNumber: created.VersionNumber }));
    got.Content!.fill(0x20);
    expect(await readVersion(ac, delivery.ApplicationId, delivery.ConfigurationProfileId, created.VersionNumber!)).toEqual({
      maxBatchRecords: 3,
    });

    // LatestVersionNumber guards against a concurrent writer.
    await expect(
      ac.send(
        new CreateHostedConfigurationVersionCommand({
          ...delivery,
          Content: json({}),
          ContentType: 'application/json',
          LatestVersionNumber: 1,
        }),
      ),
    ).rejects.toBeInstanceOf(ConflictException);
    expect(
      (
        await ac.send(
          new CreateHostedConfigurationVersionCommand({
            ...delivery,
            Content: json({}),
            ContentType: 'application/json',
            LatestVersionNumber: 2,
          }),
        )
      ).VersionNumber,
    ).toBe(3);

    // Unknown ids and versions are ResourceNotFoundException.
    await expect(ac.send(new GetHostedConfigurationVersionCommand({ ...delivery, VersionNumber: 99 }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
    await expect(
      ac.send(new ListHostedConfigurationVersionsCommand({ ApplicationId: delivery.ApplicationId, ConfigurationProfileId: 'nope123' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(ac.send(new ListEnvironmentsCommand({ ApplicationId: 'nope123' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('keeps versions across restarts when given a file, and refuses a template whose initial version is invalid', async () => {
    const { template } = synth();
    const file = join(mkdtempSync(join(tmpdir(), 'logrelay-appconfig-')), 'appconfig.json');
    const first = LocalAppConfig.fromTemplate(template, { persistPath: file });
    const delivery = first.findProfile('logrelay', 'delivery')!;
    expect(await publishVersion(first, delivery.ApplicationId, delivery.ConfigurationProfileId, { maxBatchRecords: 42 })).toBe(2);

    const second = LocalAppConfig.fromTemplate(template, { persistPath: file });
    const list = await second.send(new ListHostedConfigurationVersionsCommand(delivery));
    expect(list.Items!.map((v) => v.VersionNumber)).toEqual([2, 1]);
    expect(await readVersion(second, delivery.ApplicationId, delivery.ConfigurationProfileId, 2)).toEqual({ maxBatchRecords: 42 });
    expect(await publishVersion(second, delivery.ApplicationId, delivery.ConfigurationProfileId, { maxBatchRecords: 43 })).toBe(3);

    const bad = synth({ deliveryContent: JSON.stringify({ maxBatchRecords: 0 }) });
    expect(() => LocalAppConfig.fromTemplate(bad.template)).toThrow(/initial version DeliveryV1.*\$\.maxBatchRecords must be >= 1/);
  });
});
