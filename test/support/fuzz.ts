/**
 * Request generator for the fuzz suite (test/http/fuzz.test.ts), driven by openapi.json: for
 * every route, bodies, path parameters and headers that are wrong in every way the document's
 * schemas allow a request to be wrong (types, ranges, lengths, item counts, unknown and missing
 * fields, null for objects, huge numbers, deep nesting, odd unicode, duplicate keys, invalid
 * JSON, wrong content types and encodings), and valid requests written in unusual ways (escaped
 * member names, whitespace, duplicate keys whose last one is valid, big numbers in `data`).
 *
 * Each case says what the contract allows as its answer: `refused` (the schema forbids it: a
 * 4xx) or `any` (a success or a 4xx). Bodies are built as JSON text, not with JSON.stringify,
 * so they can carry numbers no double holds, duplicate keys, and nesting deeper than a
 * recursive serializer takes.
 */
import { gzipSync } from 'node:zlib';
import openapi from '../../openapi.json';
import { prng } from '../../bench/stats';

// ---- JSON text with what JSON.stringify cannot write ------------------------------------------

/** JSON text inserted verbatim; `stored` is how the service stores it when that differs (minified, lone surrogates escaped). */
export class Raw {
  constructor(
    readonly text: string,
    readonly stored: string = text,
  ) {}
}
/** An object written member by member, so a name may repeat. */
export class Members {
  constructor(readonly entries: readonly [name: string, value: J, nameText?: string][]) {}
}
export type J = null | boolean | number | string | Raw | Members | J[] | { [k: string]: J };

export interface TextStyle {
  /** Whitespace put between tokens ('' for none). */
  ws?: () => string;
}

/** `v` as JSON text (`stored`: as the service stores a record's data: no whitespace, Raw's stored form). */
export function jsonText(v: J, style: TextStyle = {}, stored = false): string {
  const w = style.ws ?? (() => '');
  if (v instanceof Raw) return stored ? v.stored : v.text;
  if (v instanceof Members) {
    const parts = v.entries.map(
      ([k, x, nameText]) => `${w()}${nameText ?? JSON.stringify(k)}${w()}:${w()}${jsonText(x, style, stored)}${w()}`,
    );
    return `{${parts.join(',')}}`;
  }
  if (Array.isArray(v)) return `[${v.map((x) => `${w()}${jsonText(x, style, stored)}${w()}`).join(',')}]`;
  if (v !== null && typeof v === 'object') return jsonText(new Members(Object.entries(v)), style, stored);
  return JSON.stringify(v);
}

const nested = (depth: number, inner = '1'): Raw => new Raw(`${'['.repeat(depth)}${inner}${']'.repeat(depth)}`);
const nestedObjects = (depth: number): Raw => new Raw(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);

// ---- openapi.json's schemas -------------------------------------------------------------------

interface Schema {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  items?: Schema | false;
  prefixItems?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  unevaluatedProperties?: boolean;
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
  'x-maxDepth'?: number;
}

const doc = openapi as unknown as {
  paths: Record<string, Record<string, any>>;
  components: { schemas: Record<string, Schema>; parameters: Record<string, any> };
};

function deref(s: Schema): Schema {
  let out = s;
  while (out.$ref) {
    const { $ref, ...rest } = out;
    out = { ...doc.components.schemas[$ref.split('/').pop()!]!, ...rest };
  }
  if (out.allOf) {
    // Merge allOf (objects here): properties, required, closedness.
    const { allOf, ...rest } = out;
    const parts = [...allOf.map(deref), rest];
    out = {
      type: 'object',
      properties: Object.assign({}, ...parts.map((p) => p.properties ?? {})),
      required: parts.flatMap((p) => p.required ?? []),
      additionalProperties: !parts.some((p) => p.additionalProperties === false || p.unevaluatedProperties === false),
    };
  }
  return out;
}

const closed = (s: Schema): boolean => s.additionalProperties === false || s.unevaluatedProperties === false;

// ---- Context: the fixtures valid requests name --------------------------------------------------

