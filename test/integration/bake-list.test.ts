/**
 * GET /bakes' storage and paging over the embedded DynamoDB with the tables of lambdas/tables.ts:
 * bake records written through the Control adapter (as the bake service writes them) are listed
 * newest first from the bakesByTime index, a page at a time; records of an older version (no
 * index keys) and records that are gone are handled as services/bake-list.ts says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteItemCommand, DescribeTableCommand, PutItemCommand, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { isThrottle } from '../../lambdas/adapters/store';
import { startEmbeddedDynamo, tableSpecsFromDefs, type EmbeddedDynamo } from '../../local/dynamo';
import { DynamoControlStore, UnprocessedKeysError } from '../../lambdas/adapters/control';
import { BAKE_DEFAULTS, newBake, type BakeRecord } from '../../lambdas/domain/bake';
import { refusalOf } from '../support/refusal';
import {
  BakeList,
  decodeListToken,
  encodeListToken,
  LIST_DEFAULT_LIMIT,
  LIST_MAX_LIMIT,
  parseListQuery,
  type BakePage,
} from '../../lambdas/services/bake-list';
import { BAKES_BY_TIME } from '../../lambdas/tables';

let dynamo: EmbeddedDynamo;
let table: string;
let control: DynamoControlStore;
const T0 = Date.UTC(2026, 10, 24, 9, 0, 0);

beforeAll(async () => {
  const { specs, env } = tableSpecsFromDefs(`bl${Math.random().toString(36).slice(2, 8)}`);
  dynamo = await startEmbeddedDynamo({ tables: specs });
  table = env.CONTROL_TABLE!;
  control = new DynamoControlStore(dynamo.client, table);
});
afterAll(async () => {
  await dynamo?.close();
});

/** A bake as the service writes it: created (rev 0), then updated as its phases end. */
async function bake(id: string, createdAtMs: number, end?: Partial<BakeRecord>): Promise<BakeRecord> {
  let b = await control.putBake(
    newBake(
      id,
      [
        { profile: 'delivery', version: '2' },
        { profile: 'limits', version: '3' },
      ],
      BAKE_DEFAULTS,
      createdAtMs,
    ),
  );
  if (end) b = await control.putBake({ ...b, ...end });
  return b;
}

/** Every page from the first, following nextToken. */
async function allPages(list: BakeList, limit: number): Promise<BakePage[]> {
  const pages: BakePage[] = [];
  let token: string | undefined;
  do {
    const page = await list.list({ limit: String(limit), ...(token ? { nextToken: token } : {}) });
    pages.push(page);
    token = page.nextToken;
    expect(pages.length).toBeLessThan(500);
  } while (token);
  return pages;
}

describe('bake records and the bakesByTime index', () => {
  it('the Control table has the index the adapter queries, keys only', async () => {
    const d = await dynamo.client.send(new DescribeTableCommand({ TableName: table }));
    const ix = d.Table!.GlobalSecondaryIndexes!.find((g) => g.IndexName === BAKES_BY_TIME.name)!;
    expect(ix.KeySchema).toEqual([
      { AttributeName: BAKES_BY_TIME.partitionKey.name, KeyType: 'HASH' },
      { AttributeName: BAKES_BY_TIME.sortKey.name, KeyType: 'RANGE' },
    ]);
    expect(ix.Projection).toEqual({ ProjectionType: 'KEYS_ONLY' });
  });

  it('every put of a record writes its index keys with it (creation and each update), and never changes them', async () => {
    const b = await bake('b-keys', T0 - 5_000);
    const read = async () =>
      (await dynamo.client.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'bake#b-keys' } }, ConsistentRead: true }))).Item!;
    await expect(read()).resolves.toMatchObject({ lp: { S: 'bake' }, lt: { N: String(T0 - 5_000) } });
    await control.putBake({ ...b, status: 'SUCCEEDED', endedAtMs: T0 });
    const after = await read();
    expect(after.lp).toEqual({ S: 'bake' });
    expect(after.lt).toEqual({ N: String(T0 - 5_000) }); // the creation time, not the update's
    await dynamo.client.send(new DeleteItemCommand({ TableName: table, Key: { pk: { S: 'bake#b-keys' } } }));
  });
});

