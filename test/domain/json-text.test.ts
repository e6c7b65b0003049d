import { describe, expect, it } from 'vitest';
import { jsonDepth, jsonSyntaxError, jsonValueText, minifySpan, recordDataTexts } from '../../lambdas/domain/json-text';
import { prng } from './model';

type Rng = ReturnType<typeof prng>;

const STRINGS = [
  '\ud800',
  'a\udc00b',
  '\udbff\udfff',
  '😀\\"',
  '"\\\\"',
  '',
  'a',
  'quote " and backslash \\',
  'brackets ] } [ {',
  'comma , colon :',
  'tab\tline\nbreak\r',
  '\u0000\u001f\u007f',
  'é中😀',
  '\u2028\u2029',
  'sp a ce s',
  '\\u0041 looks like an escape',
  '"',
];

/** A random JSON value (no numbers JSON.stringify would change: what JSON.stringify writes is the reference). */
function randomValue(r: Rng, depth = 0): unknown {
  const k = r.int(0, depth > 5 ? 3 : 5);
  switch (k) {
    case 0:
      return r.pick([0, -1, 1.5, 1e21, -2.5e-7, 123456789]);
    case 1:
      return r.pick(STRINGS) + (r.next() < 0.3 ? r.pick(STRINGS) : '');
    case 2:
      return r.pick([true, false, null]);
    case 3:
      return r.pick(STRINGS);
    case 4:
      return Array.from({ length: r.int(0, 4) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(0, 4); i > 0; i--)
        o[r.pick(['a', 'b', 'data', 'records', 'key', '', 'é', '"q"', 'x y'])] = randomValue(r, depth + 1);
      return o;
    }
  }
}

