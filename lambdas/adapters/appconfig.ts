/**
 * Config versions in AWS AppConfig: each profile is a hosted configuration profile, each
 * version a hosted configuration version (immutable, numbered 1, 2, ... by AppConfig). Hosts
 * read contents by number; operators create and list versions through the admin routes.
 */
import {
  CreateHostedConfigurationVersionCommand,
  GetHostedConfigurationVersionCommand,
  ListHostedConfigurationVersionsCommand,
  type AppConfigClient,
} from '@aws-sdk/client-appconfig';
import type { ProfileName } from '../domain/config';
import type { AppConfigIds, ConfigVersions } from '../ports';

// Re-exported for the callers that import them from here (they live in ports.ts).
export type { AppConfigIds, ConfigVersions } from '../ports';

/**
 * The AppConfig ids an environment names, '' for each it lacks, unchecked: for tools and tests
 * reading a template's environment. A function reads its own through functionEnv
 * (lambdas/function-env.ts), which refuses a missing or empty one, naming it.
 */
export function appConfigIdsFromEnv(env: NodeJS.ProcessEnv = process.env): AppConfigIds {
  return {
    applicationId: env.APPCONFIG_APPLICATION_ID ?? '',
    profiles: { delivery: env.APPCONFIG_DELIVERY_PROFILE_ID ?? '', limits: env.APPCONFIG_LIMITS_PROFILE_ID ?? '' },
  };
}

const isNotFound = (e: unknown): boolean => (e as { name?: string })?.name === 'ResourceNotFoundException';

export class AppConfigVersions implements ConfigVersions {
  constructor(
    private readonly client: Pick<AppConfigClient, 'send'>,
    private readonly ids: AppConfigIds,
  ) {}

  async get(profile: ProfileName, version: string): Promise<unknown> {
    // Only the canonical form names a version: Number() would also read '01', '1e0' or '0x1' as 1.
    if (!/^[1-9][0-9]{0,14}$/.test(version)) return undefined;
    const n = Number(version);
    try {
      const out = await this.client.send(
        new GetHostedConfigurationVersionCommand({
          ApplicationId: this.ids.applicationId,
          ConfigurationProfileId: this.ids.profiles[profile],
          VersionNumber: n,
        }),
      );
      return JSON.parse(Buffer.from(out.Content ?? new Uint8Array()).toString('utf8')) as unknown;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async create(profile: ProfileName, content: unknown, description?: string): Promise<string> {
    const out = await this.client.send(
      new CreateHostedConfigurationVersionCommand({
        ApplicationId: this.ids.applicationId,
        ConfigurationProfileId: this.ids.profiles[profile],
        Content: Buffer.from(JSON.stringify(content), 'utf8'),
        ContentType: 'application/json',
        ...(description ? { Description: description.slice(0, 1024) } : {}),
      }),
    );
    return String(out.VersionNumber);
  }

  async list(profile: ProfileName): Promise<string[]> {
    const versions: number[] = [];
    let token: string | undefined;
    do {
      const out = await this.client.send(
        new ListHostedConfigurationVersionsCommand({
          ApplicationId: this.ids.applicationId,
          ConfigurationProfileId: this.ids.profiles[profile],
          MaxResults: 50,
          ...(token ? { NextToken: token } : {}),
        }),
      );
      for (const it of out.Items ?? []) if (it.VersionNumber !== undefined) versions.push(it.VersionNumber);
      token = out.NextToken;
    } while (token);
    return versions.sort((a, b) => b - a).map(String);
  }
}
