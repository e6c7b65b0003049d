/**
 * Local AppConfig: the applications, environments and configuration profiles the stack
 * synthesizes, with the hosted configuration store behind them, reachable through the same
 * calls as AWS AppConfig's control plane:
 *
 * - `send(new XCommand(input))` takes the real `@aws-sdk/client-appconfig` command objects and
 *   answers with SDK-shaped output (or throws the SDK's own exception classes), so adapter code
 *   written against an injected AppConfigClient runs unchanged; `toClient()` goes one step further
 *   and hands out a real AppConfigClient whose requests are answered here.
 * - Hosted configuration versions are immutable and numbered 1, 2, 3, ... per profile. A new
 *   version is checked against the profile's JSON Schema validators (JSON Schema draft-04, the
 *   version AppConfig documents for inline schemas, unless the schema's `$schema` names another
 *   draft) and refused with a BadRequestException (Reason InvalidConfiguration, the failures in
 *   Details and in the message) when it does not conform.
 * - The initial versions are the template's AWS::AppConfig::HostedConfigurationVersion resources.
 *
 * Every call that reaches it through the SDK facade is counted by operation (`calls`), so a test
 * can show which code paths call AppConfig's control plane, and how often (the hosts: never).
 *
 * IDs are AWS-shaped (7 characters of [a-z0-9]) and derived from the logical ids, so they are the
 * same on every start; `resolveRef` / `resolveGetAtt` give what `Ref` / `Fn::GetAtt` of the
 * AppConfig resources resolve to, for reading environment variables out of the template.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import Ajv2020 from 'ajv/dist/2020';
import AjvDraft04 from 'ajv-draft-04';
import addFormats from 'ajv-formats';
import {
  AppConfigClient,
  BadRequestException,
  ConflictException,
  PayloadTooLargeException,
  ResourceNotFoundException,
  type Application,
  type ConfigurationProfile,
  type ConfigurationProfileSummary,
  type CreateHostedConfigurationVersionRequest,
  type Environment,
  type HostedConfigurationVersion,
  type HostedConfigurationVersionSummary,
  type InvalidConfigurationDetail,
  type ListHostedConfigurationVersionsRequest,
  type ServiceInputTypes,
  type ServiceOutputTypes,
  type Validator,
} from '@aws-sdk/client-appconfig';
import { addFaults, type FaultInjector } from './faults';

export const LOCAL_APPCONFIG_MIDDLEWARE = 'localAppConfig';

/**
 * Makes a real AWS SDK client answer its commands here: `answer(operation, input)` runs in place
 * of the HTTP exchange, in the `deserialize` step (the innermost, inside the SDK's retry loop),
 * so everything around the exchange runs as it does against AWS: serialization, signing, the
 * SDK's retries of a throttled or failed attempt, and middleware others add (injected faults).
 */
export function answerInProcess(
  client: { middlewareStack: { add(m: unknown, o: unknown): void } },
  name: string,
  answer: (operation: string, input: unknown) => Promise<unknown>,
): void {
  client.middlewareStack.add(
    (_next: unknown, context: { commandName?: string }) => async (args: { input: unknown }) => {
      const operation = String(context.commandName ?? '').replace(/Command$/, '');
      const output = (await answer(operation, args.input)) as Record<string, unknown>;
      // The SDK's retry middleware records its attempts on the output's $metadata.
      return {
        output: { ...output, $metadata: { httpStatusCode: 200, ...(output.$metadata as object | undefined) } },
        response: undefined,
      };
    },
    // Priority high: outside the SDK's own deserializer, which would parse an HTTP response.
    { step: 'deserialize', priority: 'high', name, override: true },
  );
}

/** What `send` needs of an SDK command object: its input, and (for typing the output) its handler. */
export interface SdkCommand<InputType, OutputType> {
  readonly input: InputType;
  resolveMiddleware(...args: never[]): (args: never) => Promise<{ output: OutputType }>;
}

export interface AppConfigTemplate {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; DependsOn?: string | string[] }>;
}

