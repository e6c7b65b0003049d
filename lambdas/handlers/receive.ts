/** POST /sessions/{sessionId}/receive */
import { httpHandler, metrics, parse } from '../http/api';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { Receive } from '../http/schemas';
import { hostDeps, lambdaDeps, lazy, type Deps } from '../http/deps';
import { SessionService, type ReceiveStats } from '../services/sessions';
import { sessionIdOf } from './sessions';
import { selectionOf } from '../domain/ranges';
import { receivedJson } from '../domain/records';

export function makeHandler(d: Deps) {
  const sessions = new SessionService(d.store, d.clock);
  return httpHandler('receive', d, {
    'POST /sessions/{sessionId}/receive': async (ctx) => {
      const id = sessionIdOf(ctx.path);
      const b = parse(Receive, ctx.body);
      const { delivery } = ctx.config;
      // A long poll must end before the function's own deadline.
      const waitSeconds = Math.max(0, Math.min(b.waitSeconds, Math.floor((ctx.deadlineMs - d.clock.now()) / 1000) - 2));
      const stats: ReceiveStats = { conflicts: 0, polls: 0, idleMs: 0 };
      const ack = b.ack ? selectionOf(b.ack.seqs, b.ack.ranges) : [];
      const { records, acked } = await sessions
        .receiveAndAck(ctx.principal, id, { maxRecords: b.maxRecords, waitSeconds, ack }, delivery, stats)
        .finally(() => {
          ctx.idleMs = stats.idleMs;
        });
      metrics.addMetric('ReceiveConflicts', MetricUnit.Count, stats.conflicts);
      metrics.addMetric('RecordsDelivered', MetricUnit.Count, records.length);
      // `acked` only when the request carried acks: the contract's response is unchanged otherwise.
      return { status: 200, json: `{"records":${receivedJson(records)}${b.ack ? `,"acked":${acked}` : ''}}` };
    },
  });
}

export const handler = lazy(() => makeHandler(lambdaDeps('receive', hostDeps)));
