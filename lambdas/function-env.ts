/**
 * What each function needs from its environment, checked once, at cold start. Flow: the stack
 * (lib/logrelay-stack.ts) sets each function's variables: the physical name of every table
 * FUNCTION_ACCESS (routes.ts) grants it (the envVar of its TABLES entry), the AppConfig ids for
 * the admin, bake and upgrade functions, and the bake state machine's ARN for the admin function.
 * `functionEnv(fn, env)` requires exactly those of `fn` (zod: present and not empty) and returns
 * them typed, or throws MissingEnvironmentError naming each missing variable and what it holds.
 * A function is never asked for a variable it does not use: the data routes' functions need no
 * AppConfig id and no state machine ARN. test/function-env.test.ts checks every function of the
 * synthesized stack against this, so a stack that stops setting a variable fails there, not as a
 * storage error in production. Nothing here holds an AWS client.
 */
import { z } from 'zod';
import type { AppConfigIds } from './ports';
import { FUNCTION_ACCESS, type FunctionName, type TaskFunctionName } from './routes';
import { TABLES, type TableDef } from './tables';

export type AnyFunctionName = FunctionName | TaskFunctionName;
/** Every function of the stack, routes' first (the order of lib/logrelay-stack.ts). */
export const FUNCTION_NAMES = [
  'logs',
  'append',
  'sessions',
  'receive',
  'leases',
  'admin',
  'bake',
  'upgrade',
] as const satisfies readonly AnyFunctionName[];
/** The functions that serve data routes (and read no AppConfig, start no bake). */
export type DataFunctionName = Exclude<FunctionName, 'admin'>;

type TableKey = Lowercase<TableDef['id']>;

/**
 * Physical table names, by table. A table the function is not granted (FUNCTION_ACCESS) is ''
 * here, as its role could not reach it anyway: no code path of that function uses it.
 */
export type TableNamesEnv = Record<TableKey, string>;

/** Every function: its tables. */
export interface BaseEnv {
  fn: AnyFunctionName;
  tables: TableNamesEnv;
}
/** The control path (admin, bake, upgrade): the AppConfig application and profiles too. */
export interface AppConfigEnv extends BaseEnv {
  appConfig: AppConfigIds;
}
/** The admin function starts bakes: the state machine too. */
export interface AdminEnv extends AppConfigEnv {
  bakeStateMachineArn: string;
}

/** What each function's checked environment holds. */
export interface FunctionEnvs {
  logs: BaseEnv;
  append: BaseEnv;
  sessions: BaseEnv;
  receive: BaseEnv;
  leases: BaseEnv;
  admin: AdminEnv;
  bake: AppConfigEnv;
  upgrade: AppConfigEnv;
}

/** One environment variable: its name and, for the error message, what it holds. */
export interface EnvVar {
  name: string;
  what: string;
}

const TABLE_VARS = Object.fromEntries(
  TABLES.map((d) => [d.id.toLowerCase(), { name: d.envVar, what: `the ${d.id} table name` }]),
) as Record<TableKey, EnvVar>;
const APPCONFIG_VARS = {
  applicationId: { name: 'APPCONFIG_APPLICATION_ID', what: 'the AppConfig application id' },
  delivery: { name: 'APPCONFIG_DELIVERY_PROFILE_ID', what: 'the AppConfig delivery profile id' },
  limits: { name: 'APPCONFIG_LIMITS_PROFILE_ID', what: 'the AppConfig limits profile id' },
} as const satisfies Record<string, EnvVar>;
const STATE_MACHINE_VAR = { name: 'BAKE_STATE_MACHINE_ARN', what: "the bake state machine's ARN" } as const satisfies EnvVar;

/** The variables besides table names, by function (the stack sets the same: lib/logrelay-stack.ts). */
const EXTRA_VARS: Record<AnyFunctionName, readonly EnvVar[]> = {
  logs: [],
  append: [],
  sessions: [],
  receive: [],
  leases: [],
  admin: [...Object.values(APPCONFIG_VARS), STATE_MACHINE_VAR],
  bake: Object.values(APPCONFIG_VARS),
  upgrade: Object.values(APPCONFIG_VARS),
};

const grantedTables = (fn: AnyFunctionName): TableKey[] =>
  (Object.keys(FUNCTION_ACCESS[fn]) as TableKey[]).filter((k) => FUNCTION_ACCESS[fn][k] !== undefined);

