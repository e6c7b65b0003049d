/**
 * The local EventBridge (local/eventbridge.ts): PutEvents checked as EventBridge checks it, events
 * recorded in order and handed to subscribers; and state machines that publish with the
 * optimized integration (lib/bake-events.ts) or the aws-sdk one, synthesized by CDK in the test
 * and run by the local Step Functions, on their own and inside the local runtime.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import {
  entrySize,
  EventBridgeValidationError,
  formatEventLine,
  LocalEventBridge,
  MAX_ENTRIES_BYTES,
  type LocalEvent,
  type PutEventsEntry,
} from '../../local/eventbridge';
import {
  ExecutionFailedError,
  runExecution,
  stateMachinesFromTemplate,
  type CfnTemplate,
  type ExecutionEvent,
} from '../../local/stepfunctions';
import { bakeEvent } from '../../lib/bake-events';
import { LogrelayStack } from '../../lib/logrelay-stack';
import { startLocalRuntime } from '../../local/server';
import type { Template } from '../../local/template';

const entry = (over: Partial<PutEventsEntry> = {}): PutEventsEntry => ({
  Source: 'logrelay.bake',
  DetailType: 'Bake Phase Approved',
  Detail: JSON.stringify({ bakeId: 'b-1', profile: 'delivery', version: '2', verdict: 'APPROVED', reason: 'Judge: not worse' }),
  ...over,
});

describe('LocalEventBridge: PutEvents', () => {
  it('records every accepted event in order, with its id, time, source, detail-type, parsed detail and bus; subscribers see each as it comes', () => {
    let now = Date.parse('2026-11-24T09:00:00Z');
    const bus = new LocalEventBridge(() => now);
    const seen: LocalEvent[] = [];
    const stop = bus.onEvent((e) => seen.push(e));
    const first = bus.putEvents({
      Entries: [entry(), entry({ DetailType: 'Bake Ended', Detail: '{"bakeId":"b-1","status":"SUCCEEDED"}', EventBusName: 'default' })],
    });
    now += 1_000;
    const second = bus.putEvents({
      Entries: [
        entry({
          DetailType: 'Bake Started',
          EventBusName: 'arn:aws:events:us-east-1:000000000000:event-bus/default',
          Time: '2026-11-24T08:59:00Z',
          Resources: ['arn:x'],
        }),
      ],
    });
    expect(first.FailedEntryCount).toBe(0);
    expect(first.Entries).toHaveLength(2);
    expect(first.Entries.every((e) => typeof e.EventId === 'string' && !e.ErrorCode)).toBe(true);
    const events = bus.list();
    expect(events.map((e) => e.detailType)).toEqual(['Bake Phase Approved', 'Bake Ended', 'Bake Started']);
    expect(events.map((e) => e.id)).toEqual([...first.Entries, ...second.Entries].map((e) => e.EventId));
    expect(events[0]).toEqual({
      id: first.Entries[0]!.EventId,
      time: '2026-11-24T09:00:00.000Z',
      source: 'logrelay.bake',
      detailType: 'Bake Phase Approved',
      detail: { bakeId: 'b-1', profile: 'delivery', version: '2', verdict: 'APPROVED', reason: 'Judge: not worse' },
      eventBusName: 'default',
      resources: [],
    });
    expect(events[2]).toMatchObject({ time: '2026-11-24T08:59:00.000Z', resources: ['arn:x'], eventBusName: 'default' });
    expect(seen).toEqual(events);
    stop();
    bus.putEvents({ Entries: [entry()] });
    expect(seen).toHaveLength(3);
    expect(bus.list()).toHaveLength(4);
    // The list is a copy: a caller cannot change what was recorded.
    bus.list().pop();
    expect(bus.list()).toHaveLength(4);
  });

  it('fails an entry EventBridge would fail (and records only the others), with its error code in its place of the answer', () => {
    const bus = new LocalEventBridge();
    const bad: [Partial<PutEventsEntry>, string, RegExp][] = [
      [{ Source: undefined }, 'InvalidArgument', /Source is a required argument/],
      [{ DetailType: '' }, 'InvalidArgument', /DetailType is a required argument/],
      [{ Detail: undefined }, 'InvalidArgument', /Detail is a required argument/],
      [{ Detail: 'not json' }, 'MalformedDetail', /not JSON/],
      [{ Detail: '[1,2]' }, 'MalformedDetail', /must be a JSON object/],
      [{ Detail: '"text"' }, 'MalformedDetail', /must be a JSON object/],
      [{ Detail: 'null' }, 'MalformedDetail', /must be a JSON object/],
      [{ Detail: { bakeId: 'b-1' } }, 'MalformedDetail', /as text/], // an object where the API takes text
      [{ Source: 'aws.states' }, 'NotAuthorizedForSourceException', /aws\./],
      [{ EventBusName: 'orders' }, 'InvalidArgument', /Event bus orders does not exist/],
      [{ DetailType: 'x'.repeat(129) }, 'InvalidArgument', /DetailType .* at most 128/],
    ];
    for (const [over, code, message] of bad) {
      const out = bus.putEvents({ Entries: [entry({ DetailType: 'Before' }), entry(over), entry({ DetailType: 'After' })] });
      expect(out.FailedEntryCount, code).toBe(1);
      expect(out.Entries[0]!.EventId, code).toBeDefined();
      expect(out.Entries[1], code).toEqual({ ErrorCode: code, ErrorMessage: expect.stringMatching(message) });
      expect(out.Entries[2]!.EventId, code).toBeDefined();
    }
    expect(bus.list().map((e) => e.detailType)).toEqual(bad.flatMap(() => ['Before', 'After']));
  });

  it('refuses a call of no entry or more than 10, or of more than 256 KiB of entries, as a whole: nothing recorded', () => {
    const bus = new LocalEventBridge();
    const refuse = (entries: PutEventsEntry[] | undefined, message: RegExp) => {
      let caught: unknown;
      try {
        bus.putEvents({ ...(entries ? { Entries: entries } : {}) });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(EventBridgeValidationError);
      expect(caught).toMatchObject({ name: 'ValidationException', $fault: 'client', message: expect.stringMatching(message) });
    };
    refuse([], /between 1 and 10 \(it has 0\)/);
    refuse(undefined, /between 1 and 10/);
    refuse(
      Array.from({ length: 11 }, () => entry()),
      /between 1 and 10 \(it has 11\)/,
    );
    refuse([entry({ Source: undefined }), entry({ Detail: '' })], /No entry of the request has all of Source, DetailType and Detail/);
    expect(bus.putEvents({ Entries: Array.from({ length: 10 }, () => entry()) }).FailedEntryCount).toBe(0);

    // Sized as EventBridge sizes entries: Source + DetailType + Detail (+ Resources, + 14 for Time).
    const fixed = 'logrelay.bake'.length + 'Big'.length + '{"p":""}'.length;
    const exactly = (n: number) => entry({ DetailType: 'Big', Detail: `{"p":"${'a'.repeat(n - fixed)}"}` });
    expect(entrySize(exactly(MAX_ENTRIES_BYTES))).toBe(MAX_ENTRIES_BYTES);
    expect(bus.putEvents({ Entries: [exactly(MAX_ENTRIES_BYTES)] }).FailedEntryCount).toBe(0);
    refuse([exactly(MAX_ENTRIES_BYTES + 1)], /Total size of the entries in the request is over the limit: 262145 bytes, at most 262144/);
    // ...counted over the whole call, multi-byte characters by their UTF-8 bytes, Time as 14.
    refuse([exactly(MAX_ENTRIES_BYTES / 2), exactly(MAX_ENTRIES_BYTES / 2 + 1)], /262145 bytes/);
    expect(entrySize({ Source: 'é', DetailType: '€', Detail: '{}', Time: 1, Resources: ['ab'] })).toBe(2 + 3 + 2 + 14 + 2);
    expect(bus.list()).toHaveLength(10 + 1);
  });

  it('formats one line per event for the console', () => {
    const line = formatEventLine({
      id: 'e-1',
      time: '2026-11-24T09:00:00.000Z',
      source: 'logrelay.bake',
      detailType: 'Bake Phase Rejected',
      detail: { bakeId: 'b-1', reason: 'line\nbreak' },
      eventBusName: 'default',
      resources: [],
    });
    expect(line).toBe('event 2026-11-24T09:00:00.000Z logrelay.bake "Bake Phase Rejected" {"bakeId":"b-1","reason":"line\\nbreak"}');
    expect(line).not.toContain('\n');
    const long = formatEventLine({
      id: 'e',
      time: 't',
      source: 's',
      detailType: 'd',
      detail: { x: 'y'.repeat(5000) },
      eventBusName: 'default',
      resources: [],
    });
    expect(long.length).toBeLessThan(1100);
    expect(long.endsWith('…')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Synthesized state machines
// ---------------------------------------------------------------------------------------------

function synth(build: (stack: Stack) => sfn.IChainable): CfnTemplate {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'EventsTest');
  new sfn.StateMachine(stack, 'Publisher', {
    stateMachineName: 'publisher',
    definitionBody: sfn.DefinitionBody.fromChainable(build(stack)),
  });
  return app.synth().getStackByName('EventsTest').template as CfnTemplate;
}

/** The optimized step (lib/bake-events.ts) and the aws-sdk one, then a choice on what came back. */
const publisher = (stack: Stack): sfn.IChainable => {
  const optimized = bakeEvent(stack, 'PhaseApproved', { detailType: 'Bake Phase Approved', detailPath: '$.event' });
  const viaSdk = new tasks.CallAwsService(stack, 'BakeEndedSdk', {
    service: 'eventbridge',
    action: 'putEvents',
    iamAction: 'events:PutEvents',
    iamResources: ['*'],
    parameters: { Entries: [{ Source: 'logrelay.bake', DetailType: 'Bake Ended', 'Detail.$': 'States.JsonToString($.ended)' }] },
    resultPath: '$.sdk',
  });
  const failed = new sfn.Pass(stack, 'PublishFailed', { parameters: { 'error.$': '$.error.Error', 'cause.$': '$.error.Cause' } });
  optimized.addCatch(failed, { errors: ['EventBridge.FailedEntry'], resultPath: '$.error' });
  return optimized
    .next(viaSdk)
    .next(new sfn.Pass(stack, 'Done', { parameters: { 'failed.$': '$.sdk.FailedEntryCount', 'ids.$': '$.sdk.Entries[*].EventId' } }));
};