export interface LocalAppConfigOptions {
  /**
   * A JSON file that keeps the hosted configuration versions across restarts (e.g. in the local
   * runtime's --data-dir). Profiles it has versions for start from those, not from the template.
   */
  persistPath?: string;
}

/** AWS's default quota for one hosted configuration version. */
export const MAX_HOSTED_CONTENT_BYTES = 2 * 1024 * 1024;

type Metadata = { httpStatusCode: number; requestId: string; attempts: number; totalRetryDelay: number };
const metadata = (httpStatusCode = 200): Metadata => ({ httpStatusCode, requestId: randomUUID(), attempts: 1, totalRetryDelay: 0 });
type WithMetadata<T> = T & { $metadata: Metadata };

/** Uint8Array content with the SDK blob's `transformToString`, as the real client returns it. */
export class ContentBlob extends Uint8Array {
  static copyOf(bytes: Uint8Array): ContentBlob {
    const b = new ContentBlob(bytes.byteLength);
    b.set(bytes);
    return b;
  }
  transformToString(encoding: BufferEncoding = 'utf-8'): string {
    return Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString(encoding);
  }
}

interface StoredVersion {
  VersionNumber: number;
  Content: Uint8Array;
  ContentType: string;
  Description?: string;
  VersionLabel?: string;
}

interface ProfileState {
  logicalId: string;
  profile: ConfigurationProfile & { Id: string; ApplicationId: string; Name: string };
  validators: { schema: unknown; validate: ValidateFunction }[];
  versions: StoredVersion[];
}

const badRequest = (message: string, details?: InvalidConfigurationDetail[]) =>
  new BadRequestException({
    $metadata: metadata(400),
    message,
    Message: message,
    ...(details ? { Reason: 'InvalidConfiguration' as const, Details: { InvalidConfiguration: details } } : {}),
  });

const notFound = (message: string, resourceName?: string) =>
  new ResourceNotFoundException({
    $metadata: metadata(404),
    message,
    Message: message,
    ...(resourceName ? { ResourceName: resourceName } : {}),
  });

/** A 7-character [a-z0-9] id, stable for a logical id. */
function idFor(kind: string, logicalId: string): string {
  const n = BigInt(`0x${createHash('sha256').update(`${kind}:${logicalId}`).digest('hex').slice(0, 15)}`);
  return n.toString(36).padStart(7, '0').slice(-7);
}

const DRAFT_04 = /json-schema\.org\/draft-04\/schema/;

/** Compiles a validator's JSON Schema with the draft it declares (draft-04 when it declares none). */
export function compileJsonSchema(schema: unknown): ValidateFunction {
  const declared = schema && typeof schema === 'object' ? (schema as { $schema?: unknown }).$schema : undefined;
  const common = { allErrors: true, strict: false } as const;
  let ajv: Ajv;
  if (declared === undefined || (typeof declared === 'string' && DRAFT_04.test(declared))) ajv = new AjvDraft04(common);
  else if (typeof declared === 'string' && /2020-12/.test(declared)) ajv = new Ajv2020(common);
  else if (typeof declared === 'string' && /2019-09/.test(declared)) ajv = new Ajv2019(common);
  else if (typeof declared === 'string' && /draft-0[67]/.test(declared)) {
    ajv = new Ajv(common);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (/draft-06/.test(declared)) ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json'));
  } else throw new Error(`unsupported $schema ${JSON.stringify(declared)}`);
  addFormats(ajv);
  return ajv.compile(schema as object);
}

/** `$.a.b[0]` for an Ajv instance path (`/a/b/0`). */
function jsonPathOf(instancePath: string): string {
  if (!instancePath) return '$';
  return (
    '$' +
    instancePath
      .split('/')
      .slice(1)
      .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
      .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : /^[A-Za-z_$][\w$]*$/.test(seg) ? `.${seg}` : `[${JSON.stringify(seg)}]`))
      .join('')
  );
}

