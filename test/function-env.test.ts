/**
 * The cold-start check of each function's environment (lambdas/function-env.ts) and the stack
 * it guards against: a missing or empty variable fails with a sentence naming every one of them
 * and the function; only what a function uses is required of it; every function of the
 * synthesized stack (local/template.ts synthesizes it without bundling) has what its check
 * requires and nothing it does not read, so a stack/code drift fails here; and a Lambda handler
 * whose environment lacks a variable fails its first invocation with that sentence, before any
 * client or storage call.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FUNCTION_NAMES, functionEnv, MissingEnvironmentError, requiredEnv, type AnyFunctionName } from '../lambdas/function-env';
import { entryOf } from '../lambdas/functions';
import { FUNCTION_ACCESS } from '../lambdas/routes';
import { TABLES } from '../lambdas/tables';
import { synthTemplate, type Template } from '../local/template';

/** Every variable any function needs, each set. */
const FULL: Record<string, string> = {
  LOGS_TABLE: 'logs-t',
  RECORDS_TABLE: 'records-t',
  SESSIONS_TABLE: 'sessions-t',
  CONTROL_TABLE: 'control-t',
  APPCONFIG_APPLICATION_ID: 'app1',
  APPCONFIG_DELIVERY_PROFILE_ID: 'prof-d',
  APPCONFIG_LIMITS_PROFILE_ID: 'prof-l',
  BAKE_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:bake',
};
const without = (...names: string[]): Record<string, string> =>
  Object.fromEntries(Object.entries(FULL).filter(([k]) => !names.includes(k)));

/** What functionEnv throws for `fn` over `env` (fails the test if it does not throw). */
function failure(fn: AnyFunctionName, env: Record<string, string | undefined>): MissingEnvironmentError {
  try {
    functionEnv(fn, env);
  } catch (e) {
    expect(e).toBeInstanceOf(MissingEnvironmentError);
    return e as MissingEnvironmentError;
  }
  throw new Error(`functionEnv('${fn}') accepted ${JSON.stringify(env)}`);
}

describe('the environment check', () => {
  it('names the one missing variable, what it holds, the function, and the fix', () => {
    const e = failure('receive', without('SESSIONS_TABLE'));
    expect(e.message).toBe(
      "Logrelay function 'receive' cannot start: environment variable SESSIONS_TABLE (the Sessions table name) is not set. Deploy with cdk deploy, which sets it.",
    );
    expect(e.fn).toBe('receive');
    expect(e.missing.map((v) => v.name)).toEqual(['SESSIONS_TABLE']);
  });

  it('names every missing variable at once, not just the first', () => {
    const e = failure('admin', without('CONTROL_TABLE', 'APPCONFIG_LIMITS_PROFILE_ID', 'BAKE_STATE_MACHINE_ARN'));
    expect(e.missing.map((v) => v.name)).toEqual(['CONTROL_TABLE', 'APPCONFIG_LIMITS_PROFILE_ID', 'BAKE_STATE_MACHINE_ARN']);
    expect(e.message).toBe(
      "Logrelay function 'admin' cannot start: environment variables CONTROL_TABLE (the Control table name), APPCONFIG_LIMITS_PROFILE_ID (the AppConfig limits profile id) and BAKE_STATE_MACHINE_ARN (the bake state machine's ARN) are not set. Deploy with cdk deploy, which sets them.",
    );
    // An empty environment: everything the function needs, in order.
    expect(failure('append', {}).missing.map((v) => v.name)).toEqual(['LOGS_TABLE', 'RECORDS_TABLE', 'CONTROL_TABLE']);
  });

  it('counts an empty variable as missing, and says it is empty', () => {
    const e = failure('leases', { ...FULL, CONTROL_TABLE: '' });
    expect(e.message).toBe(
      "Logrelay function 'leases' cannot start: environment variable CONTROL_TABLE (the Control table name) is empty. Deploy with cdk deploy, which sets it.",
    );
    const both = failure('leases', { ...without('SESSIONS_TABLE'), CONTROL_TABLE: '' });
    expect(both.message).toContain(
      'environment variable SESSIONS_TABLE (the Sessions table name) is not set; environment variable CONTROL_TABLE (the Control table name) is empty.',
    );
  });

  it('with everything present, returns the function its tables (others empty), and the control path its AppConfig ids and state machine', () => {
    expect(functionEnv('leases', FULL)).toEqual({
      fn: 'leases',
      tables: { logs: '', records: '', sessions: 'sessions-t', control: 'control-t' },
    });
    expect(functionEnv('receive', FULL).tables).toEqual({
      logs: 'logs-t',
      records: 'records-t',
      sessions: 'sessions-t',
      control: 'control-t',
    });
    const ids = { applicationId: 'app1', profiles: { delivery: 'prof-d', limits: 'prof-l' } };
    expect(functionEnv('admin', FULL)).toEqual({
      fn: 'admin',
      tables: { logs: '', records: '', sessions: '', control: 'control-t' },
      appConfig: ids,
      bakeStateMachineArn: FULL.BAKE_STATE_MACHINE_ARN,
    });
    expect(functionEnv('bake', FULL)).toEqual({
      fn: 'bake',
      tables: { logs: '', records: '', sessions: '', control: 'control-t' },
      appConfig: ids,
    });
    expect(functionEnv('upgrade', FULL)).toEqual({ ...functionEnv('bake', FULL), fn: 'upgrade' });
  });

  it('requires of each function only what it uses: its granted tables; AppConfig ids for admin, bake and upgrade; the state machine for admin', () => {
    for (const fn of FUNCTION_NAMES) {
      const tables = TABLES.filter((d) => FUNCTION_ACCESS[fn][d.id.toLowerCase() as 'logs'] !== undefined).map((d) => d.envVar);
      const appConfig = ['admin', 'bake', 'upgrade'].includes(fn)
        ? ['APPCONFIG_APPLICATION_ID', 'APPCONFIG_DELIVERY_PROFILE_ID', 'APPCONFIG_LIMITS_PROFILE_ID']
        : [];
      const arn = fn === 'admin' ? ['BAKE_STATE_MACHINE_ARN'] : [];
      expect(
        requiredEnv(fn).map((v) => v.name),
        fn,
      ).toEqual([...tables, ...appConfig, ...arn]);
      // Exactly those: the function starts with them alone.
      expect(() => functionEnv(fn, Object.fromEntries(requiredEnv(fn).map((v) => [v.name, 'x'])))).not.toThrow();
    }
    // A data route's function starts with no AppConfig id and no state machine.
    expect(() =>
      functionEnv(
        'sessions',
        without('APPCONFIG_APPLICATION_ID', 'APPCONFIG_DELIVERY_PROFILE_ID', 'APPCONFIG_LIMITS_PROFILE_ID', 'BAKE_STATE_MACHINE_ARN'),
      ),
    ).not.toThrow();
  });
});