/** The variables `fn` cannot start without, tables first. */
export function requiredEnv(fn: AnyFunctionName): EnvVar[] {
  return [...grantedTables(fn).map((k) => TABLE_VARS[k]), ...EXTRA_VARS[fn]];
}

/** A function's environment lacks variables it needs: says which, what each holds, and how to fix it. */
export class MissingEnvironmentError extends Error {
  constructor(
    readonly fn: AnyFunctionName,
    /** The variables not set, or set to '' (in requiredEnv's order). */
    readonly missing: readonly (EnvVar & { empty: boolean })[],
  ) {
    const part = (vars: readonly EnvVar[], state: string): string[] => {
      if (!vars.length) return [];
      const each = vars.map((v) => `${v.name} (${v.what})`);
      const list = each.length === 1 ? each[0] : `${each.slice(0, -1).join(', ')} and ${each.at(-1)}`;
      return [`environment variable${each.length === 1 ? '' : 's'} ${list} ${each.length === 1 ? 'is' : 'are'} ${state}`];
    };
    const what = [
      ...part(
        missing.filter((v) => !v.empty),
        'not set',
      ),
      ...part(
        missing.filter((v) => v.empty),
        'empty',
      ),
    ].join('; ');
    super(`Logrelay function '${fn}' cannot start: ${what}. Deploy with cdk deploy, which sets ${missing.length === 1 ? 'it' : 'them'}.`);
    this.name = 'MissingEnvironmentError';
  }
}

/** An environment: process.env in Lambda, a template function's variables in the local runtime. */
type Env = Readonly<Record<string, string | undefined>>;

/**
 * The environment of `fn`, checked: every variable it needs present and not empty, or a
 * MissingEnvironmentError naming them all (not just the first). Variables it does not need are
 * ignored, whatever they hold.
 */
export function checkedEnv(fn: AnyFunctionName, env: Env): { tables: TableNamesEnv; vars: Record<string, string> } {
  const required = requiredEnv(fn);
  const schema = z.object(Object.fromEntries(required.map((v) => [v.name, z.string().min(1)])));
  const parsed = schema.safeParse(Object.fromEntries(required.map((v) => [v.name, env[v.name]])));
  if (!parsed.success) {
    const bad = new Set(parsed.error.issues.map((i) => String(i.path[0])));
    throw new MissingEnvironmentError(
      fn,
      required.filter((v) => bad.has(v.name)).map((v) => ({ ...v, empty: env[v.name] === '' })),
    );
  }
  const vars = parsed.data as Record<string, string>;
  const granted = new Set(grantedTables(fn));
  const tables = Object.fromEntries(
    (Object.keys(TABLE_VARS) as TableKey[]).map((k) => [k, granted.has(k) ? vars[TABLE_VARS[k].name]! : '']),
  ) as TableNamesEnv;
  return { tables, vars };
}

const base = (fn: AnyFunctionName, env: Env): BaseEnv => ({ fn, tables: checkedEnv(fn, env).tables });
/** The control path's environment, and the checked variables (for the admin function's ARN). */
function withAppConfig(fn: AnyFunctionName, env: Env): [AppConfigEnv, Record<string, string>] {
  const { tables, vars } = checkedEnv(fn, env);
  const appConfig: AppConfigIds = {
    applicationId: vars[APPCONFIG_VARS.applicationId.name]!,
    profiles: { delivery: vars[APPCONFIG_VARS.delivery.name]!, limits: vars[APPCONFIG_VARS.limits.name]! },
  };
  return [{ fn, tables, appConfig }, vars];
}

const READERS: { [F in AnyFunctionName]: (env: Env) => FunctionEnvs[F] } = {
  logs: (env) => base('logs', env),
  append: (env) => base('append', env),
  sessions: (env) => base('sessions', env),
  receive: (env) => base('receive', env),
  leases: (env) => base('leases', env),
  admin: (env) => {
    const [checked, vars] = withAppConfig('admin', env);
    return { ...checked, bakeStateMachineArn: vars[STATE_MACHINE_VAR.name]! };
  },
  bake: (env) => withAppConfig('bake', env)[0],
  upgrade: (env) => withAppConfig('upgrade', env)[0],
};

/** The checked environment of `fn` (Lambda: process.env at cold start; local runtime: the template's). */
export function functionEnv<F extends AnyFunctionName>(fn: F, env: Env): FunctionEnvs[F] {
  return READERS[fn](env);
}