describe('recordDataTexts', () => {
  it('gives each record data as JSON.stringify writes it, whatever the spacing of the body (2,000 seeded bodies)', () => {
    const r = prng(7);
    for (let n = 0; n < 2000; n++) {
      const body = {
        records: Array.from({ length: r.int(1, 5) }, () => ({ ...(r.next() < 0.5 ? { key: 'k' } : {}), data: randomValue(r) })),
        idempotencyKey: 'x',
      };
      const text = JSON.stringify(body, null, r.pick([0, 1, 2, '\t', ' \n ' as never]));
      const got = recordDataTexts(text)!;
      expect(got.map((g) => g!.text)).toEqual(body.records.map((x) => JSON.stringify(x.data)));
    }
  });

  it('keeps number tokens exactly as written', () => {
    const body =
      '{"records": [{"data": 12345678901234567890123}, {"data": 1e400}, {"data": [-0, 1.0, 1E+2, 0.1000000000000000055511151231257827]}, {"data": {"n" : 9007199254740993 }}]}';
    expect(recordDataTexts(body)!.map((t) => t!.text)).toEqual([
      '12345678901234567890123',
      '1e400',
      '[-0,1.0,1E+2,0.1000000000000000055511151231257827]',
      '{"n":9007199254740993}',
    ]);
  });

  it('keeps whitespace and escapes inside strings, drops it between tokens', () => {
    const body = '{"records":[{"data": { "a b" : [ "x  y", "\\n\\u0041\\/" ,\t"]" ] }\n}]}';
    expect(recordDataTexts(body)![0]!.text).toBe('{"a b":["x  y","\\n\\u0041\\/","]"]}');
  });

  it('reads duplicate names as JSON.parse does: the last one, at either level', () => {
    const body = '{"records":[{"data":"first"}],"idempotencyKey":"k","records":[{"data":1,"key":"a","data":[2]},{"data":{"x":1,"x":2}}]}';
    expect(recordDataTexts(body)!.map((t) => t!.text)).toEqual(['[2]', '{"x":1,"x":2}']);
    expect((JSON.parse(body) as { records: { data: unknown }[] }).records.map((x) => x.data)).toEqual([[2], { x: 2 }]);
  });

  it('decodes escaped member names as JSON.parse does', () => {
    const body = '{"rec\\u006frds":[{"d\\u0061ta":5,"data":6}],"records\\u0000":[]}';
    expect(recordDataTexts(body)!.map((t) => t!.text)).toEqual(['6']);
    expect(recordDataTexts('{"records":[{"\\u0064ata":7}]}')!.map((t) => t!.text)).toEqual(['7']);
  });

  it('names the nesting depth, iteratively (5,000 levels)', () => {
    const deep = `${'['.repeat(5000)}1${']'.repeat(5000)}`;
    const got = recordDataTexts(`{"records":[{"data":${deep}},{"data":"[[[["},{"data":{"a":[{}]}}]}`)!;
    expect(got.map((g) => g!.depth)).toEqual([5000, 0, 3]);
    expect(got[0]!.text).toBe(deep);
    expect(jsonDepth(deep)).toBe(5000);
    expect(jsonDepth(' 1 ')).toBe(0);
    expect(jsonDepth('[[], [[]], "]]]]"]')).toBe(3);
  });

  it('escapes a raw lone surrogate (it has no UTF-8 form) and keeps pairs and escaped ones as written', () => {
    const body = '{"records":[{"data":"a\ud800b"},{"data":"\udc00"},{"data":"😀"},{"data":"\\ud800"},{"data":["\ud83d", "x"]}]}';
    const texts = recordDataTexts(body)!.map((t) => t!.text);
    expect(texts).toEqual(['"a\\ud800b"', '"\\udc00"', '"😀"', '"\\ud800"', '["\\ud83d","x"]']);
    // The same values: only the form of the lone surrogates changed.
    expect(texts.map((t) => JSON.parse(t))).toEqual((JSON.parse(body) as { records: { data: unknown }[] }).records.map((x) => x.data));
  });

  it('is undefined for a body that is not an append, and per record that is not an object with data', () => {
    expect(recordDataTexts('[1]')).toBeUndefined();
    // An array whose elements read like a member: still not an append.
    expect(recordDataTexts('["records", [{"data": 1}]]')).toBeUndefined();
    expect(recordDataTexts('{"x":1}')).toBeUndefined();
    expect(recordDataTexts('{"records":{"data":1}}')).toBeUndefined();
    expect(recordDataTexts('{"records":[]}')).toEqual([]);
    expect(recordDataTexts('{"records":[1, {"key":"k"}, [], {"data":null}]}')).toEqual([
      undefined,
      undefined,
      undefined,
      { text: 'null', depth: 0 },
    ]);
  });
});

describe('minifySpan', () => {
  it('removes whitespace between tokens only', () => {
    const s = ' [ 1 , { "a" : " b  c " } , true ] ';
    expect(minifySpan(s, 1, s.length - 1)).toBe('[1,{"a":" b  c "},true]');
  });
});

