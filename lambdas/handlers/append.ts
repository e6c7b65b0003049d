/** POST /logs/{logId}/records */
import { httpHandler, parse } from '../http/api';
import { Append, LOG_ID } from '../http/schemas';
import { hostDeps, lambdaDeps, lazy, type Deps } from '../http/deps';
import { LogService } from '../services/logs';
import { logNotFound } from '../domain/errors';
import { recordDataTexts } from '../domain/json-text';

export function makeHandler(d: Deps) {
  const logs = new LogService(d.store, d.clock);
  return httpHandler('append', d, {
    'POST /logs/{logId}/records': async (ctx) => {
      const logId = ctx.path.logId ?? '';
      if (!LOG_ID.test(logId)) throw logNotFound(logId);
      const { limits } = ctx.config;
      const b = parse(Append, ctx.body);
      // Each record's data is stored as the producer wrote it (json-text.ts), not as the parsed
      // value serialized again, which would round numbers without an exact double.
      const texts = recordDataTexts(ctx.bodyText);
      const records = b.records.map((r, i) => {
        const t = texts?.[i];
        if (t === undefined || texts!.length !== b.records.length)
          throw new Error(`the body's text disagrees with its parsed value at records[${i}]`);
        return { ...r, dataJson: t.text, dataDepth: t.depth };
      });
      const out = await logs.append(ctx.principal, logId, records, {
        limits,
        requestBytes: ctx.bodyBytes,
        idempotencyKey: b.idempotencyKey,
        deadlineMs: ctx.deadlineMs,
      });
      return { status: 201, body: out };
    },
  });
}

export const handler = lazy(() => makeHandler(lambdaDeps('append', hostDeps)));
