/**
 * The two config profiles that drive the service, their defaults and ranges (shared/API.md).
 * Handlers receive one effective `ConfigSet` per request.
 */
export interface DeliveryConfig {
  maxBatchRecords: number;
  maxBatchBytes: number;
  longPollIntervalMs: number;
}

export interface LimitsConfig {
  maxRecordsPerAppend: number;
  maxRecordBytes: number;
  maxRequestBytes: number;
  defaultAckTimeoutSeconds: number;
}

export interface ConfigSet {
  delivery: DeliveryConfig;
  limits: LimitsConfig;
}

export const DEFAULT_CONFIG: ConfigSet = {
  delivery: { maxBatchRecords: 100, maxBatchBytes: 1_048_576, longPollIntervalMs: 250 },
  limits: { maxRecordsPerAppend: 500, maxRecordBytes: 262_144, maxRequestBytes: 1_048_576, defaultAckTimeoutSeconds: 30 },
};

/** Where a handler gets the config set for a request keyed by `key` (log or session id). */
export interface ConfigProvider {
  forKey(key: string): Promise<ConfigSet>;
}

export const staticConfig = (config: ConfigSet = DEFAULT_CONFIG): ConfigProvider => ({
  forKey: async () => config,
});
