/** POST /logs, GET /logs/{logId} */
import { httpHandler, parse } from '../http/api';
import { CreateLog, LOG_ID } from '../http/schemas';
import { hostDeps, lambdaDeps, lazy, type Deps } from '../http/deps';
import { LogService } from '../services/logs';
import { logNotFound } from '../domain/errors';

export function makeHandler(d: Deps) {
  const logs = new LogService(d.store, d.clock);
  return httpHandler('logs', d, {
    'POST /logs': async (ctx) => {
      const b = parse(CreateLog, ctx.body);
      return { status: 201, body: await logs.create(ctx.principal, b.logId, b.retentionHours) };
    },
    'GET /logs/{logId}': async (ctx) => {
      const logId = ctx.path.logId ?? '';
      if (!LOG_ID.test(logId)) throw logNotFound(logId);
      return { status: 200, body: await logs.describe(ctx.principal, logId) };
    },
  });
}

export const handler = lazy(() => makeHandler(lambdaDeps('logs', hostDeps)));
