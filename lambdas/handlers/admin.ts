/**
 * Admin routes: GET /configs, POST /configs/{profile}/versions, GET /configs/{profile}/versions/{version}
 * (with ?diff=N, what it changes against version N: services/config-diff.ts), POST /bakes,
 * GET /bakes/{bakeId} (with the service's time scale), POST /bakes/{bakeId}/abort
 */
import { httpHandler, parse } from '../http/api';
import { CreateVersion, StartBake } from '../http/schemas';
import { versionWithDiff } from '../services/config-diff';
import { adminDeps, lambdaDeps, lazy, type AdminDeps } from '../http/deps';

export function makeHandler(d: AdminDeps) {
  const bakes = d.bakes;
  const timeScale = d.timeScale ?? 1;
  return httpHandler('admin', d, {
    'GET /configs': async () => ({ status: 200, body: await bakes.listConfigs() }),
    'POST /configs/{profile}/versions': async (ctx) => {
      const b = parse(CreateVersion, ctx.body);
      return { status: 201, body: await bakes.createVersion(ctx.path.profile ?? '', b.content, b.description) };
    },
    'GET /configs/{profile}/versions/{version}': async (ctx) => ({
      status: 200,
      body: await versionWithDiff(bakes, ctx.path.profile ?? '', ctx.path.version ?? '', ctx.query.diff),
    }),
    'POST /bakes': async (ctx) => {
      const { changes, ...settings } = parse(StartBake, ctx.body);
      return { status: 202, body: await bakes.startBake(changes, settings) };
    },
    'GET /bakes': async (ctx) => ({ status: 200, body: await d.bakeList.list(ctx.query) }),
    'GET /bakes/{bakeId}': async (ctx) => ({ status: 200, body: { ...(await bakes.describe(ctx.path.bakeId ?? '')), timeScale } }),
    'POST /bakes/{bakeId}/abort': async (ctx) => {
      await bakes.abort(ctx.path.bakeId ?? '');
      return { status: 202, body: { bakeId: ctx.path.bakeId, abortRequested: true } };
    },
  });
}

export const handler = lazy(() => makeHandler(lambdaDeps('admin', adminDeps)));
