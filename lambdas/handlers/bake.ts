/**
 * The bake state machine's task function (not behind the HTTP API): one invocation per step,
 * `{ action, bakeId, from?, ... }` in, the step's outcome out, with `events` (the transitions
 * recorded since the history cursor `from`, in order, for the machine to publish) and
 * `historyLength` (the next step's `from`). Errors propagate to Step Functions, whose Retry and
 * Catch decide what happens next.
 */
import { logger } from '../http/api';
import { bakeDeps, lambdaDeps, lazy, type BakeDeps } from '../http/deps';
import type { BakeStep, BakeTask } from '../services/bakes';

export function makeHandler(d: BakeDeps) {
  return async (event: BakeTask): Promise<BakeStep> => {
    const out = await d.bakes.task(event);
    logger.info('bake task', { action: event.action, bakeId: event.bakeId, out });
    return out;
  };
}

export const handler = lazy(() => makeHandler(lambdaDeps('bake', bakeDeps)));