describe('the synthesized stack against the check', () => {
  /** Each function's environment in the template, intrinsic values (Ref, GetAtt) as their JSON text: set, not empty. */
  let envs: Map<AnyFunctionName, Record<string, string>>;
  /** Variables every function gets that no function's code reads through the check. */
  const RUNTIME_VARS = new Set(['POWERTOOLS_SERVICE_NAME', 'POWERTOOLS_METRICS_NAMESPACE', 'NODE_OPTIONS']);

  beforeAll(() => {
    const template: Template = synthTemplate();
    envs = new Map();
    for (const r of Object.values(template.Resources) as {
      Type: string;
      Metadata?: Record<string, unknown>;
      Properties?: { Environment?: { Variables?: Record<string, unknown> } };
    }[]) {
      if (r.Type !== 'AWS::Lambda::Function') continue;
      const fn = FUNCTION_NAMES.find((n) => entryOf(n) === r.Metadata?.['logrelay:entry']);
      if (!fn) continue; // not one of ours (CDK's trigger provider)
      expect(envs.has(fn), `two functions of the template run ${fn}`).toBe(false);
      const vars = r.Properties?.Environment?.Variables ?? {};
      envs.set(fn, Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)])));
    }
  }, 120_000);

  it('has every function of the service', () => {
    expect([...envs.keys()].sort()).toEqual([...FUNCTION_NAMES].sort());
  });

  it.each([...FUNCTION_NAMES])("sets everything function '%s' needs, none of it empty", (fn) => {
    expect(() => functionEnv(fn, envs.get(fn)!)).not.toThrow();
  });

  it.each([...FUNCTION_NAMES])("sets function '%s' nothing its check does not know (no variable left over from a removed use)", (fn) => {
    const known = new Set(requiredEnv(fn).map((v) => v.name));
    expect(Object.keys(envs.get(fn)!).filter((k) => !known.has(k) && !RUNTIME_VARS.has(k))).toEqual([]);
  });

  it('would fail on a drift: a function of the template without one of its variables', () => {
    const receive = { ...envs.get('receive')! };
    delete receive.SESSIONS_TABLE;
    expect(failure('receive', receive).missing.map((v) => v.name)).toEqual(['SESSIONS_TABLE']);
    const admin = { ...envs.get('admin')!, BAKE_STATE_MACHINE_ARN: '' };
    expect(failure('admin', admin).missing.map((v) => v.name)).toEqual(['BAKE_STATE_MACHINE_ARN']);
  });
});

describe('a Lambda handler at cold start', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('fails its first invocation with the sentence, before making any client, and again on the next', async () => {
    for (const k of Object.keys(FULL)) vi.stubEnv(k, undefined);
    vi.stubEnv('LOGS_TABLE', 'logs-t');
    vi.stubEnv('RECORDS_TABLE', '');
    const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
    const send = vi.spyOn(DynamoDBClient.prototype, 'send');
    const { handler } = await import('../lambdas/handlers/receive');
    const expected =
      "Logrelay function 'receive' cannot start: environment variables SESSIONS_TABLE (the Sessions table name) and CONTROL_TABLE (the Control table name) are not set; environment variable RECORDS_TABLE (the Records table name) is empty. Deploy with cdk deploy, which sets them.";
    await expect(handler({} as never, {} as never)).rejects.toThrow(expected);
    await expect(handler({} as never, {} as never)).rejects.toBeInstanceOf(MissingEnvironmentError);
    expect(send).not.toHaveBeenCalled();
    send.mockRestore();
  });
});
