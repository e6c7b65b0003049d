/**
 * The bake's EventBridge events, as a state machine step: `bakeEvent(scope, id, props)` is a
 * Step Functions task (the optimized integration, `arn:aws:states:::events:putEvents`) that puts
 * one event on the account's default event bus with source `logrelay.bake`, the given
 * detail-type, and as detail the JSON object found at `detailPath` in the state's input.
 *
 * Least privilege: the state machine's role gets `events:PutEvents` on the default bus's ARN
 * only, and only for events whose source is `logrelay.bake` (condition `events:source`), so the
 * machine can neither publish to another bus nor pose as another source. CDK's own
 * EventBridgePutEvents grants the bus without the condition; the subclass below adds it to the
 * very statement CDK registers, so no second, wider statement exists.
 *
 * The step passes its input through unchanged by default (`resultPath` DISCARD): publishing is a
 * side effect, and the bake's state after it is the state before it. Step Functions fails the
 * task with `EventBridge.FailedEntry` when EventBridge refuses the entry; whether that retries,
 * is caught or fails the bake is the caller's choice (`addRetry`, `addCatch`).
 */
import type { Construct } from 'constructs';
import { Token } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';

/** The `source` of every event the bake publishes; rules match on it. */
export const BAKE_EVENT_SOURCE = 'logrelay.bake';

export interface BakeEventProps {
  /**
   * The event's `detail-type`: one per transition, e.g. `PhaseApproved`; at most 128 characters
   * (EventBridge's limit). Or `sfn.JsonPath.stringAt('$.type')` to take it from the input, for a
   * step inside a Map over a task's transitions (one event each, in order with maxConcurrency 1).
   */
  readonly detailType: string;
  /** JSONPath to the event's detail in the state's input: a JSON object (bake id, profile, version, verdict, reason...). */
  readonly detailPath: string;
  /**
   * Where the task's output (PutEvents' answer: the event id) goes in the state.
   * @default sfn.JsonPath.DISCARD (the state's input passes through unchanged)
   */
  readonly resultPath?: string;
  /**
   * A comment on the state.
   * @default - none
   */
  readonly comment?: string;
  /**
   * How long the PutEvents call may take before the task fails with States.Timeout (for the
   * caller's Catch: a hung call must not hold up what comes after it).
   * @default - none (Step Functions' own)
   */
  readonly taskTimeout?: sfn.Timeout;
}

/** EventBridgePutEvents whose policy statement is conditioned on the event's source. */
class BakeEventTask extends tasks.EventBridgePutEvents {
  constructor(scope: Construct, id: string, props: tasks.EventBridgePutEventsProps, source: string) {
    super(scope, id, props);
    // CDK builds exactly one statement (events:PutEvents on the entries' buses) in its
    // constructor and registers it when the state machine is built: conditioned here, before that.
    for (const statement of this.taskPolicies ?? []) statement.addCondition('StringEquals', { 'events:source': source });
  }
}

/** A state machine step that publishes one bake event on the default bus (see the top of this file). */
export function bakeEvent(scope: Construct, id: string, props: BakeEventProps): tasks.EventBridgePutEvents {
  if (!Token.isUnresolved(props.detailType) && (props.detailType.length < 1 || props.detailType.length > 128)) {
    throw new Error(`bakeEvent ${id}: detailType must be 1..128 characters (EventBridge's limit); it is ${props.detailType.length}.`);
  }
  if (!props.detailPath.startsWith('$'))
    throw new Error(`bakeEvent ${id}: detailPath must be a JSONPath ($.…); it is '${props.detailPath}'.`);
  return new BakeEventTask(
    scope,
    id,
    {
      entries: [{ source: BAKE_EVENT_SOURCE, detailType: props.detailType, detail: sfn.TaskInput.fromJsonPathAt(props.detailPath) }],
      resultPath: props.resultPath ?? sfn.JsonPath.DISCARD,
      ...(props.comment !== undefined ? { comment: props.comment } : {}),
      ...(props.taskTimeout !== undefined ? { taskTimeout: props.taskTimeout } : {}),
    },
    BAKE_EVENT_SOURCE,
  );
}