describe('jsonSyntaxError', () => {
  it('agrees with JSON.parse on valid texts and on texts broken at random (20,000 seeded)', () => {
    const r = prng(11);
    const junk = ['', ',', ']', '}', '"', '\\', 'x', ' ', '\n', '\u0001', ':', '{', '[', '0', '-', '.', 'e', 'tru', 'nul'];
    for (let n = 0; n < 20_000; n++) {
      let text = JSON.stringify(randomValue(r), null, r.pick([0, 1]));
      const op = r.int(0, 3);
      const at = r.int(0, text.length);
      if (op === 1) text = text.slice(0, at);
      else if (op === 2) text = text.slice(0, at) + r.pick(junk) + text.slice(at);
      else if (op === 3) text = text.slice(0, at) + text.slice(at + 1);
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      const problem = jsonSyntaxError(text);
      expect(problem === undefined, `${JSON.stringify(text)}: ${JSON.stringify(problem)}`).toBe(parses);
    }
  });

  it('says where and what, by line and column', () => {
    expect(jsonSyntaxError('{"a": 1,\n  "b" 2}')).toMatchObject({ line: 2, column: 7, problem: "unexpected '2' where ':' belongs" });
    expect(jsonSyntaxError('{"a":')).toMatchObject({ line: 1, column: 6, problem: 'the text ends too early' });
    expect(jsonSyntaxError('{"a":"x\ny"}')).toMatchObject({
      line: 1,
      column: 8,
      problem: 'a raw character U+000A inside a string (control characters must be escaped)',
    });
    expect(jsonSyntaxError("{'a':1}")).toMatchObject({
      line: 1,
      column: 2,
      problem: "unexpected ''' where a member name in double quotes belongs",
    });
    expect(jsonSyntaxError('[1,]')).toMatchObject({ column: 4, problem: "unexpected ']'" });
    expect(jsonSyntaxError('{} {}')).toMatchObject({ column: 4, problem: "unexpected '{' after the end of the JSON value" });
    expect(jsonSyntaxError('\u001f\u008b')).toMatchObject({ column: 1, problem: 'unexpected character U+001F' });
    expect(jsonSyntaxError(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)).toBeUndefined();
  });
});

const SPACES = ['', '', ' ', '\n', '\r\n', '\t', ' \r\t\n '];