describe('GET /bakes paging (BakeList over the adapter)', () => {
  const ids: string[] = [];
  beforeAll(async () => {
    // 45 bakes, one a minute, the later ones ended with verdicts; two created in the same
    // millisecond (ties are ordered by the index, and paging must neither lose nor repeat one).
    for (let i = 0; i < 45; i++) {
      const id = `b-page${String(i).padStart(2, '0')}`;
      ids.push(id);
      const at = i === 44 ? T0 + 43 * 60_000 : T0 + i * 60_000;
      await bake(id, at, i % 3 === 0 ? { status: 'SUCCEEDED', endedAtMs: at + 30_000 } : undefined);
    }
  });
  const clock = { now: () => T0 + 100 * 60_000 };

  it('lists every bake once, newest first, across pages of any size; the last page carries no nextToken', async () => {
    const list = new BakeList(control, clock);
    for (const limit of [1, 7, 20, 44, 45, 100]) {
      const pages = await allPages(list, limit);
      const listed = pages.flatMap((p) => p.bakes);
      expect(
        listed
          .map((b) => b.bakeId)
          .filter((id) => id.startsWith('b-page'))
          .sort(),
        `limit ${limit}`,
      ).toEqual([...ids].sort());
      const times = listed.map((b) => Date.parse(b.createdAt));
      expect(times, `limit ${limit}: newest first`).toEqual([...times].sort((a, b) => b - a));
      for (const p of pages.slice(0, -1)) expect(p.bakes.length, `limit ${limit}`).toBe(limit);
      expect(pages.at(-1)!.nextToken).toBeUndefined();
      expect(pages.at(-1)!.bakes.length).toBeGreaterThan(0); // no empty last page
      expect(pages).toHaveLength(Math.ceil(listed.length / limit));
    }
  });

  it('carries status, each phase (change) with its verdict and reason, settings and times', async () => {
    const b = await control.getBake('b-page03');
    const phases = [...b!.phases];
    phases[0] = {
      ...phases[0]!,
      verdict: 'APPROVED',
      reason: 'Judge: approve (5xx 0.10% vs 0.12%)',
      startedAtMs: T0 + 3 * 60_000 + 1_000,
      endedAtMs: T0 + 3 * 60_000 + 20_000,
    };
    phases[1] = {
      ...phases[1]!,
      verdict: 'REJECTED',
      reason: 'Alarm experiment-4xx-vs-control fired',
      startedAtMs: T0 + 3 * 60_000 + 21_000,
      endedAtMs: T0 + 3 * 60_000 + 29_000,
    };
    await control.putBake({ ...b!, phases });
    const page = await new BakeList(control, clock).list({ limit: '100' });
    const listed = page.bakes.find((x) => x.bakeId === 'b-page03')!;
    expect(listed).toEqual({
      bakeId: 'b-page03',
      status: 'SUCCEEDED',
      abortRequested: false,
      createdAt: new Date(T0 + 3 * 60_000).toISOString(),
      endedAt: new Date(T0 + 3 * 60_000 + 30_000).toISOString(),
      settings: { ...BAKE_DEFAULTS, finalBakeSeconds: 0, dryRun: false },
      phases: [
        {
          profile: 'delivery',
          version: '2',
          verdict: 'APPROVED',
          reason: 'Judge: approve (5xx 0.10% vs 0.12%)',
          startedAt: new Date(T0 + 181_000).toISOString(),
          endedAt: new Date(T0 + 200_000).toISOString(),
        },
        {
          profile: 'limits',
          version: '3',
          verdict: 'REJECTED',
          reason: 'Alarm experiment-4xx-vs-control fired',
          startedAt: new Date(T0 + 201_000).toISOString(),
          endedAt: new Date(T0 + 209_000).toISOString(),
        },
      ],
    });
    // The content copied into each phase and the record's bookkeeping stay out of the list.
    expect(JSON.stringify(page)).not.toMatch(/"content"|"rev"|"polls"/);
  });

  it('a RUNNING bake past its deadline is listed FAILED, as GET /bakes/{bakeId} reports it', async () => {
    const b = await bake('b-dead', T0 + 44 * 60_000 + 1);
    await control.putBake({ ...b, deadlineMs: T0 + 50 * 60_000 });
    const page = await new BakeList(control, clock).list({ limit: '1' });
    expect(page.bakes[0]).toMatchObject({ bakeId: 'b-dead', status: 'FAILED', error: expect.stringMatching(/passed its deadline/) });
    const before = await new BakeList(control, { now: () => T0 + 49 * 60_000 }).list({ limit: '1' });
    expect(before.bakes[0]).toMatchObject({ bakeId: 'b-dead', status: 'RUNNING' });
    expect(before.bakes[0]!.error).toBeUndefined();
    await dynamo.client.send(new DeleteItemCommand({ TableName: table, Key: { pk: { S: 'bake#b-dead' } } }));
  });

  it('a key whose record has gone (TTL) is skipped, and paging goes on past it', async () => {
    // What the index can still name for a moment after the record is deleted: the key alone.
    const gone = {
      listBakeKeys: control.listBakeKeys.bind(control),
      getBakes: async (idsAsked: readonly string[]) => {
        const found = await control.getBakes(idsAsked);
        found.delete('b-page40');
        return found;
      },
    };
    const pages = await allPages(new BakeList(gone, clock), 5);
    const listed = pages.flatMap((p) => p.bakes.map((b) => b.bakeId)).filter((id) => id.startsWith('b-page'));
    expect(listed).not.toContain('b-page40');
    expect(listed).toHaveLength(ids.length - 1);
    expect(pages.some((p) => p.bakes.length === 4 && p.nextToken !== undefined)).toBe(true); // the short page still leads on
  });

  it('does not list a record an older version wrote (no index keys); GET /bakes/{bakeId} still reads it', async () => {
    // ...written before bakes had a watch or dry runs, too: its settings lack both.
    const { finalBakeSeconds: _f, dryRun: _d, ...olderSettings } = BAKE_DEFAULTS;
    const legacy = { ...newBake('b-legacy', [{ profile: 'delivery', version: '2' }], olderSettings, T0 + 99 * 60_000), rev: 1 };
    await dynamo.client.send(
      new PutItemCommand({
        TableName: table,
        Item: marshall({ pk: 'bake#b-legacy', b: legacy, rev: 1, x: Math.floor(T0 / 1000) + 90 * 86_400 }, { removeUndefinedValues: true }),
      }),
    );
    const listed = (await allPages(new BakeList(control, clock), 100)).flatMap((p) => p.bakes.map((b) => b.bakeId));
    expect(listed).not.toContain('b-legacy');
    expect((await control.getBake('b-legacy'))?.bakeId).toBe('b-legacy');
    // Its next write by this version (a bake running across the upgrade) lists it.
    await control.putBake({ ...legacy, status: 'SUCCEEDED', endedAtMs: T0 + 99 * 60_000 + 5 });
    const first = await new BakeList(control, clock).list({ limit: '1' });
    expect(first.bakes[0]!.bakeId).toBe('b-legacy');
    expect(first.bakes[0]!.settings).toEqual({ ...olderSettings, finalBakeSeconds: 0, dryRun: false }); // as GET /bakes/{bakeId} fills them in
    await dynamo.client.send(new DeleteItemCommand({ TableName: table, Key: { pk: { S: 'bake#b-legacy' } } }));
  });

  it('a BatchGetItem that keeps leaving keys unprocessed ends as a DynamoDB throttle (503 StorageThrottled), not a short page', async () => {
    const m = mockClient(DynamoDBDocumentClient);
    try {
      m.on(BatchGetCommand).callsFake((input: { RequestItems: Record<string, { Keys: unknown[] }> }) => ({
        Responses: { [table]: [] },
        UnprocessedKeys: input.RequestItems,
      }));
      const err = await control.getBakes(['b-page01', 'b-page02']).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnprocessedKeysError);
      expect(err).toMatchObject({ name: 'ProvisionedThroughputExceededException', unprocessed: 2 });
      expect(isThrottle(err)).toBe(true);
      expect(m.commandCalls(BatchGetCommand).length).toBe(8);
      // Keys answered on a later attempt are kept: one unprocessed once, then answered.
      m.reset();
      let calls = 0;
      m.on(BatchGetCommand).callsFake((input: { RequestItems: Record<string, { Keys: { pk: string }[] }> }) => {
        const keys = input.RequestItems[table]!.Keys;
        calls++;
        const answered = calls === 1 ? keys.slice(0, 1) : keys;
        return {
          Responses: { [table]: answered.map((k) => ({ pk: k.pk, b: { bakeId: k.pk.slice('bake#'.length) } })) },
          ...(calls === 1 ? { UnprocessedKeys: { [table]: { Keys: keys.slice(1), ConsistentRead: true } } } : {}),
        };
      });
      const found = await control.getBakes(['b-page01', 'b-page02']);
      expect([...found.keys()].sort()).toEqual(['b-page01', 'b-page02']);
      expect(m.commandCalls(BatchGetCommand).map((c) => c.args[0].input.RequestItems![table]!.ConsistentRead)).toEqual([true, true]);
    } finally {
      m.restore();
    }
  });
});

