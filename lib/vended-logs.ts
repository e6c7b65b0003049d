/**
 * Names of the log groups that AWS services deliver logs to on the stack's behalf (Step
 * Functions execution logs, API Gateway access logs).
 *
 * Such a service, when its log group's name does not start with `/aws/vendedlogs/`, adds that
 * group to the account's CloudWatch Logs resource policy, which is capped at 5,120 characters:
 * in an account with many such groups the deploy fails. Under `/aws/vendedlogs/` it does not
 * (https://docs.aws.amazon.com/step-functions/latest/dg/bp-cwl.html).
 *
 * A name under that prefix has to be given (CloudFormation's generated names cannot take a
 * prefix), so it is made unique per stack instance:
 * `/aws/vendedlogs/<service>/<stack name>-<purpose>-<the stack id's UUID>`.
 * - Another stack in the same account and region has another name and another UUID.
 * - The log groups are retained by default (RemovalPolicy.RETAIN): a stack deleted and created
 *   again under the same name gets a new UUID, so it never collides with the groups its
 *   predecessor left behind.
 * - A fixed physical name makes the log group non-replaceable: an update that would replace it
 *   (a new LogGroupClass, say) fails with "already exists". Change `purpose` in the same update
 *   (e.g. `bake` to `bake2`) to replace it.
 */
import { Fn, Stack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

export const VENDED_LOGS_PREFIX = '/aws/vendedlogs/';

/** `/aws/vendedlogs/<service>/<stack name>-<purpose>-<stack UUID>` (a token; resolved at deploy). */
export function vendedLogGroupName(scope: Construct, service: 'states' | 'apigateway', purpose: string): string {
  const stack = Stack.of(scope);
  // AWS::StackId is arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>.
  const stackUuid = Fn.select(2, Fn.split('/', stack.stackId));
  return `${VENDED_LOGS_PREFIX}${service}/${stack.stackName}-${purpose}-${stackUuid}`;
}