/** JSON text of `v` with random whitespace between tokens and, at random, lone surrogates written raw instead of escaped. */
function printSpaced(r: Rng, v: unknown): string {
  const ws = () => r.pick(SPACES);
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => `${printSpaced(r, x)}${ws()}`).join(`,${ws()}`)}]`;
  if (v !== null && typeof v === 'object') {
    const members = Object.entries(v).map(([k, x]) => `${printString(r, k)}${ws()}:${ws()}${printSpaced(r, x)}${ws()}`);
    return `{${ws()}${members.join(`,${ws()}`)}}`;
  }
  return typeof v === 'string' ? printString(r, v) : JSON.stringify(v);
}

/** A string's JSON text; its lone surrogates (which JSON.stringify escapes) raw at random. */
function printString(r: Rng, v: string): string {
  const raw = r.next() < 0.5;
  return JSON.stringify(v).replace(/\\\\|\\u(d[89a-f][0-9a-f]{2})/g, (m, h?: string) =>
    h !== undefined && raw ? String.fromCharCode(Number.parseInt(h, 16)) : m,
  );
}

/** How deeply the arrays and objects of `v` nest. */
function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  return 1 + Math.max(0, ...Object.values(v).map(depthOf));
}

describe('the scanner against JSON.parse and JSON.stringify (seeded random values, random whitespace)', () => {
  it('jsonValueText and jsonDepth: the minified text is JSON.stringify(JSON.parse(text)), the depth the value’s (3,000 values)', () => {
    const r = prng(23);
    for (let n = 0; n < 3000; n++) {
      const v = randomValue(r);
      const text = `${r.pick(SPACES)}${printSpaced(r, v)}${r.pick(SPACES)}`;
      const got = jsonValueText(text);
      expect(got, JSON.stringify(text)).toEqual({ text: JSON.stringify(JSON.parse(text)), depth: depthOf(v) });
      expect(jsonDepth(text)).toBe(depthOf(v));
    }
  });

  it('recordDataTexts: members in any order, records of any kind, whitespace anywhere (2,000 bodies)', () => {
    const r = prng(29);
    for (let n = 0; n < 2000; n++) {
      const records = Array.from({ length: r.int(0, 5) }, () => {
        if (r.next() < 0.2) return randomValue(r);
        const rec: Record<string, unknown> = {};
        for (const name of ['key', 'data', 'x', 'data2'].filter(() => r.next() < 0.6).sort(() => r.next() - 0.5))
          rec[name] = randomValue(r);
        return rec;
      });
      const body: Record<string, unknown> = {};
      for (const name of ['idempotencyKey', 'records', 'recordz', 'more'].sort(() => r.next() - 0.5))
        body[name] = name === 'records' ? records : randomValue(r);
      const text = `${r.pick(SPACES)}${printSpaced(r, body)}${r.pick(SPACES)}`;
      const want = (JSON.parse(text) as { records: unknown[] }).records.map((x) =>
        x !== null && typeof x === 'object' && !Array.isArray(x) && 'data' in x
          ? { text: JSON.stringify(x.data), depth: depthOf(x.data) }
          : undefined,
      );
      expect(recordDataTexts(text), JSON.stringify(text)).toEqual(want);
    }
  });
});

describe('jsonSyntaxError, case by case', () => {
  // [text, offset, line, column, problem]: every way a text can go wrong, and where it is said to.
  const cases: [string, number, number, number, string][] = [
    ['', 0, 1, 1, 'the text ends too early'],
    ['  ', 2, 1, 3, 'the text ends too early'],
    ['[', 1, 1, 2, 'the text ends too early'],
    ['{', 1, 1, 2, 'the text ends too early'],
    ['{"a"', 4, 1, 5, 'the text ends too early'],
    ['{"a":1', 6, 1, 7, 'the text ends too early'],
    ['[}', 1, 1, 2, "unexpected '}'"],
    ['{]', 1, 1, 2, "unexpected ']' where a member name in double quotes belongs"],
    ['{"a":1,}', 7, 1, 8, "unexpected '}' where a member name in double quotes belongs"],
    ['{1:2}', 1, 1, 2, "unexpected '1' where a member name in double quotes belongs"],
    ['{,}', 1, 1, 2, "unexpected ',' where a member name in double quotes belongs"],
    ['{"a":1,"b"}', 10, 1, 11, "unexpected '}' where ':' belongs"],
    ['{"a" "b"}', 5, 1, 6, `unexpected '"' where ':' belongs`],
    ['[1 2]', 3, 1, 4, "unexpected '2' where ',' or ']' belongs"],
    ['[1}', 2, 1, 3, "unexpected '}' where ',' or ']' belongs"],
    ['{"a":1 "b":2}', 7, 1, 8, `unexpected '"' where ',' or '}' belongs`],
    ['{"a":1]', 6, 1, 7, "unexpected ']' where ',' or '}' belongs"],
    ['[,1]', 1, 1, 2, "unexpected ','"],
    ['{"a":[}]}', 6, 1, 7, "unexpected '}'"],
    ['[[]]]', 4, 1, 5, "unexpected ']' after the end of the JSON value"],
    ['{}}', 2, 1, 3, "unexpected '}' after the end of the JSON value"],
    ['true false', 5, 1, 6, "unexpected 'f' after the end of the JSON value"],
    ['falsey', 5, 1, 6, "unexpected 'y' after the end of the JSON value"],
    ['tru', 0, 1, 1, "unexpected 't'"],
    ['nul', 0, 1, 1, "unexpected 'n'"],
    ['x', 0, 1, 1, "unexpected 'x'"],
    ['"abc', 4, 1, 5, 'a string that is never closed'],
    ['{"ab', 4, 1, 5, 'a string that is never closed'],
    ['{"a\\x":1}', 3, 1, 4, 'an unknown escape \\x'],
    ['{"a":1,"\u0001":2}', 8, 1, 9, 'a raw character U+0001 inside a string (control characters must be escaped)'],
    ['"a\\', 2, 1, 3, 'the text ends too early'],
    ['"a\\x"', 2, 1, 3, 'an unknown escape \\x'],
    ['"\\u12g4"', 1, 1, 2, 'a \\u escape without four hex digits'],
    ['"\\u004"', 1, 1, 2, 'a \\u escape without four hex digits'],
    ['"\\u004', 1, 1, 2, 'a \\u escape without four hex digits'],
    ['"a\u001fb"', 2, 1, 3, 'a raw character U+001F inside a string (control characters must be escaped)'],
    ['"tab\tx"', 4, 1, 5, 'a raw character U+0009 inside a string (control characters must be escaped)'],
    ['"\u0000"', 1, 1, 2, 'a raw character U+0000 inside a string (control characters must be escaped)'],
    ['01', 1, 1, 2, "unexpected '1' after the end of the JSON value"],
    ['-01', 2, 1, 3, "unexpected '1' after the end of the JSON value"],
    ['-', 1, 1, 2, 'the text ends too early'],
    ['-a', 1, 1, 2, "unexpected 'a'"],
    ['1.', 2, 1, 3, 'the text ends too early'],
    ['1.e5', 2, 1, 3, "unexpected 'e'"],
    ['1e', 2, 1, 3, 'the text ends too early'],
    ['1e+', 3, 1, 4, 'the text ends too early'],
    ['1E-x', 3, 1, 4, "unexpected 'x'"],
    ['1ee', 2, 1, 3, "unexpected 'e'"],
    ['[1.5e+', 6, 1, 7, 'the text ends too early'],
    ['\u007f', 0, 1, 1, 'unexpected character U+007F'],
    ['!', 0, 1, 1, "unexpected '!'"],
    ['~', 0, 1, 1, "unexpected '~'"],
    ['\u00e9', 0, 1, 1, 'unexpected character U+00E9'],
    ['😀', 0, 1, 1, 'unexpected character U+1F600'],
    ['1\n2', 2, 2, 1, "unexpected '2' after the end of the JSON value"],
    ['\n\n  x', 4, 3, 3, "unexpected 'x'"],
    ['[1,\n\n  ]', 7, 3, 3, "unexpected ']'"],
    ['[\r\n1,\r\n x]', 8, 3, 2, "unexpected 'x'"],
    ['"a\nb"', 2, 1, 3, 'a raw character U+000A inside a string (control characters must be escaped)'],
  ];
  it.each(cases)('%j: offset %i, line %i, column %i: %s', (text, offset, line, column, problem) => {
    expect(jsonSyntaxError(text)).toEqual({ offset, line, column, problem });
    expect(() => JSON.parse(text)).toThrow();
  });

  it('accepts every form of escape, number and literal', () => {
    for (const text of [
      '"\\u00E9\\u00e9\\uABCD\\uabcd\\u0000"',
      '"\\/\\b\\f\\n\\r\\t\\"\\\\"',
      '"\u007f\ud800 \udfff\u00e9😀 "',
      '-0.5e+10',
      '0.0e0',
      '1E-7',
      '-0',
      '1234567890',
      '[true,false,null]',
      ' \r\n\t{ "a" :\r[ 1 ,\t{ } , [ ] ] } \r\n\t',
    ]) {
      expect(jsonSyntaxError(text), text).toBeUndefined();
      expect(() => JSON.parse(text)).not.toThrow();
    }
  });
});

describe('raw surrogates at the edges of their ranges', () => {
  const units = ['\ud7ff', '\ud800', '\udbff', '\udc00', '\udfff', '\ue000'];
  const strings = [...units, ...units.flatMap((a) => units.map((b) => a + b)), '\ud800\\n\udc00', '\\\\\udfff', 'x\udbff\\"'];
  it('escapes exactly the lone ones, in any context (jsonValueText and recordDataTexts)', () => {
    for (const str of strings) {
      for (const text of [`"${str}"`, `["${str}",1]`, `[ "${str}" , "${str}" ]`, `{"${str}":"${str}"}`]) {
        const want = { text: JSON.stringify(JSON.parse(text)), depth: depthOf(JSON.parse(text)) };
        expect(jsonValueText(text), JSON.stringify(text)).toEqual(want);
        expect(recordDataTexts(`{"records":[{"data":${text}},{"data":${text} }]}`)).toEqual([want, want]);
      }
    }
  });
});
