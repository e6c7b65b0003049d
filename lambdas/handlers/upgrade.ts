/**
 * The deploy-time upgrade (not behind the HTTP API). A CloudFormation trigger
 * (lib/logrelay-stack.ts) invokes it during every deployment that changes it, after the admin
 * and bake functions have their new code and before the data routes' functions get theirs. It
 * fills in the rollout item's missing contents from AppConfig (services/bakes.ts,
 * backfillRolloutContents), so that hosts, which serve from the rollout item alone, can serve a
 * state a deployment from before contents were kept left behind. Nothing missing: one read, no
 * write. An error fails the trigger, and CloudFormation rolls the deployment back.
 */
import { logger } from '../http/api';
import { upgradeDepsOf, lambdaDeps, lazy, type UpgradeDeps } from '../http/deps';
import type { BackfillOutcome } from '../services/bakes';

export function makeHandler(d: UpgradeDeps) {
  // The trigger invokes with no payload; there is nothing to read from the event.
  return async (): Promise<BackfillOutcome> => {
    const out = await d.bakes.backfillContents();
    logger.info('rollout contents backfill', { ...out });
    return out;
  };
}

export const handler = lazy(() => makeHandler(lambdaDeps('upgrade', upgradeDepsOf)));