export interface FuzzContext {
  logId: string;
  sessionId: string;
  /** The fixture log's lastSeq when the cases are generated (valid afterSeq values are at most this). */
  lastSeq: number;
  profile?: string;
  version?: string;
  bakeId?: string;
}

export interface FuzzCase {
  name: string;
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  isBase64Encoded?: boolean;
  expect: 'refused' | 'any';
  /** For an append that succeeds: the records' data as the service must store and deliver them. */
  storedData?: string[];
}

type Rng = ReturnType<typeof prng>;

// ---- Values: valid samples, unusual valid values, invalid values --------------------------------

/** Record data a producer may send: each valid, most of them unusual. */
export function interestingData(): J[] {
  return [
    0,
    -1.5,
    new Raw('12345678901234567890123'),
    new Raw('1e400'),
    new Raw('-1e400'),
    new Raw('1E+2'),
    new Raw('-0'),
    new Raw('0.1000000000000000055511151231257827'),
    new Raw('123456789012345678901234567890.123456789e-5'),
    { n: new Raw('9007199254740993'), list: [new Raw('1.0'), new Raw('2.50')] },
    'plain',
    '',
    '😀 emoji, é, 中文, \u202Eright-to-left',
    'line\nbreak\ttab "quote" \\ backslash \u0000 nul \u2028 sep',
    new Raw('"\\ud800 lone high"'),
    new Raw('"\\udc00 lone low"'),
    new Raw('"\ud800 raw lone"', '"\\ud800 raw lone"'),
    new Raw('"\\u00e9 escaped \\/ slash"'),
    null,
    true,
    [],
    {},
    new Members([
      ['a', 1],
      ['a', new Raw('12345678901234567890123')],
    ]),
    { __proto__x: 1, constructor: 2, ['__proto__']: 3 } as unknown as J,
    new Members([['__proto__', { polluted: true }]]),
    nested(100),
    nestedObjects(100),
    'x'.repeat(10_000),
  ];
}

/** A valid value for `s`, using the fixtures for ids, small numbers where they name records. */
function sample(s0: Schema, r: Rng, ctx: FuzzContext, name = ''): J {
  const s = deref(s0);
  if (s.oneOf) return sample(r.pick(s.oneOf), r, ctx, name);
  if (s.anyOf) return sample(r.pick(s.anyOf), r, ctx, name);
  if (s.enum) return r.pick(s.enum) as J;
  if (name === 'data') return r.pick(interestingData());
  if (name === 'afterSeq') return r.int(0, ctx.lastSeq);
  if (name === 'waitSeconds') return 0; // a long poll would only wait
  switch (s.type) {
    case 'integer': {
      const lo = s.minimum ?? 0;
      const hi = Math.min(s.maximum ?? lo + 20, lo + 20);
      return r.int(lo, hi);
    }
    case 'number':
      return Math.min(s.maximum ?? 1, (s.minimum ?? 0) + r.next());
    case 'string':
      if (s.pattern === '^[A-Za-z0-9._-]{1,128}$') return ctx.logId;
      if (s.pattern) return '2';
      return r.pick(['k', 'key-1', 'é😀', 'x'.repeat(Math.min(s.maxLength ?? 64, 64))]);
    case 'array': {
      if (s.prefixItems) {
        // A range: [from, to] with from <= to.
        const a = r.int(1, ctx.lastSeq + 3);
        return [a, a + r.int(0, 3)];
      }
      const n = r.int(Math.max(1, s.minItems ?? 0), Math.min(s.maxItems ?? 3, 3));
      return Array.from({ length: n }, () => sample(s.items as Schema, r, ctx, name));
    }
    default: {
      // 'object', and any other type
      if (!s.properties) return {};
      const out: Record<string, J> = {};
      for (const [k, p] of Object.entries(s.properties)) {
        if ((s.required ?? []).includes(k) || r.next() < 0.5) out[k] = sample(p, r, ctx, k);
      }
      return out;
    }
  }
}

interface Bad {
  value: J;
  why: string;
  /** Whether the schema forbids it ('refused'), or it is allowed but unusual ('any'). */
  expect: 'refused' | 'any';
}