describe('a synthesized state machine publishing with both integrations, on the local Step Functions', () => {
  const template = synth(publisher);
  const [sm] = stateMachinesFromTemplate(template);
  const input = {
    event: { bakeId: 'b-9', profile: 'limits', version: '3', verdict: 'APPROVED', reason: 'Judge: not worse' },
    ended: { bakeId: 'b-9', status: 'SUCCEEDED' },
  };

  it('the definition has the two resource forms', () => {
    expect(sm!.definition.States.PhaseApproved!.Resource).toBe('arn:aws:states:::events:putEvents');
    expect(sm!.definition.States.BakeEndedSdk!.Resource).toBe('arn:aws:states:::aws-sdk:eventbridge:putEvents');
  });

  it('records both events in order: the optimized one with its JSON detail sent as text and the execution named in its resources', async () => {
    const bus = new LocalEventBridge();
    const out = (await runExecution(sm!.definition, input, { eventBridge: bus, stateMachineName: sm!.name, name: 'exec-1' })) as {
      failed: number;
      ids: string[];
    };
    const events = bus.list();
    expect(events.map((e) => [e.source, e.detailType])).toEqual([
      ['logrelay.bake', 'Bake Phase Approved'],
      ['logrelay.bake', 'Bake Ended'],
    ]);
    expect(events[0]!.detail).toEqual(input.event);
    expect(events[1]!.detail).toEqual(input.ended);
    expect(events.every((e) => e.eventBusName === 'default')).toBe(true);
    expect(events[0]!.resources).toEqual([
      'arn:aws:states:us-east-1:000000000000:execution:publisher:exec-1',
      'arn:aws:states:us-east-1:000000000000:stateMachine:publisher',
    ]);
    expect(events[1]!.resources).toEqual([]); // the SDK integration adds nothing
    // PutEvents' answer reaches the state: FailedEntryCount and each entry's EventId.
    expect(out).toEqual({ failed: 0, ids: [events[1]!.id] });
  });

  it('an entry EventBridge fails fails the optimized task (EventBridge.FailedEntry, which a Catch sees); the SDK one only counts it', async () => {
    const bus = new LocalEventBridge();
    const events: ExecutionEvent[] = [];
    // The detail at $.event is an array: not a JSON object.
    const out = (await runExecution(sm!.definition, { ...input, event: [1, 2] }, { eventBridge: bus, onEvent: (e) => events.push(e) })) as {
      error: string;
      cause: string;
    };
    expect(out.error).toBe('EventBridge.FailedEntry');
    expect(JSON.parse(out.cause)).toMatchObject({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'MalformedDetail' }] });
    expect(bus.list()).toEqual([]);
    expect(events.some((e) => e.type === 'StateCaught' && e.state?.name === 'PhaseApproved')).toBe(true);

    const sdkOnly = synth(
      (stack) =>
        new tasks.CallAwsService(stack, 'Sdk', {
          service: 'eventbridge',
          action: 'putEvents',
          iamResources: ['*'],
          parameters: {
            Entries: [
              { Source: 'logrelay.bake', DetailType: 'Bake Ended', 'Detail.$': 'States.JsonToString($.ended)' },
              { Source: 'aws.fake', DetailType: 'x', Detail: '{}' },
            ],
          },
        }),
    );
    const sdkOut = (await runExecution(stateMachinesFromTemplate(sdkOnly)[0]!.definition, input, { eventBridge: bus })) as {
      FailedEntryCount: number;
      Entries: unknown[];
    };
    expect(sdkOut.FailedEntryCount).toBe(1);
    expect(sdkOut.Entries).toEqual([
      { EventId: bus.list()[0]!.id },
      { ErrorCode: 'NotAuthorizedForSourceException', ErrorMessage: expect.any(String) },
    ]);
  });

  it("a Map over a task's transitions publishes one event each, in order, its detail-type from the transition", async () => {
    const mapped = synth((stack) =>
      new sfn.Map(stack, 'Publish', { itemsPath: '$.events', maxConcurrency: 1, resultPath: sfn.JsonPath.DISCARD }).itemProcessor(
        bakeEvent(stack, 'Transition', { detailType: sfn.JsonPath.stringAt('$.type'), detailPath: '$' }),
      ),
    );
    const bus = new LocalEventBridge();
    const transitions = [
      { type: 'PhaseBaking', seq: 3, bakeId: 'b-2', phase: 0, profile: 'delivery', version: '2' },
      {
        type: 'PhaseRejected',
        seq: 4,
        bakeId: 'b-2',
        phase: 0,
        profile: 'delivery',
        version: '2',
        verdict: 'REJECTED',
        reason: 'Alarm fired',
      },
      { type: 'BakeEnded', seq: 5, bakeId: 'b-2', status: 'SUCCEEDED' },
    ];
    const out = await runExecution(
      stateMachinesFromTemplate(mapped)[0]!.definition,
      { bakeId: 'b-2', events: transitions },
      { eventBridge: bus },
    );
    expect(out).toEqual({ bakeId: 'b-2', events: transitions }); // the state passes through
    expect(bus.list().map((e) => [e.detailType, e.detail])).toEqual(transitions.map((t) => [t.type, t]));
  });

  it('a call PutEvents refuses as a whole fails the task with EventBridge.ValidationException; a machine that publishes needs a bus', async () => {
    const eleven = synth(
      (stack) =>
        new tasks.CallAwsService(stack, 'TooMany', {
          service: 'eventbridge',
          action: 'putEvents',
          iamResources: ['*'],
          parameters: { Entries: Array.from({ length: 11 }, () => ({ Source: 'logrelay.bake', DetailType: 'x', Detail: '{}' })) },
        }),
    );
    const bus = new LocalEventBridge();
    const err = await runExecution(stateMachinesFromTemplate(eleven)[0]!.definition, {}, { eventBridge: bus }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionFailedError);
    expect(err).toMatchObject({ status: 'FAILED', Error: 'EventBridge.ValidationException' });
    expect(bus.list()).toEqual([]);
    await expect(runExecution(sm!.definition, input, {})).rejects.toThrow(
      /PhaseApproved: arn:aws:states:::events:putEvents needs options\.eventBridge/,
    );
  });
});

