/** POST /logs/{logId}/sessions, GET /sessions/{id}, GET /sessions/{id}/dead-letters, DELETE /sessions/{id} */
import { httpHandler, parse } from '../http/api';
import { CreateSession, LOG_ID, SESSION_ID } from '../http/schemas';
import { hostDeps, lambdaDeps, lazy, type Deps } from '../http/deps';
import { SessionService } from '../services/sessions';
import { logNotFound, sessionNotFound } from '../domain/errors';

export const sessionIdOf = (path: Record<string, string>): string => {
  const id = path.sessionId ?? '';
  if (!SESSION_ID.test(id)) throw sessionNotFound(id);
  return id;
};

export function makeHandler(d: Deps) {
  const sessions = new SessionService(d.store, d.clock);
  return httpHandler('sessions', d, {
    'POST /logs/{logId}/sessions': async (ctx) => {
      const logId = ctx.path.logId ?? '';
      if (!LOG_ID.test(logId)) throw logNotFound(logId);
      const b = parse(CreateSession, ctx.body);
      const { limits } = ctx.config;
      const out = await sessions.create(ctx.principal, logId, b.start, {
        ackTimeoutSeconds: b.ackTimeoutSeconds ?? limits.defaultAckTimeoutSeconds,
        maxInFlight: b.maxInFlight,
        maxDeliveries: b.maxDeliveries,
        idleTimeoutSeconds: b.idleTimeoutSeconds,
      });
      return { status: 201, body: { ...out, start: b.start } };
    },
    'GET /sessions/{sessionId}': async (ctx) => ({
      status: 200,
      body: await sessions.describe(ctx.principal, sessionIdOf(ctx.path)),
    }),
    'GET /sessions/{sessionId}/dead-letters': async (ctx) => ({
      status: 200,
      body: { ranges: await sessions.deadLetters(ctx.principal, sessionIdOf(ctx.path)) },
    }),
    'DELETE /sessions/{sessionId}': async (ctx) => {
      await sessions.delete(ctx.principal, sessionIdOf(ctx.path));
      return { status: 204 };
    },
  });
}

export const handler = lazy(() => makeHandler(lambdaDeps('sessions', hostDeps)));
