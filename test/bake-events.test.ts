/**
 * lib/bake-events.ts in isolation (CDK assertions on a TEST-ONLY stack): the step it makes is the
 * optimized EventBridge PutEvents integration on the default bus with source logrelay.bake, and
 * the only permission it gives the state machine is events:PutEvents on the default bus's ARN,
 * conditioned on that source.
 */
import { describe, expect, it } from 'vitest';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { BAKE_EVENT_SOURCE, bakeEvent } from '../lib/bake-events';

type Json = any;

function synth(build: (stack: Stack) => sfn.IChainable): Record<string, Json> {
  const app = new App();
  const stack = new Stack(app, 'BakeEventsTest', { env: { account: '111122223333', region: 'eu-west-1' } });
  new sfn.StateMachine(stack, 'Machine', { definitionBody: sfn.DefinitionBody.fromChainable(build(stack)) });
  return Template.fromStack(stack).toJSON().Resources as Record<string, Json>;
}

const ofType = (res: Record<string, Json>, type: string) => Object.values(res).filter((r) => r.Type === type);

/** Every statement of the state machine role's policies that names an events: action. */
function eventStatements(res: Record<string, Json>): Json[] {
  return ofType(res, 'AWS::IAM::Policy')
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Json[])
    .filter((s) => [s.Action].flat().some((a: string) => a.startsWith('events:')));
}

function definitionOf(res: Record<string, Json>): Json {
  const sm = ofType(res, 'AWS::StepFunctions::StateMachine')[0]!;
  const parts = sm.Properties.DefinitionString['Fn::Join'][1] as Json[];
  // The definition is JSON text with the partition spliced in; no other token appears in it.
  return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'aws')).join(''));
}

describe('bakeEvent', () => {
  it('puts one event on the default bus: source logrelay.bake, the detail-type, the detail from the input; the input passes through', () => {
    const res = synth((stack) => bakeEvent(stack, 'PhaseApproved', { detailType: 'Bake Phase Approved', detailPath: '$.event' }));
    const state = definitionOf(res).States.PhaseApproved;
    expect(state.Type).toBe('Task');
    expect(state.Resource).toBe('arn:aws:states:::events:putEvents');
    expect(state.Parameters).toEqual({
      Entries: [{ 'Detail.$': '$.event', DetailType: 'Bake Phase Approved', Source: BAKE_EVENT_SOURCE }],
    });
    expect(state.ResultPath).toBeNull(); // DISCARD
    expect(BAKE_EVENT_SOURCE).toBe('logrelay.bake');
  });

  it('lets the state machine put events on the default bus only, and only with source logrelay.bake', () => {
    const res = synth((stack) => bakeEvent(stack, 'PhaseApproved', { detailType: 'Bake Phase Approved', detailPath: '$.event' }));
    const statements = eventStatements(res);
    expect(statements).toHaveLength(1);
    const [st] = statements;
    expect(st.Effect).toBe('Allow');
    expect(st.Action).toBe('events:PutEvents');
    expect(st.Resource).toEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':events:eu-west-1:111122223333:event-bus/default']],
    });
    expect(st.Condition).toEqual({ StringEquals: { 'events:source': 'logrelay.bake' } });
    // Nothing else in the role: the step needs no other permission.
    const all = ofType(res, 'AWS::IAM::Policy').flatMap((p) => p.Properties.PolicyDocument.Statement as Json[]);
    expect(all).toEqual([st]);
  });

  it('with several steps (one per transition), every permission stays conditioned: none is wider', () => {
    const res = synth((stack) =>
      bakeEvent(stack, 'Started', { detailType: 'Bake Started', detailPath: '$.event' })
        .next(bakeEvent(stack, 'Approved', { detailType: 'Bake Phase Approved', detailPath: '$.phaseEvent', resultPath: '$.published' }))
        .next(
          bakeEvent(stack, 'Ended', {
            detailType: 'Bake Ended',
            detailPath: '$.event',
            comment: 'the last one',
            taskTimeout: sfn.Timeout.duration(Duration.seconds(10)),
          }),
        ),
    );
    const statements = eventStatements(res);
    expect(statements.length).toBeGreaterThan(0);
    for (const st of statements) {
      expect([st.Action].flat()).toEqual(['events:PutEvents']);
      expect(JSON.stringify(st.Resource)).toMatch(/:event-bus\/default"/);
      expect(st.Condition).toEqual({ StringEquals: { 'events:source': 'logrelay.bake' } });
    }
    const states = definitionOf(res).States;
    expect(states.Approved.ResultPath).toBe('$.published');
    expect(states.Ended.Comment).toBe('the last one');
    // A hung call can be cut off (for the caller's Catch); by default Step Functions' own limit.
    expect(states.Ended.TimeoutSeconds).toBe(10);
    expect(states.Started.TimeoutSeconds).toBeUndefined();
  });

  it('takes the detail-type from the input when given as a JSON path (one event per transition, in a Map)', () => {
    const res = synth((stack) =>
      new sfn.Map(stack, 'Publish', { itemsPath: '$.events', maxConcurrency: 1, resultPath: sfn.JsonPath.DISCARD }).itemProcessor(
        bakeEvent(stack, 'Transition', { detailType: sfn.JsonPath.stringAt('$.type'), detailPath: '$' }),
      ),
    );
    const states = definitionOf(res).States.Publish.ItemProcessor.States;
    expect(states.Transition.Parameters).toEqual({ Entries: [{ 'Detail.$': '$', 'DetailType.$': '$.type', Source: BAKE_EVENT_SOURCE }] });
    expect(eventStatements(res).map((st) => st.Condition)).toEqual([{ StringEquals: { 'events:source': 'logrelay.bake' } }]);
  });

  it('refuses a detail-type EventBridge would refuse, and a detail that is not a path', () => {
    const app = new App();
    const stack = new Stack(app, 'Bad');
    expect(() => bakeEvent(stack, 'Long', { detailType: 'x'.repeat(129), detailPath: '$.event' })).toThrow(
      /detailType must be 1\.\.128 characters/,
    );
    expect(() => bakeEvent(stack, 'Empty', { detailType: '', detailPath: '$.event' })).toThrow(/detailType must be 1\.\.128 characters/);
    expect(() => bakeEvent(stack, 'NoPath', { detailType: 'Bake Started', detailPath: 'event' })).toThrow(/detailPath must be a JSONPath/);
  });
});