describe('the local runtime', () => {
  it("runs a stack's state machine that publishes, and exposes what it published as runtime.events (list and onEvent)", async () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'logrelay-events-')), context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new LogrelayStack(app, 'Logrelay');
    new sfn.StateMachine(stack, 'EventsProbe', {
      stateMachineName: 'events-probe',
      definitionBody: sfn.DefinitionBody.fromChainable(publisher(stack)),
    });
    const template = app.synth().getStackByName('Logrelay').template as Template;
    const rt = await startLocalRuntime({
      port: 0,
      template,
      credentialsPath: join(mkdtempSync(join(tmpdir(), 'logrelay-events-')), 'c.json'),
      log: () => {},
    });
    try {
      const heard: string[] = [];
      const stop = rt.events.onEvent((e) => heard.push(formatEventLine(e)));
      await rt.startExecution('events-probe', {
        event: { bakeId: 'b-1', verdict: 'REJECTED' },
        ended: { bakeId: 'b-1', status: 'SUCCEEDED' },
      });
      stop();
      expect(rt.events.list().map((e) => e.detailType)).toEqual(['Bake Phase Approved', 'Bake Ended']);
      expect(heard).toHaveLength(2);
      expect(heard[0]).toMatch(/^event \S+ logrelay\.bake "Bake Phase Approved" \{"bakeId":"b-1","verdict":"REJECTED"\}$/);
    } finally {
      await rt.close();
    }
  }, 120_000);
});