function detailOf(e: ErrorObject, data: unknown): InvalidConfigurationDetail {
  const at = jsonPathOf(e.instancePath);
  const params = e.params as Record<string, unknown>;
  let reason = `${at} ${e.message ?? 'is invalid'}`;
  if (e.keyword === 'additionalProperties') reason += `: ${JSON.stringify(params.additionalProperty)}`;
  if (e.keyword === 'enum') reason += `: ${JSON.stringify(params.allowedValues)}`;
  let value: unknown = data;
  for (const seg of e.instancePath.split('/').slice(1))
    value = (value as Record<string, unknown> | undefined)?.[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
  if (e.keyword === 'additionalProperties') value = (value as Record<string, unknown>)?.[String(params.additionalProperty)];
  return {
    Constraint: e.keyword,
    Location: e.schemaPath,
    Reason: reason,
    Type: 'JSON_SCHEMA',
    ...(value !== undefined ? { Value: JSON.stringify(value) } : {}),
  };
}

const bytesOf = (content: Uint8Array | string | undefined): Uint8Array =>
  typeof content === 'string' ? new TextEncoder().encode(content) : content instanceof Uint8Array ? content : new Uint8Array();

function page<T>(items: T[], maxResults: number | undefined, nextToken: string | undefined, max = 50): { Items: T[]; NextToken?: string } {
  if (maxResults !== undefined && (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > max)) {
    throw badRequest(`MaxResults must be between 1 and ${max}`);
  }
  const start = nextToken === undefined ? 0 : Number.parseInt(Buffer.from(nextToken, 'base64url').toString(), 10);
  if (!Number.isInteger(start) || start < 0 || start > items.length) throw badRequest('Invalid NextToken');
  const end = start + (maxResults ?? max);
  return { Items: items.slice(start, end), ...(end < items.length ? { NextToken: Buffer.from(String(end)).toString('base64url') } : {}) };
}

export class LocalAppConfig {
  private readonly applications = new Map<string, { logicalId: string; app: Application & { Id: string; Name: string } }>();
  private readonly environments = new Map<string, { logicalId: string; env: Environment & { Id: string; ApplicationId: string } }>();
  private readonly profiles = new Map<string, ProfileState>();
  /** logical id -> what Ref resolves to */
  private readonly refs = new Map<string, string>();
  /**
   * Calls answered through `send` and `toClient`'s clients, by operation (each SDK attempt that
   * got here counts one; an attempt an injected fault refused before it was sent does not, and
   * is counted by the FaultInjector instead). The Step Functions integrations call the methods
   * directly and are not counted.
   */
  readonly calls: Record<string, number> = {};

  private constructor(private readonly persistPath: string | undefined) {}

  /** Reads AppConfig applications, environments, profiles (with validators) and initial hosted versions from a template. */
  static fromTemplate(template: AppConfigTemplate, options: LocalAppConfigOptions = {}): LocalAppConfig {
    const ac = new LocalAppConfig(options.persistPath);
    const res = template.Resources ?? {};
    const byType = (type: string) => Object.entries(res).filter(([, r]) => r.Type === type);
    const takenIds = new Map<string, string>();
    const newId = (kind: string, logicalId: string) => {
      const id = idFor(kind, logicalId);
      if (takenIds.has(`${kind}:${id}`))
        throw new Error(`AppConfig: ${logicalId} and ${takenIds.get(`${kind}:${id}`)} hash to the same local id; rename one`);
      takenIds.set(`${kind}:${id}`, logicalId);
      return id;
    };
    const str = (v: unknown, where: string): string => {
      if (typeof v === 'string') return v;
      const ref = v && typeof v === 'object' && 'Ref' in v ? String((v as { Ref: unknown }).Ref) : undefined;
      if (ref && ac.refs.has(ref)) return ac.refs.get(ref)!;
      const att =
        v && typeof v === 'object' && 'Fn::GetAtt' in v ? ((v as { 'Fn::GetAtt': unknown[] })['Fn::GetAtt'] as string[]) : undefined;
      if (att) {
        const resolved = ac.resolveGetAtt(att[0]!, att[1]!);
        if (resolved !== undefined) return resolved;
      }
      throw new Error(`AppConfig: ${where} is ${JSON.stringify(v)}, which the local AppConfig cannot resolve`);
    };

    for (const [logicalId, r] of byType('AWS::AppConfig::Application')) {
      const p = r.Properties ?? {};
      const Id = newId('application', logicalId);
      ac.applications.set(Id, {
        logicalId,
        app: { Id, Name: str(p.Name, `${logicalId}.Name`), ...(p.Description ? { Description: String(p.Description) } : {}) },
      });
      ac.refs.set(logicalId, Id);
    }
    for (const [logicalId, r] of byType('AWS::AppConfig::Environment')) {
      const p = r.Properties ?? {};
      const ApplicationId = str(p.ApplicationId, `${logicalId}.ApplicationId`);
      if (!ac.applications.has(ApplicationId))
        throw new Error(`AppConfig: environment ${logicalId} belongs to no application of the template`);
      const Id = newId(`environment:${ApplicationId}`, logicalId);
      const env: Environment & { Id: string; ApplicationId: string } = {
        ApplicationId,
        Id,
        Name: str(p.Name, `${logicalId}.Name`),
        State: 'READY_FOR_DEPLOYMENT',
        ...(p.Description ? { Description: String(p.Description) } : {}),
      };
      ac.environments.set(Id, { logicalId, env });
      ac.refs.set(logicalId, Id);
    }
    for (const [logicalId, r] of byType('AWS::AppConfig::ConfigurationProfile')) {
      const p = r.Properties ?? {};
      const ApplicationId = str(p.ApplicationId, `${logicalId}.ApplicationId`);
      if (!ac.applications.has(ApplicationId))
        throw new Error(`AppConfig: configuration profile ${logicalId} belongs to no application of the template`);
      const Id = newId(`profile:${ApplicationId}`, logicalId);
      const validators: ProfileState['validators'] = [];
      const Validators: Validator[] = [];
      for (const [i, v] of ((p.Validators ?? []) as { Type: string; Content: unknown }[]).entries()) {
        const where = `configuration profile ${logicalId} validator ${i}`;
        if (v.Type !== 'JSON_SCHEMA')
          throw new Error(`AppConfig: ${where} is a ${v.Type} validator; the local AppConfig runs JSON_SCHEMA validators only`);
        const text = typeof v.Content === 'string' ? v.Content : JSON.stringify(v.Content);
        let schema: unknown;
        try {
          schema = JSON.parse(text);
          validators.push({ schema, validate: compileJsonSchema(schema) });
        } catch (e) {
          throw new Error(`AppConfig: ${where} is not a usable JSON Schema: ${(e as Error).message}`);
        }
        Validators.push({ Type: 'JSON_SCHEMA', Content: text });
      }
      const profile: ProfileState['profile'] = {
        ApplicationId,
        Id,
        Name: str(p.Name, `${logicalId}.Name`),
        LocationUri: typeof p.LocationUri === 'string' ? p.LocationUri : 'hosted',
        Type: typeof p.Type === 'string' ? p.Type : 'AWS.Freeform',
        Validators,
        ...(p.Description ? { Description: String(p.Description) } : {}),
      };
      ac.profiles.set(`${ApplicationId}/${Id}`, { logicalId, profile, validators, versions: [] });
      ac.refs.set(logicalId, Id);
    }

    const stored = ac.load();
    const fromStore = new Set<string>();
    for (const [key, versions] of Object.entries(stored)) {
      const state = ac.profiles.get(key);
      if (!state) continue; // a profile no longer in the template
      state.versions = versions;
      fromStore.add(key);
    }
    for (const [logicalId, r] of ac.inDependencyOrder(byType('AWS::AppConfig::HostedConfigurationVersion'))) {
      const p = r.Properties ?? {};
      const ApplicationId = str(p.ApplicationId, `${logicalId}.ApplicationId`);
      const ConfigurationProfileId = str(p.ConfigurationProfileId, `${logicalId}.ConfigurationProfileId`);
      const key = `${ApplicationId}/${ConfigurationProfileId}`;
      if (fromStore.has(key)) {
        const state = ac.profiles.get(key)!;
        ac.refs.set(logicalId, String(state.versions[0]?.VersionNumber ?? 1));
        continue;
      }
      try {
        const out = ac.createHostedConfigurationVersion(
          {
            ApplicationId,
            ConfigurationProfileId,
            Content: str(p.Content, `${logicalId}.Content`),
            ContentType: str(p.ContentType, `${logicalId}.ContentType`),
            ...(p.Description ? { Description: String(p.Description) } : {}),
            ...(p.VersionLabel ? { VersionLabel: String(p.VersionLabel) } : {}),
          },
          false,
        );
        ac.refs.set(logicalId, String(out.VersionNumber));
      } catch (e) {
        throw new Error(`AppConfig: the template's initial version ${logicalId} is refused: ${(e as Error).message}`);
      }
    }
    ac.save();
    return ac;
  }

  private inDependencyOrder<T extends [string, { DependsOn?: string | string[] }]>(entries: T[]): T[] {
    const ids = new Set(entries.map(([id]) => id));
    const done = new Set<string>();
    const out: T[] = [];
    const visit = (e: T, path: Set<string>) => {
      if (done.has(e[0]) || path.has(e[0])) return;
      path.add(e[0]);
      const deps = e[1].DependsOn === undefined ? [] : Array.isArray(e[1].DependsOn) ? e[1].DependsOn : [e[1].DependsOn];
      for (const d of deps) if (ids.has(d)) visit(entries.find(([id]) => id === d)!, path);
      done.add(e[0]);
      out.push(e);
    };
    for (const e of entries) visit(e, new Set());
    return out;
  }

  // --- lookups for the local runtime ------------------------------------------------------------

  /** What `Ref` of an AppConfig resource of the template resolves to (an id, or a version number); undefined for other resources. */
  resolveRef(logicalId: string): string | undefined {
    return this.refs.get(logicalId);
  }

  /** What `Fn::GetAtt` of an AppConfig resource resolves to; undefined when it is not one. */
  resolveGetAtt(logicalId: string, attribute: string): string | undefined {
    const id = this.refs.get(logicalId);
    if (id === undefined) return undefined;
    if (attribute === 'ApplicationId') {
      for (const a of this.applications.values()) if (a.logicalId === logicalId) return a.app.Id;
      for (const e of this.environments.values()) if (e.logicalId === logicalId) return e.env.ApplicationId;
      for (const p of this.profiles.values()) if (p.logicalId === logicalId) return p.profile.ApplicationId;
    }
    if (attribute === 'EnvironmentId' || attribute === 'ConfigurationProfileId' || attribute === 'VersionNumber') return id;
    return undefined;
  }

  /** The ids of a profile, by application and profile name. */
  findProfile(applicationName: string, profileName: string): { ApplicationId: string; ConfigurationProfileId: string } | undefined {
    for (const { profile } of this.profiles.values()) {
      if (profile.Name === profileName && this.applications.get(profile.ApplicationId)?.app.Name === applicationName) {
        return { ApplicationId: profile.ApplicationId, ConfigurationProfileId: profile.Id };
      }
    }
    return undefined;
  }

  // --- the API ------------------------------------------------------------------------------------

  private application(ApplicationId: string | undefined) {
    const a = ApplicationId === undefined ? undefined : this.applications.get(ApplicationId);
    if (!a) throw notFound(`Application ${ApplicationId} not found`, ApplicationId);
    return a.app;
  }

  private profile(ApplicationId: string | undefined, ConfigurationProfileId: string | undefined): ProfileState {
    this.application(ApplicationId);
    const p = this.profiles.get(`${ApplicationId}/${ConfigurationProfileId}`);
    if (!p)
      throw notFound(`Configuration profile ${ConfigurationProfileId} not found in application ${ApplicationId}`, ConfigurationProfileId);
    return p;
  }

  getApplication(input: { ApplicationId: string | undefined }): WithMetadata<Application> {
    return { ...structuredClone(this.application(input.ApplicationId)), $metadata: metadata() };
  }

  listApplications(input: { MaxResults?: number; NextToken?: string } = {}): WithMetadata<{ Items: Application[]; NextToken?: string }> {
    const items = [...this.applications.values()].map((a) => structuredClone(a.app));
    return { ...page(items, input.MaxResults, input.NextToken), $metadata: metadata() };
  }

  getEnvironment(input: { ApplicationId: string | undefined; EnvironmentId: string | undefined }): WithMetadata<Environment> {
    this.application(input.ApplicationId);
    const e = input.EnvironmentId === undefined ? undefined : this.environments.get(input.EnvironmentId);
    if (!e || e.env.ApplicationId !== input.ApplicationId)
      throw notFound(`Environment ${input.EnvironmentId} not found in application ${input.ApplicationId}`, input.EnvironmentId);
    return { ...structuredClone(e.env), $metadata: metadata() };
  }

  listEnvironments(input: {
    ApplicationId: string | undefined;
    MaxResults?: number;
    NextToken?: string;
  }): WithMetadata<{ Items: Environment[]; NextToken?: string }> {
    this.application(input.ApplicationId);
    const items = [...this.environments.values()]
      .filter((e) => e.env.ApplicationId === input.ApplicationId)
      .map((e) => structuredClone(e.env));
    return { ...page(items, input.MaxResults, input.NextToken), $metadata: metadata() };
  }

  getConfigurationProfile(input: {
    ApplicationId: string | undefined;
    ConfigurationProfileId: string | undefined;
  }): WithMetadata<ConfigurationProfile> {
    return { ...structuredClone(this.profile(input.ApplicationId, input.ConfigurationProfileId).profile), $metadata: metadata() };
  }

  listConfigurationProfiles(input: {
    ApplicationId: string | undefined;
    MaxResults?: number;
    NextToken?: string;
    Type?: string;
  }): WithMetadata<{ Items: ConfigurationProfileSummary[]; NextToken?: string }> {
    this.application(input.ApplicationId);
    const items: ConfigurationProfileSummary[] = [...this.profiles.values()]
      .filter((p) => p.profile.ApplicationId === input.ApplicationId && (input.Type === undefined || p.profile.Type === input.Type))
      .map(({ profile }) => ({
        ApplicationId: profile.ApplicationId,
        Id: profile.Id,
        Name: profile.Name,
        LocationUri: profile.LocationUri,
        Type: profile.Type,
        ValidatorTypes: (profile.Validators ?? []).map((v) => v.Type!),
      }));
    return { ...page(items, input.MaxResults, input.NextToken), $metadata: metadata() };
  }

  /**
   * Creates the next version of a hosted profile (1, 2, 3, ...), after checking the content
   * against the profile's validators. Versions are never changed afterwards.
   */
  createHostedConfigurationVersion(
    input: Omit<CreateHostedConfigurationVersionRequest, 'Content'> & { Content: Uint8Array | string | undefined },
    persist = true,
  ): WithMetadata<HostedConfigurationVersion> {
    const state = this.profile(input.ApplicationId, input.ConfigurationProfileId);
    if (state.profile.LocationUri !== 'hosted')
      throw badRequest(`Configuration profile ${state.profile.Id} is not stored in the hosted configuration store`);
    if (typeof input.ContentType !== 'string' || !input.ContentType) throw badRequest('ContentType is required');
    if (input.Content === undefined) throw badRequest('Content is required');
    if (
      input.VersionLabel !== undefined &&
      (/^\d+$/.test(input.VersionLabel) || input.VersionLabel.length < 1 || input.VersionLabel.length > 64)
    ) {
      throw badRequest('VersionLabel must be 1 to 64 characters and contain at least one non-numeric character');
    }
    const content = bytesOf(input.Content);
    if (content.byteLength > MAX_HOSTED_CONTENT_BYTES) {
      throw new PayloadTooLargeException({
        $metadata: metadata(413),
        message: `Configuration size ${content.byteLength} bytes exceeds the limit of ${MAX_HOSTED_CONTENT_BYTES} bytes`,
        Message: `Configuration size ${content.byteLength} bytes exceeds the limit of ${MAX_HOSTED_CONTENT_BYTES} bytes`,
        Measure: 'KILOBYTES',
        Limit: MAX_HOSTED_CONTENT_BYTES / 1024,
        Size: Math.ceil(content.byteLength / 1024),
      });
    }
    const latest = state.versions.at(-1)?.VersionNumber ?? 0;
    if (input.LatestVersionNumber !== undefined && input.LatestVersionNumber !== latest) {
      const message = `LatestVersionNumber ${input.LatestVersionNumber} does not match the latest version, ${latest}`;
      throw new ConflictException({ $metadata: metadata(409), message, Message: message });
    }
    this.check(state, content);
    const version: StoredVersion = {
      VersionNumber: latest + 1,
      Content: Uint8Array.from(content),
      ContentType: input.ContentType,
      ...(input.Description !== undefined ? { Description: input.Description } : {}),
      ...(input.VersionLabel !== undefined ? { VersionLabel: input.VersionLabel } : {}),
    };
    state.versions.push(version);
    if (persist) this.save();
    return { ...this.versionOutput(state, version), $metadata: metadata(201) };
  }

  getHostedConfigurationVersion(input: {
    ApplicationId: string | undefined;
    ConfigurationProfileId: string | undefined;
    VersionNumber: number | undefined;
  }): WithMetadata<HostedConfigurationVersion> {
    const state = this.profile(input.ApplicationId, input.ConfigurationProfileId);
    const v = state.versions.find((x) => x.VersionNumber === input.VersionNumber);
    if (!v)
      throw notFound(
        `Hosted configuration version ${input.VersionNumber} of configuration profile ${input.ConfigurationProfileId} not found`,
        String(input.VersionNumber),
      );
    return { ...this.versionOutput(state, v), $metadata: metadata() };
  }

  /** Newest first (AWS documents no order: do not depend on one). */
  listHostedConfigurationVersions(
    input: ListHostedConfigurationVersionsRequest,
  ): WithMetadata<{ Items: HostedConfigurationVersionSummary[]; NextToken?: string }> {
    const state = this.profile(input.ApplicationId, input.ConfigurationProfileId);
    const label = input.VersionLabel;
    const matches = (l: string | undefined) =>
      label === undefined || (l !== undefined && (label.endsWith('*') ? l.startsWith(label.slice(0, -1)) : l === label));
    const items = [...state.versions]
      .reverse()
      .filter((v) => matches(v.VersionLabel))
      .map((v) => {
        const { Content: _content, ...summary } = this.versionOutput(state, v);
        void _content;
        return summary as HostedConfigurationVersionSummary;
      });
    return { ...page(items, input.MaxResults, input.NextToken), $metadata: metadata() };
  }

  /** Checks a stored version against the profile's validators (as ValidateConfiguration does). */
  validateConfiguration(input: {
    ApplicationId: string | undefined;
    ConfigurationProfileId: string | undefined;
    ConfigurationVersion: string | undefined;
  }): { $metadata: Metadata } {
    const state = this.profile(input.ApplicationId, input.ConfigurationProfileId);
    const v = state.versions.find((x) => String(x.VersionNumber) === input.ConfigurationVersion);
    if (!v)
      throw notFound(
        `Hosted configuration version ${input.ConfigurationVersion} of configuration profile ${input.ConfigurationProfileId} not found`,
      );
    this.check(state, v.Content);
    return { $metadata: metadata(204) };
  }

  private check(state: ProfileState, content: Uint8Array): void {
    if (!state.validators.length) return;
    let data: unknown;
    try {
      data = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(content));
    } catch (e) {
      const reason = `The configuration is not valid JSON: ${(e as Error).message}`;
      throw badRequest(`Configuration failed validation against the JSON Schema validator: ${reason}`, [
        { Constraint: 'json', Location: '#', Reason: reason, Type: 'JSON_SCHEMA' },
      ]);
    }
    const details: InvalidConfigurationDetail[] = [];
    for (const { validate } of state.validators) {
      if (!validate(data)) details.push(...(validate.errors ?? []).map((e) => detailOf(e, data)));
    }
    if (details.length) {
      throw badRequest(
        `Configuration failed validation against the JSON Schema validator: ${details.map((d) => d.Reason).join('; ')}`,
        details,
      );
    }
  }

  private versionOutput(state: ProfileState, v: StoredVersion): HostedConfigurationVersion {
    return {
      ApplicationId: state.profile.ApplicationId,
      ConfigurationProfileId: state.profile.Id,
      VersionNumber: v.VersionNumber,
      Content: ContentBlob.copyOf(v.Content),
      ContentType: v.ContentType,
      ...(v.Description !== undefined ? { Description: v.Description } : {}),
      ...(v.VersionLabel !== undefined ? { VersionLabel: v.VersionLabel } : {}),
    };
  }

  // --- the SDK facade ---------------------------------------------------------------------------

  /**
   * Answers a real `@aws-sdk/client-appconfig` command (`new CreateHostedConfigurationVersionCommand(input)`,
   * ...), by its class name and `command.input`, with the SDK's output shape; failures are the SDK's
   * exception classes.
   */
  async send<InputType extends ServiceInputTypes, OutputType extends ServiceOutputTypes>(
    command: SdkCommand<InputType, OutputType>,
  ): Promise<OutputType> {
    const name = command.constructor.name.replace(/Command$/, '');
    return (await this.dispatch(name, command.input)) as OutputType;
  }

  /** A real AppConfigClient whose every request is answered by this stand-in (nothing leaves the process). */
  toClient(opts: { faults?: FaultInjector } = {}): AppConfigClient {
    // Three attempts, as the deployed handlers' client makes (lambdas/http/deps.ts).
    const client = new AppConfigClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 3,
    });
    answerInProcess(client, LOCAL_APPCONFIG_MIDDLEWARE, (operation, input) => this.dispatch(operation, input));
    // Injected faults sit just outside the answer, inside the SDK's retries (local/faults.ts).
    if (opts.faults) addFaults(client, opts.faults, 'appconfig', LOCAL_APPCONFIG_MIDDLEWARE);
    return client;
  }

  private async dispatch(operation: string, input: unknown): Promise<unknown> {
    this.calls[operation] = (this.calls[operation] ?? 0) + 1;
    // biome-ignore lint/suspicious/noExplicitAny: the bridge from the untyped dispatch to the typed operations: `input` is the SDK command's input for `operation`, which the case picks
    const i = (input ?? {}) as any;
    switch (operation) {
      case 'GetApplication':
        return this.getApplication(i);
      case 'ListApplications':
        return this.listApplications(i);
      case 'GetEnvironment':
        return this.getEnvironment(i);
      case 'ListEnvironments':
        return this.listEnvironments(i);
      case 'GetConfigurationProfile':
        return this.getConfigurationProfile(i);
      case 'ListConfigurationProfiles':
        return this.listConfigurationProfiles(i);
      case 'CreateHostedConfigurationVersion':
        return this.createHostedConfigurationVersion(i);
      case 'GetHostedConfigurationVersion':
        return this.getHostedConfigurationVersion(i);
      case 'ListHostedConfigurationVersions':
        return this.listHostedConfigurationVersions(i);
      case 'ValidateConfiguration':
        return this.validateConfiguration(i);
      default:
        throw badRequest(`The local AppConfig does not implement ${operation || 'this command'}`);
    }
  }

  // --- persistence --------------------------------------------------------------------------------

  private load(): Record<string, StoredVersion[]> {
    if (!this.persistPath || !existsSync(this.persistPath)) return {};
    const raw = JSON.parse(readFileSync(this.persistPath, 'utf8')) as {
      profiles?: Record<string, (Omit<StoredVersion, 'Content'> & { Content: string })[]>;
    };
    const out: Record<string, StoredVersion[]> = {};
    for (const [key, versions] of Object.entries(raw.profiles ?? {})) {
      out[key] = versions.map((v) => ({ ...v, Content: new Uint8Array(Buffer.from(v.Content, 'base64')) }));
    }
    return out;
  }

  private save(): void {
    if (!this.persistPath) return;
    const profiles: Record<string, unknown[]> = {};
    for (const [key, state] of this.profiles) {
      profiles[key] = state.versions.map((v) => ({ ...v, Content: Buffer.from(v.Content).toString('base64') }));
    }
    mkdirSync(dirname(this.persistPath), { recursive: true });
    const tmp = `${this.persistPath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ profiles }, null, 1));
    renameSync(tmp, this.persistPath);
  }
}
