/**
 * Every function's makeHandler, by function name, for the hosts that run several functions in
 * one process (the local runtime, the test harness). Flow: `startFunction(fn, env, clients)`
 * checks the function's environment (function-env.ts), builds its deps with the one builder
 * Lambda uses (http/deps.ts, buildDeps) and hands them to the function's own makeHandler, which
 * takes exactly the type the builder returns for it. In Lambda each handler module does the same
 * for itself (`lazy(() => makeHandler(lambdaDeps(fn)))`); no handler module imports this file, so
 * no function's bundle carries the others.
 */
import type { BackfillOutcome, BakeStep, BakeTask } from './services/bakes';
import type { httpHandler } from './http/api';
import { buildDeps, type FunctionClients, type FunctionDeps } from './http/deps';
import { functionEnv, type AnyFunctionName } from './function-env';
import { makeHandler as logs } from './handlers/logs';
import { makeHandler as append } from './handlers/append';
import { makeHandler as sessions } from './handlers/sessions';
import { makeHandler as receive } from './handlers/receive';
import { makeHandler as leases } from './handlers/leases';
import { makeHandler as admin } from './handlers/admin';
import { makeHandler as bake } from './handlers/bake';
import { makeHandler as upgrade } from './handlers/upgrade';

/** A function behind the HTTP API: a payload-2.0 event in, its result out. */
export type HttpFunctionHandler = ReturnType<typeof httpHandler>;

/** What each function's handler is. */
export interface FunctionHandlers {
  logs: HttpFunctionHandler;
  append: HttpFunctionHandler;
  sessions: HttpFunctionHandler;
  receive: HttpFunctionHandler;
  leases: HttpFunctionHandler;
  admin: HttpFunctionHandler;
  /** One step of the bake state machine. */
  bake: (event: BakeTask) => Promise<BakeStep>;
  /** The deploy-time upgrade (the trigger sends no payload). */
  upgrade: () => Promise<BackfillOutcome>;
}

/** Each function's makeHandler: it takes what buildDeps returns for that function, no cast. */
export const MAKE_HANDLER: { [F in AnyFunctionName]: (deps: FunctionDeps[F]) => FunctionHandlers[F] } = {
  logs,
  append,
  sessions,
  receive,
  leases,
  admin,
  bake,
  upgrade,
};

/** The module Lambda runs for `fn` (the `logrelay:entry` metadata the stack writes: lib/service-function.ts). */
export const entryOf = (fn: AnyFunctionName): string => `lambdas/handlers/${fn}.ts`;

/**
 * Function `fn` as a cold start builds it: its environment checked (a MissingEnvironmentError
 * naming each missing variable), its deps built over `clients`, its handler made.
 */
export function startFunction<F extends AnyFunctionName>(
  fn: F,
  env: Readonly<Record<string, string | undefined>>,
  clients: FunctionClients[F],
): FunctionHandlers[F] {
  return MAKE_HANDLER[fn](buildDeps(fn, functionEnv(fn, env), clients));
}
