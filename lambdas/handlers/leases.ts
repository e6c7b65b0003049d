/** POST /sessions/{sessionId}/ack, /nack, /extend */
import { httpHandler, parse } from '../http/api';
import { Ack, Extend, Nack } from '../http/schemas';
import { hostDeps, lambdaDeps, lazy, type Deps } from '../http/deps';
import { SessionService } from '../services/sessions';
import { selectionOf } from '../domain/ranges';
import { sessionIdOf } from './sessions';

export function makeHandler(d: Deps) {
  const sessions = new SessionService(d.store, d.clock);
  return httpHandler('leases', d, {
    'POST /sessions/{sessionId}/ack': async (ctx) => {
      const b = parse(Ack, ctx.body);
      const n = await sessions.ack(ctx.principal, sessionIdOf(ctx.path), selectionOf(b.seqs, b.ranges));
      return { status: 200, body: { acked: n } };
    },
    'POST /sessions/{sessionId}/nack': async (ctx) => {
      const b = parse(Nack, ctx.body);
      const n = await sessions.nack(ctx.principal, sessionIdOf(ctx.path), selectionOf(b.seqs, b.ranges), b.delaySeconds);
      return { status: 200, body: { released: n } };
    },
    'POST /sessions/{sessionId}/extend': async (ctx) => {
      const b = parse(Extend, ctx.body);
      const n = await sessions.extend(ctx.principal, sessionIdOf(ctx.path), selectionOf(b.seqs, b.ranges), b.seconds);
      return { status: 200, body: { extended: n } };
    },
  });
}

export const handler = lazy(() => makeHandler(lambdaDeps('leases', hostDeps)));