describe('GET /bakes query parameters', () => {
  const bad = (q: Record<string, string>) => {
    try {
      parseListQuery(q);
    } catch (e) {
      const r = refusalOf(e);
      expect(r.status).toBe(400);
      expect(r.code).toBe('ValidationError');
      return r.message;
    }
    throw new Error(`accepted ${JSON.stringify(q)}`);
  };

  it(`limit: default ${LIST_DEFAULT_LIMIT}, 1..${LIST_MAX_LIMIT}, digits only`, () => {
    expect(parseListQuery({})).toEqual({ limit: LIST_DEFAULT_LIMIT });
    expect(parseListQuery({ limit: '1' }).limit).toBe(1);
    expect(parseListQuery({ limit: String(LIST_MAX_LIMIT) }).limit).toBe(LIST_MAX_LIMIT);
    for (const v of ['0', '101', '-1', '1.5', '', ' 5', '5,6', '1e2', 'ten', '0x10', '99999']) {
      expect(bad({ limit: v }), v).toMatch(/^limit must be a whole number from 1 to 100 \(default 20\); it is '.*'\.$/);
    }
  });

  it('nextToken: only one a page gave out; anything else says to pass it back as given or leave it out', () => {
    const t = encodeListToken({ createdAtMs: T0, bakeId: 'b-abc_DEF-1' });
    expect(t).toMatch(/^[A-Za-z0-9_-]+$/); // needs no %-escape in a query string
    expect(parseListQuery({ nextToken: t })).toEqual({ limit: LIST_DEFAULT_LIMIT, after: { createdAtMs: T0, bakeId: 'b-abc_DEF-1' } });
    const forged = [
      'not a token',
      'x'.repeat(201),
      Buffer.from('{"a":1}').toString('base64url'),
      Buffer.from('[1]').toString('base64url'),
      Buffer.from('[-1,"b-x"]').toString('base64url'),
      Buffer.from('[1.5,"b-x"]').toString('base64url'),
      Buffer.from('[1,"bake#x"]').toString('base64url'),
      Buffer.from(`[1,"${'b'.repeat(65)}"]`).toString('base64url'),
      Buffer.from('[1,"b-x"').toString('base64url'),
    ];
    for (const f of forged) {
      expect(decodeListToken(f), f).toBeUndefined();
      expect(bad({ nextToken: f }), f).toMatch(
        /is not one GET \/bakes gave out\. Pass the nextToken of the previous page exactly as it came, or leave it out to start from the newest bake\.$/,
      );
    }
  });

  it('refuses a parameter it does not take, naming it (a typo is not silently ignored)', () => {
    expect(bad({ limt: '5' })).toBe("GET /bakes takes the query parameters limit and nextToken; 'limt' is not among them.");
    expect(bad({ a: '1', b: '2' })).toMatch(/'a', 'b' are not among them/);
  });
});