const WRONG_TYPES: [J, string][] = [
  [null, 'null'],
  [true, 'a boolean'],
  [0, 'a number'],
  ['x', 'a string'],
  [[], 'an array'],
  [{}, 'an object'],
];

function typeOf(s: Schema): string | undefined {
  return s.type ?? (s.enum ? 'string' : undefined);
}

/** Values that break `s` (and a few unusual valid ones), one step deep; nested ones come from `mutations`. */
function badValues(s0: Schema, name: string): Bad[] {
  const s = deref(s0);
  const out: Bad[] = [];
  const refused = (value: J, why: string) => out.push({ value, why, expect: 'refused' });
  const any = (value: J, why: string) => out.push({ value, why, expect: 'any' });
  if (name === 'data') {
    // Any JSON value is allowed, within the documented nesting limit.
    const max = s['x-maxDepth'] ?? 100;
    refused(nested(max + 1), `nested ${max + 1} deep`);
    refused(nested(5000), 'nested 5,000 deep');
    refused(nestedObjects(max + 1), `objects nested ${max + 1} deep`);
    any(nested(max), `nested ${max} deep (the limit)`);
    for (const d of interestingData()) any(d, 'unusual data');
    return out;
  }
  const types = (s.oneOf ?? s.anyOf) ? [...new Set((s.oneOf ?? s.anyOf)!.map((b) => typeOf(deref(b))))] : [typeOf(s)];
  for (const [v, what] of WRONG_TYPES) {
    const t =
      what === 'null'
        ? 'null'
        : what === 'a boolean'
          ? 'boolean'
          : what === 'a number'
            ? 'number'
            : what === 'a string'
              ? 'string'
              : what === 'an array'
                ? 'array'
                : 'object';
    const ok = types.some((x) => x === t || (x === 'integer' && t === 'number' && v === 0 && (s.minimum ?? 0) <= 0));
    if (!ok) refused(v, `${what} where ${types.join('/')} belongs`);
  }
  if (s.enum) {
    refused('nope', 'not one of the enum values');
    refused(String(s.enum[0]).toUpperCase(), 'enum value in the wrong case');
  }
  const integer = s.type === 'integer' || (s.oneOf ?? []).some((b) => deref(b).type === 'integer');
  if (integer || s.type === 'number') {
    const num = s.oneOf ? deref(s.oneOf.find((b) => deref(b).type === 'integer')!) : s;
    if (num.minimum !== undefined) refused(num.minimum - 1, `below the minimum ${num.minimum}`);
    if (num.maximum !== undefined) refused(num.maximum + (integer ? 1 : 0.5), `above the maximum ${num.maximum}`);
    if (integer) refused((num.minimum ?? 0) + 0.5, 'not an integer');
    refused(new Raw('1e400'), '1e400 (no double holds it)');
    refused(new Raw('-1e400'), '-1e400');
    if (num.maximum !== undefined) refused(new Raw('12345678901234567890123'), 'a 23-digit integer');
    if (num.maximum !== undefined) refused(new Raw('1e20'), '1e20');
    if ((num.minimum ?? 0) > 0) refused(new Raw('-0'), '-0');
    refused(nested(5000), 'an array nested 5,000 deep');
    if (num.minimum !== undefined) any(new Raw(`${num.minimum}.0`), 'the minimum written as N.0 (an integer in JSON Schema)');
    // (Not for waitSeconds: a valid long poll only waits.)
    if (num.maximum !== undefined && name !== 'waitSeconds') any(new Raw(`${num.maximum}E0`), 'the maximum written with an exponent');
  }
  if (s.type === 'string' || (s.oneOf ?? []).some((b) => deref(b).type === 'string')) {
    const str = s.oneOf ? deref(s.oneOf.find((b) => deref(b).type === 'string')!) : s;
    if ((str.minLength ?? 0) > 0) refused('', 'empty, below minLength');
    if (str.maxLength !== undefined) refused('x'.repeat(str.maxLength + 1), `one over maxLength ${str.maxLength}`);
    if (str.pattern) {
      for (const v of ['has space', 'slash/inside', 'é', '\u0000', '😀', 'x'.repeat(129), '-1', '0', '01']) {
        if (!new RegExp(str.pattern, 'u').test(v)) refused(v, `breaks the pattern ${str.pattern}`);
      }
      refused(new Raw('"\\ud800"'), 'a lone surrogate (escaped), against the pattern');
    } else if (!str.enum) {
      any(new Raw('"\\ud800"'), 'a lone surrogate (escaped)');
      any(new Raw('"\\udfff\\ud800"'), 'two lone surrogates in the wrong order');
      any('😀\u202E\u0000\uFFFF', 'emoji, RTL override, NUL, a noncharacter');
      any(new Raw('"\\u0041\\u00e9"'), 'escapes for plain letters');
    }
  }
  if (s.type === 'array') {
    if ((s.minItems ?? 0) > 0) refused([], `fewer than minItems ${s.minItems}`);
    if (s.maxItems !== undefined && s.maxItems < 20_000)
      refused(
        Array.from({ length: s.maxItems + 1 }, (_, i) => i + 1),
        `more than maxItems ${s.maxItems}`,
      );
    if (s.prefixItems) {
      refused([1], 'a range of one number');
      refused([1, 2, 3], 'a range of three numbers');
      refused([3, 1], 'a backwards range (from > to)');
      refused([0, 1], 'a range from 0');
    }
  }
  if (s.type === 'object' || s.properties) refused(nested(5000), 'an array nested 5,000 deep where an object belongs');
  return out;
}

