#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { LogrelayStack, reservedConcurrencyFromContext } from '../lib/logrelay-stack';

const app = new App();
// `-c reservedConcurrency=none` for an account whose Lambda concurrency quota is too small to
// reserve any (below 302), or e.g. `-c 'reservedConcurrency={"receive":500}'`.
const reservedConcurrency = reservedConcurrencyFromContext(app.node.tryGetContext('reservedConcurrency'));
new LogrelayStack(app, 'Logrelay', {
  description: 'Logrelay: serverless log delivery to stateless workers (shared/API.md)',
  // Environment-agnostic: account and region come from the deploying credentials.
  ...(reservedConcurrency ? { reservedConcurrency } : {}),
});
// cdk-nag 3 is a CDK policy-validation plugin (v2's Aspects.of(app).add(...) is gone): an
// unacknowledged error fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
