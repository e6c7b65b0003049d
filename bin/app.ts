#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { LogrelayStack } from '../lib/logrelay-stack';

const app = new App();
new LogrelayStack(app, 'Logrelay', {
  description: 'Logrelay: serverless log delivery to stateless workers (shared/API.md)',
  // Environment-agnostic: account and region come from the deploying credentials.
});
// cdk-nag 3 is a CDK policy-validation plugin (v2's Aspects.of(app).add(...) is gone): an
// unacknowledged error fails `cdk synth`.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