/** Every mutation of a valid body: a bad value at each place of the schema tree the sample reaches. */
function mutations(
  s0: Schema,
  value: J,
  r: Rng,
  ctx: FuzzContext,
  name: string,
  depth = 0,
): { body: J; why: string; expect: 'refused' | 'any' }[] {
  const s = deref(s0);
  const out: { body: J; why: string; expect: 'refused' | 'any' }[] = [];
  for (const b of badValues(s, name)) out.push({ body: b.value, why: `${name || 'body'}: ${b.why}`, expect: b.expect });
  if (depth > 4) return out;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Raw) && !(value instanceof Members)) {
    const props =
      s.properties ??
      (s.anyOf ?? s.oneOf)?.map(deref).find((b) => b.properties && Object.keys(value).every((k) => k in b.properties!))?.properties ??
      {};
    for (const [k, p] of Object.entries(props)) {
      const v = k in value ? value[k]! : sample(p, r, ctx, k);
      for (const m of mutations(p, v, r, ctx, k, depth + 1)) out.push({ body: { ...value, [k]: m.body }, why: m.why, expect: m.expect });
    }
    const objectSchema = s.properties
      ? s
      : (s.anyOf ?? s.oneOf)?.map(deref).find((b) => b.properties && Object.keys(value).every((k) => k in b.properties!));
    if (objectSchema && closed(objectSchema)) {
      out.push({ body: { ...value, zzUnknown: 1 }, why: `${name || 'body'}: an unknown field`, expect: 'refused' });
      out.push({
        body: { ...value, ['\u0000'.repeat(2) + 'x'.repeat(5000)]: 1 },
        why: `${name || 'body'}: a 5,000-character unknown field name`,
        expect: 'refused',
      });
      out.push({ body: { ...value, records2: [] }, why: `${name || 'body'}: a near-miss field name`, expect: 'refused' });
    }
    for (const k of s.required ?? []) {
      if (!(k in value)) continue;
      const { [k]: _gone, ...rest } = value;
      out.push({ body: rest, why: `${name || 'body'}: missing required ${k}`, expect: 'refused' });
    }
  } else if (Array.isArray(value) && value.length > 0 && s.type === 'array' && s.items) {
    for (const m of mutations(s.items, value[0]!, r, ctx, name, depth + 1))
      out.push({ body: [m.body, ...value.slice(1)], why: `${m.why} (as item [0])`, expect: m.expect });
  }
  return out;
}

// ---- Routes -------------------------------------------------------------------------------------

