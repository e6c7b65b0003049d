/** POST /logs/{logId}/records */
import { httpHandler, parse } from '../http/api';
import { Append, LOG_ID } from '../http/schemas';
import { defaultDeps, lazy, type Deps } from '../http/deps';
import { LogService } from '../services/logs';
import { logNotFound } from '../domain/errors';

export function makeHandler(d: Deps) {
  const logs = new LogService(d.store, d.clock);
  return httpHandler('append', d, {
    'POST /logs/{logId}/records': async (ctx) => {
      const logId = ctx.path.logId ?? '';
      if (!LOG_ID.test(logId)) throw logNotFound(logId);
      const { limits } = ctx.config;
      const b = parse(Append, ctx.body);
      const out = await logs.append(ctx.principal, logId, b.records, {
        limits,
        requestBytes: ctx.bodyBytes,
        idempotencyKey: b.idempotencyKey,
        deadlineMs: ctx.deadlineMs,
      });
      return { status: 201, body: out };
    },
  });
}

export const handler = lazy(() => makeHandler(defaultDeps()));