describe('a --data-dir kept from before the index', () => {
  const dataDir = () => mkdtempSync(join(tmpdir(), 'logrelay-gsi-'));
  const specsNow = () => tableSpecsFromDefs('kept').specs;
  const controlSpec = () => specsNow().find((s) => s.name === 'kept-Control')!;
  /** The Control table as an older version declared it: no index. */
  const before = () =>
    specsNow().map((s) =>
      s.name === 'kept-Control'
        ? { name: s.name, keySchema: s.keySchema, attributeDefinitions: s.attributeDefinitions.filter((a) => a.AttributeName === 'pk') }
        : s,
    );

  it('gets the index at start with every item kept, and lists the records written from then on', async () => {
    const dir = dataDir();
    const old = await startEmbeddedDynamo({ tables: before(), path: dir });
    const items = [
      { pk: 'rollout', s: { control: { delivery: '3', limits: '1' } }, rev: 7 },
      { pk: 'bake#b-old', b: { ...newBake('b-old', [{ profile: 'delivery', version: '3' }], BAKE_DEFAULTS, T0), rev: 1 }, rev: 1, x: 1 },
      // A record whose index keys an earlier start of this version wrote, then the index was lost.
      {
        pk: 'bake#b-keyed',
        b: { ...newBake('b-keyed', [{ profile: 'limits', version: '2' }], BAKE_DEFAULTS, T0 + 1), rev: 1 },
        rev: 1,
        x: 1,
        lp: 'bake',
        lt: T0 + 1,
      },
    ];
    for (const it of items)
      await old.client.send(new PutItemCommand({ TableName: 'kept-Control', Item: marshall(it, { removeUndefinedValues: true }) }));
    expect((await old.client.send(new DescribeTableCommand({ TableName: 'kept-Control' }))).Table!.GlobalSecondaryIndexes).toBeUndefined();
    await old.close();

    const now = await startEmbeddedDynamo({ tables: specsNow(), path: dir });
    try {
      const d = await now.client.send(new DescribeTableCommand({ TableName: 'kept-Control' }));
      expect(d.Table!.GlobalSecondaryIndexes!.map((g) => g.IndexName)).toEqual([BAKES_BY_TIME.name]);
      const store = new DynamoControlStore(now.client, 'kept-Control');
      expect((await store.getRollout(true)).rev).toBe(7);
      expect((await store.getBake('b-old'))?.bakeId).toBe('b-old');
      await store.putBake(newBake('b-new', [{ profile: 'delivery', version: '4' }], BAKE_DEFAULTS, T0 + 2));
      const page = await new BakeList(store, { now: () => T0 }).list({});
      expect(page.bakes.map((b) => b.bakeId)).toEqual(['b-new', 'b-keyed']); // b-old has no keys: not listed
      expect(readdirSync(dir).filter((f) => f.includes('items-while-indexing'))).toEqual([]);
    } finally {
      await now.close();
    }
    // A second start finds the index there and changes nothing.
    const again = await startEmbeddedDynamo({ tables: specsNow(), path: dir });
    try {
      expect((await new DynamoControlStore(again.client, 'kept-Control').getRollout(true)).rev).toBe(7);
    } finally {
      await again.close();
    }
  });

  it('a start that stopped after deleting the table puts the kept items back at the next start', async () => {
    const dir = dataDir();
    // What a stop right after DeleteTable leaves: no table, and the file of its items.
    const items = [marshall({ pk: 'rollout', s: { control: { delivery: '5', limits: '1' } }, rev: 9 })];
    writeFileSync(join(dir, 'kept-Control.items-while-indexing.json'), JSON.stringify(items));
    const rt = await startEmbeddedDynamo({ tables: [controlSpec()], path: dir });
    try {
      expect((await new DynamoControlStore(rt.client, 'kept-Control').getRollout(true)).rev).toBe(9);
      expect(existsSync(join(dir, 'kept-Control.items-while-indexing.json'))).toBe(false);
    } finally {
      await rt.close();
    }
  });
});