interface RouteSpec {
  method: string;
  path: string;
  params: string[];
  body?: Schema;
  bodyRequired: boolean;
}

export function routesOf(filter: (method: string, path: string) => boolean = () => true): RouteSpec[] {
  const out: RouteSpec[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters' || !filter(method.toUpperCase(), path)) continue;
      const body = op.requestBody?.content?.['application/json']?.schema as Schema | undefined;
      out.push({
        method: method.toUpperCase(),
        path,
        params: [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!),
        body,
        bodyRequired: !!op.requestBody?.required,
      });
    }
  }
  return out;
}

const validParam = (p: string, ctx: FuzzContext): string =>
  ({
    logId: ctx.logId,
    sessionId: ctx.sessionId,
    profile: ctx.profile ?? 'delivery',
    version: ctx.version ?? '1',
    bakeId: ctx.bakeId ?? 'b-none',
  })[p] ?? 'x';

const pathWith = (route: RouteSpec, values: Record<string, string>): string =>
  route.path.replace(/\{(\w+)\}/g, (_, p: string) => values[p]!);

/** Path parameter values no resource has: each answers 404 (or the gateway's 404 when no route matches). */
const BAD_PARAMS: [string, string][] = [
  ['%20', 'a space'],
  ['a%2Fb', 'an encoded slash'],
  ['%00', 'NUL'],
  ['%ZZ', 'invalid percent-encoding'],
  ['%C3%28', 'invalid UTF-8'],
  ['%ED%A0%80', 'an encoded lone surrogate'],
  ['%F0%9F%98%80', 'an emoji'],
  ['%E2%80%AE', 'an RTL override'],
  ['x'.repeat(10_000), 'a 10,000-character value'],
  ['%25'.repeat(2_000), '2,000 encoded percent signs'],
  ['.', 'a dot'],
  ['..', 'two dots'],
  ['s-AAAAAAAAAAAAAAAAAAAAAA', 'a well-formed id nobody has'],
  [`s-${'A'.repeat(23)}`, 'an id one character too long'],
  ['nope', 'a name nobody has'],
  ['01', 'a number with a leading zero'],
  ['1e0', 'a number in exponent form'],
  ['0x1', 'a hexadecimal number'],
  ['%201', 'a number after a space'],
  ["'%3B--", 'SQL-ish junk'],
  ['%7B%7D', 'braces'],
];

/**
 * All cases for the given routes: per route, the valid request written plainly and in unusual
 * ways, every body mutation, bad path parameters, whole-body junk and wrong headers. `valid`
 * says whether a valid request may be sent to the route at all (not for routes whose success
 * would destroy the fixtures or start real work).
 */
export function generateCases(
  routes: RouteSpec[],
  ctx: FuzzContext,
  seed: number,
  valid: (route: RouteSpec) => boolean,
  rounds = 1,
): FuzzCase[] {
  const r = prng(seed);
  const out: FuzzCase[] = [];
  const ws = () => r.pick(['', ' ', '\n', '\t', '\r\n  ', '']);
  for (const route of routes) {
    const params = Object.fromEntries(route.params.map((p) => [p, validParam(p, ctx)]));
    const path = pathWith(route, params);
    const label = `${route.method} ${route.path}`;
    const add = (c: Omit<FuzzCase, 'method' | 'path'> & { path?: string }) =>
      out.push({ method: route.method, path: c.path ?? path, ...c, name: `${label}: ${c.name}` });
    const sendsValid = valid(route);
    const sampleBody = (): J => (route.body ? sample(route.body, r, ctx) : {});
    const stored = (body: J): string[] | undefined => {
      if (
        route.path !== '/logs/{logId}/records' ||
        body === null ||
        typeof body !== 'object' ||
        Array.isArray(body) ||
        body instanceof Raw ||
        body instanceof Members
      )
        return undefined;
      const recs = body.records;
      return Array.isArray(recs) ? recs.map((x) => jsonText((x as Record<string, J>).data!, {}, true)) : undefined;
    };

    // Bad path parameters (each one alone), with a valid body.
    for (const p of route.params) {
      for (const [v, why] of BAD_PARAMS) {
        if (p === 'profile' && (v === 'delivery' || v === 'limits')) continue;
        add({
          name: `path ${p}: ${why}`,
          path: pathWith(route, { ...params, [p]: v }),
          body: route.body ? jsonText(sampleBody()) : undefined,
          expect: 'refused',
        });
      }
    }

    if (route.method === 'GET' || route.method === 'DELETE') {
      if (sendsValid) add({ name: 'valid', expect: 'any' });
      add({ name: 'a body on a route that takes none', body: '{"junk": [1, 2, 3]', expect: 'any' });
      continue;
    }

    // Valid requests, in unusual forms, and every mutation of them: `rounds` times, each from
    // another valid sample (other optional fields, other values).
    const first = sampleBody();
    for (let round = 0; round < rounds; round++) {
      const plain = round === 0 ? first : sampleBody();
      if (sendsValid) {
        for (let k = 0; k < 6; k++) {
          const v = sampleBody();
          add({ name: 'valid', body: jsonText(v), expect: 'any', storedData: stored(v) });
        }
        add({ name: 'valid, whitespace between every token', body: jsonText(plain, { ws }), expect: 'any', storedData: stored(plain) });
        add({ name: 'valid, with a byte order mark', body: `\uFEFF${jsonText(plain)}`, expect: 'any', storedData: stored(plain) });
        if (plain && typeof plain === 'object' && !Array.isArray(plain) && !(plain instanceof Raw) && !(plain instanceof Members)) {
          const entries = Object.entries(plain);
          const escaped = new Members(
            entries.map(([k, v]) => [k, v, `"${[...k].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`]),
          );
          add({ name: 'valid, member names written as \\u escapes', body: jsonText(escaped), expect: 'any', storedData: stored(plain) });
          // Duplicate names: JSON.parse keeps the last, so the service must read the last one too.
          for (const [k, v] of entries) {
            const wrong: J = k === 'records' ? [{ data: 'first, overridden' }] : 'overridden';
            const dupLastValid = new Members([
              ...entries.filter(([x]) => x !== k).map(([x, y]) => [x, y] as [string, J]),
              [k, wrong],
              [k, v],
            ]);
            add({
              name: `valid, ${k} given twice (the last valid)`,
              body: jsonText(dupLastValid),
              expect: 'any',
              storedData: stored(plain),
            });
            // Of the wrong type for every field here (`records` takes arrays, but not an empty one).
            const bad: J = k === 'records' ? [] : [[[]]];
            const dupLastBad = new Members([...entries.filter(([x]) => x !== k).map(([x, y]) => [x, y] as [string, J]), [k, v], [k, bad]]);
            add({ name: `${k} given twice (the last invalid)`, body: jsonText(dupLastBad), expect: 'refused' });
          }
        }
        if (route.path === '/logs/{logId}/records') {
          // A record's data given twice: the last one is the record's.
          const dupData = `{"records":[{"data":"first","data":${jsonText(new Raw('12345678901234567890123'))}},{"data":{"a":1},"key":"k","data":[1e400]}]}`;
          add({
            name: 'valid, data given twice in a record',
            body: dupData,
            expect: 'any',
            storedData: ['12345678901234567890123', '[1e400]'],
          });
          const many = Array.from({ length: 500 }, (_, i) => ({ data: r.pick(interestingData().slice(0, 20)), key: `k${i}` }));
          add({
            name: 'valid, 500 records of unusual data',
            body: jsonText({ records: many }, { ws }),
            expect: 'any',
            storedData: many.map((m) => jsonText(m.data, {}, true)),
          });
        }
        // Content types and encodings that still carry UTF-8 JSON.
        for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8', 'APPLICATION/JSON', '']) {
          add({
            name: `valid, content-type '${type}'`,
            body: jsonText(plain),
            headers: type ? { 'content-type': type } : {},
            expect: 'any',
            storedData: stored(plain),
          });
        }
        add({
          name: 'valid, base64 (a binary content type)',
          body: Buffer.from(jsonText(plain)).toString('base64'),
          isBase64Encoded: true,
          headers: { 'content-type': 'application/octet-stream' },
          expect: 'any',
          storedData: stored(plain),
        });
      }

      // Mutations of the body, each wrong in one place.
      if (route.body) {
        for (const m of mutations(route.body, plain, r, ctx, '')) {
          if (m.expect === 'any' && !sendsValid) continue;
          add({ name: m.why, body: jsonText(m.body), expect: m.expect, storedData: m.expect === 'any' ? stored(m.body) : undefined });
        }
      }
    }

    if (route.path === '/logs/{logId}/sessions') {
      // Not expressible in the schema, but in its description: a session cannot start past the end of its log.
      for (const n of [1_000_000_000, 9007199254740991])
        add({ name: `start after ${n}, past the end of the log`, body: `{"start":{"afterSeq":${n}}}`, expect: 'refused' });
    }

    // Whole bodies that are not the request at all.
    const junk: [string, string][] = [
      ['null', 'null instead of an object'],
      ['[]', 'an array instead of an object'],
      ['"records"', 'a string instead of an object'],
      ['0', 'a number instead of an object'],
      ['1e400', 'a huge number instead of an object'],
      ['true', 'a boolean instead of an object'],
      [nested(5000).text, 'an array nested 5,000 deep'],
      [nestedObjects(5000).text, 'objects nested 5,000 deep'],
      ['{', 'truncated JSON'],
      ['{"a":1,}', 'a trailing comma'],
      ["{'a':1}", 'single quotes'],
      ['{"a":NaN}', 'NaN'],
      ['{"a":1} {"b":2}', 'two JSON values'],
      ['{"a":1} // comment', 'a comment'],
      ['{"a":"\u0001"}', 'a raw control character in a string'],
      ['{"a":"\\x41"}', 'an unknown escape'],
      ['{"a":"\\ud83d"', 'truncated after a lone surrogate'],
      ['\u0000', 'a NUL byte'],
      ['   \n\t ', 'only whitespace'],
      ['<xml/>', 'XML'],
      ['a=1&b=2', 'a form body'],
      [`{"a":"${'x'.repeat(300)}\n"}`, 'a raw newline after 300 characters (the message must not quote the body)'],
    ];
    for (const [body, why] of junk) add({ name: `body: ${why}`, body, expect: 'refused' });
    if (!route.bodyRequired && sendsValid) add({ name: 'no body at all', expect: 'any' });
    if (route.bodyRequired) add({ name: 'no body at all (required)', expect: 'refused' });

    // Encodings that are not UTF-8 JSON.
    const invalid = jsonText({ ...(first as object), zzUnknown: 'é' } as J);
    add({
      name: 'gzip-compressed body',
      body: gzipSync(jsonText(first)).toString('base64'),
      isBase64Encoded: true,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      expect: 'refused',
    });
    add({
      name: 'UTF-16LE body',
      body: Buffer.from(`\uFEFF${jsonText(first)}`, 'utf16le').toString('base64'),
      isBase64Encoded: true,
      headers: { 'content-type': 'application/json; charset=utf-16' },
      expect: 'refused',
    });
    add({
      name: 'Latin-1 body (not UTF-8)',
      body: Buffer.from(invalid, 'latin1').toString('base64'),
      isBase64Encoded: true,
      headers: { 'content-type': 'application/json; charset=iso-8859-1' },
      expect: 'refused',
    });
    add({
      name: 'invalid UTF-8 bytes inside a string',
      body: Buffer.concat([Buffer.from('{"zzUnknown":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]).toString('base64'),
      isBase64Encoded: true,
      headers: { 'content-type': 'application/json' },
      expect: 'refused',
    });
    add({ name: 'base64 that is not base64', body: '!!!not base64!!!', isBase64Encoded: true, expect: 'refused' });
    add({
      name: 'multipart form',
      body: '--x\r\ncontent-disposition: form-data; name="a"\r\n\r\n1\r\n--x--',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      expect: 'refused',
    });
  }
  return out;
}
