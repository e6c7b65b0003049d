/**
 * JSON text as the producer wrote it. An append keeps each record's `data` as its source text
 * from the request body, never as JSON.parse's value serialized again: a number such as
 * 12345678901234567890123 or 1e400 has no exact JavaScript value, so parsing and serializing
 * would change it (to 1.2345678901234568e+22 and null). The text is only minified: whitespace
 * outside strings is dropped and everything else is kept byte for byte, so number tokens,
 * escapes and key order are exactly as sent. (One exception, which keeps the value: a raw
 * lone surrogate inside a string, which has no UTF-8 form and so would reach storage as
 * U+FFFD, is written as its `\u` escape (four hex digits) instead. An HTTP body decoded from UTF-8 never holds
 * one.)
 *
 * Everything here is iterative (no recursion), so no nesting depth exhausts the stack, and
 * works on valid JSON only (JSON.parse accepted it first), except jsonSyntaxError, which says
 * where an invalid text goes wrong.
 */

/** A JSON value's text, minified, and how deeply its arrays and objects nest (0 for a scalar). */
export interface ValueText {
  text: string;
  depth: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;
const COLON = 0x3a;

const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

/** Whether the UTF-16 unit at `j` of `s` is half of a surrogate pair that is not there. */
function isLoneSurrogate(s: string, j: number): boolean {
  const c = s.charCodeAt(j);
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = s.charCodeAt(j + 1); // NaN past the end
    return !(d >= 0xdc00 && d <= 0xdfff);
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const b = s.charCodeAt(j - 1);
    return !(b >= 0xd800 && b <= 0xdbff);
  }
  return false;
}

interface Span {
  /** Index just past the value. */
  end: number;
  depth: number;
  /** Whether minifying changes the text (whitespace between tokens, or a raw lone surrogate). */
  rewrite: boolean;
}

const SURROGATE = /[\ud800-\udfff]/g; // UTF-16 units (no u flag)

/** Where the next occurrence of something is, from any position: found once per stretch, valid for every position in it. */
class Next {
  private from = 1;
  private at = 0; // the first occurrence at or after `from` (the text's length when none)
  constructor(private readonly find: (j: number) => number) {}
  atOrAfter(j: number): number {
    if (j < this.from || j > this.at) {
      this.from = j;
      this.at = this.find(j);
    }
    return this.at;
  }
}

/**
 * A valid JSON text being scanned. Strings are skipped with indexOf (from quote to backslash to
 * surrogate) instead of a loop over their characters: record data is mostly strings, and this
 * makes scanning cost about what JSON.parse does.
 */
class Source {
  readonly quote: Next;
  readonly backslash: Next;
  readonly surrogate: Next;
  constructor(readonly s: string) {
    const n = s.length;
    const of = (ch: string) => (j: number) => {
      const k = s.indexOf(ch, j);
      return k < 0 ? n : k;
    };
    this.quote = new Next(of('"'));
    this.backslash = new Next(of('\\'));
    // Only text beyond ASCII can hold a surrogate; its UTF-8 form is then longer than its length.
    const ascii = Buffer.byteLength(s, 'utf8') === n;
    this.surrogate = new Next((j) => {
      if (ascii) return n;
      SURROGATE.lastIndex = j;
      return SURROGATE.exec(s)?.index ?? n;
    });
  }
}

/** The end of the string token starting at `i` (at its opening quote), and whether it holds a raw lone surrogate. */
function stringEnd(src: Source, i: number): { end: number; lone: boolean } {
  const { s } = src;
  let lone = false;
  let j = i + 1;
  for (;;) {
    const q = src.quote.atOrAfter(j);
    const b = src.backslash.atOrAfter(j);
    const u = src.surrogate.atOrAfter(j);
    if (q < b && q < u) return { end: q + 1, lone };
    if (q >= s.length) return { end: s.length, lone }; // unreachable for valid JSON
    if (b < u)
      j = b + 2; // the escaped character (for a `\u` escape, its four hex digits are plain characters)
    else if (s.charCodeAt(u) <= 0xdbff && (s.charCodeAt(u + 1) & 0xfc00) === 0xdc00)
      j = u + 2; // a pair
    else {
      lone = true;
      j = u + 1;
    }
  }
}

/** The value starting at `i` (not at whitespace): where it ends, how deep it nests, whether minifying changes it. */
function valueSpan(src: Source, i: number): Span {
  const { s } = src;
  const c = s.charCodeAt(i);
  if (c === QUOTE) {
    const { end, lone } = stringEnd(src, i);
    return { end, depth: 0, rewrite: lone };
  }
  if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
    let depth = 0;
    let max = 0;
    let rewrite = false;
    for (let j = i; j < s.length; ) {
      const d = s.charCodeAt(j);
      if (d === QUOTE) {
        const str = stringEnd(src, j);
        if (str.lone) rewrite = true;
        j = str.end;
        continue;
      }
      if (d === OPEN_ARRAY || d === OPEN_OBJECT) {
        if (++depth > max) max = depth;
      } else if (d === CLOSE_ARRAY || d === CLOSE_OBJECT) {
        if (--depth === 0) return { end: j + 1, depth: max, rewrite };
      } else if (isWs(d)) rewrite = true;
      j++;
    }
    return { end: s.length, depth: max, rewrite }; // unreachable for valid JSON
  }
  // A number, true, false or null: up to the next delimiter.
  let j = i + 1;
  for (; j < s.length; j++) {
    const d = s.charCodeAt(j);
    if (d === COMMA || d === CLOSE_ARRAY || d === CLOSE_OBJECT || isWs(d)) break;
  }
  return { end: j, depth: 0, rewrite: false };
}

const hex4 = (c: number): string => `\\u${c.toString(16).padStart(4, '0')}`;

/** The text of s[start, end) (one valid JSON value) without whitespace between tokens, lone surrogates escaped. */
export function minifySpan(s: string, start: number, end: number): string {
  let out = '';
  let from = start; // start of the run not yet copied
  for (let j = start; j < end; ) {
    const c = s.charCodeAt(j);
    if (c === QUOTE) {
      // Copy strings as they are, but for lone surrogates.
      j++;
      while (j < end) {
        const d = s.charCodeAt(j);
        if (d === QUOTE) break;
        if (d === BACKSLASH) j += 2;
        else if (d >= 0xd800 && d <= 0xdfff && isLoneSurrogate(s, j)) {
          out += s.slice(from, j) + hex4(d);
          from = ++j;
        } else j++;
      }
      j++; // the closing quote
    } else if (isWs(c)) {
      out += s.slice(from, j);
      while (j < end && isWs(s.charCodeAt(j))) j++;
      from = j;
    } else j++;
  }
  return out + s.slice(from, end);
}

/** The value at `i` as a ValueText, and where it ends. */
function valueText(src: Source, i: number): ValueText & { end: number } {
  const span = valueSpan(src, i);
  const text = span.rewrite ? minifySpan(src.s, i, span.end) : src.s.slice(i, span.end);
  return { text, depth: span.depth, end: span.end };
}

/** A member name as JSON.parse gives it (escapes decoded). */
function memberName(s: string, i: number, end: number): string {
  const raw = s.slice(i + 1, end - 1);
  return raw.includes('\\') ? (JSON.parse(s.slice(i, end)) as string) : raw;
}

/**
 * Calls `each` for every member of the object at `i` (at its opening brace) with its name and
 * where its value starts; returns the index just past the object. Members come in text order,
 * so for a name given twice the last call is the one JSON.parse keeps.
 */
function forEachMember(src: Source, i: number, each: (name: string, valueStart: number) => void): number {
  const { s } = src;
  let j = skipWs(s, i + 1);
  if (s.charCodeAt(j) === CLOSE_OBJECT) return j + 1;
  for (;;) {
    const { end: nameEnd } = stringEnd(src, j);
    const name = memberName(s, j, nameEnd);
    j = skipWs(s, nameEnd);
    j = skipWs(s, j + 1); // the colon
    each(name, j);
    j = skipWs(s, valueSpan(src, j).end);
    if (s.charCodeAt(j) === COMMA) j = skipWs(s, j + 1);
    else return j + 1; // the closing brace
  }
}

/**
 * The minified text and depth of `data` of every element of the body's `records` array, for
 * an append's body `{"records": [{"data": ..., "key": ...}, ...], ...}`, as JSON.parse reads
 * the body: when a name is given twice, the last one counts, at either level. An element that
 * is not an object, or has no `data`, gets undefined. Undefined when the body is not an object
 * or its `records` is not an array. `body` must be valid JSON.
 */
export function recordDataTexts(body: string): (ValueText | undefined)[] | undefined {
  const src = new Source(body);
  let i = skipWs(body, 0);
  if (body.charCodeAt(i) !== OPEN_OBJECT) return undefined;
  let records = -1;
  forEachMember(src, i, (name, at) => {
    if (name === 'records') records = at;
  });
  if (records < 0 || body.charCodeAt(records) !== OPEN_ARRAY) return undefined;
  const out: (ValueText | undefined)[] = [];
  i = skipWs(body, records + 1);
  if (body.charCodeAt(i) === CLOSE_ARRAY) return out;
  for (;;) {
    let end: number;
    if (body.charCodeAt(i) === OPEN_OBJECT) {
      let data = -1;
      end = forEachMember(src, i, (name, at) => {
        if (name === 'data') data = at;
      });
      if (data < 0) out.push(undefined);
      else {
        const { text, depth } = valueText(src, data);
        out.push({ text, depth });
      }
    } else {
      end = valueSpan(src, i).end;
      out.push(undefined);
    }
    i = skipWs(body, end);
    if (body.charCodeAt(i) !== COMMA) return out;
    i = skipWs(body, i + 1);
  }
}

/** The minified text and depth of a whole JSON text (which must be valid). */
export function jsonValueText(text: string): ValueText {
  const start = skipWs(text, 0);
  const { text: t, depth } = valueText(new Source(text), start);
  return { text: t, depth };
}

/** How deeply the arrays and objects of a valid JSON text nest (0 for a scalar). */
export function jsonDepth(text: string): number {
  const start = skipWs(text, 0);
  return start < text.length ? valueSpan(new Source(text), start).depth : 0;
}

// ---- Where an invalid JSON text goes wrong ----------------------------------------------------

/** Where a text stops being JSON: a 1-based line and column (in UTF-16 units) and what is there. */
export interface SyntaxProblem {
  offset: number;
  line: number;
  column: number;
  /** A phrase for a sentence, e.g. "unexpected character 'x'" or "the text ends too early". */
  problem: string;
}

const describeChar = (s: string, i: number): string => {
  const c = s.codePointAt(i)!;
  const name = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  return c >= 0x21 && c <= 0x7e ? `'${String.fromCodePoint(c)}'` : `character ${name}`;
};

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/**
 * The first place where `s` is not JSON (RFC 8259), or undefined when it is JSON. Iterative, so
 * deep nesting is no problem; for messages that point at the mistake instead of quoting the
 * body back.
 */
export function jsonSyntaxError(s: string): SyntaxProblem | undefined {
  const ARR = 0;
  const OBJ = 1;
  const stack: number[] = [];
  type Expect = 'value' | 'firstValue' | 'name' | 'firstName' | 'colon' | 'after';
  let expect: Expect = 'value';
  let i = 0;
  const fail = (at: number, problem?: string): SyntaxProblem => {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < at; k++) {
      if (s.charCodeAt(k) === 0x0a) {
        line++;
        lineStart = k + 1;
      }
    }
    return {
      offset: at,
      line,
      column: at - lineStart + 1,
      problem: problem ?? (at >= s.length ? 'the text ends too early' : `unexpected ${describeChar(s, at)}`),
    };
  };
  /** Index past the string at `i`, or a problem. */
  const string = (i0: number): number | SyntaxProblem => {
    for (let j = i0 + 1; j < s.length; j++) {
      const c = s.charCodeAt(j);
      if (c === QUOTE) return j + 1;
      if (c < 0x20) return fail(j, `a raw ${describeChar(s, j)} inside a string (control characters must be escaped)`);
      if (c === BACKSLASH) {
        const e = s.charCodeAt(j + 1);
        if (e === 0x75 /* u */) {
          for (let k = 2; k < 6; k++) {
            if (!/[0-9a-fA-F]/.test(s[j + k] ?? '')) return fail(j, 'a \\u escape without four hex digits');
          }
          j += 5;
        } else if ('"\\/bfnrt'.includes(s[j + 1] ?? 'x')) j++;
        else return fail(j, j + 1 >= s.length ? 'the text ends too early' : `an unknown escape \\${s[j + 1]}`);
      }
    }
    return fail(s.length, 'a string that is never closed');
  };
  const number = (i0: number): number | SyntaxProblem => {
    let j = i0;
    if (s.charCodeAt(j) === 0x2d) j++;
    if (s.charCodeAt(j) === 0x30) j++;
    else if (isDigit(s.charCodeAt(j))) while (isDigit(s.charCodeAt(j))) j++;
    else return fail(j);
    if (s.charCodeAt(j) === 0x2e) {
      j++;
      if (!isDigit(s.charCodeAt(j))) return fail(j);
      while (isDigit(s.charCodeAt(j))) j++;
    }
    if (s.charCodeAt(j) === 0x65 || s.charCodeAt(j) === 0x45) {
      j++;
      if (s.charCodeAt(j) === 0x2b || s.charCodeAt(j) === 0x2d) j++;
      if (!isDigit(s.charCodeAt(j))) return fail(j);
      while (isDigit(s.charCodeAt(j))) j++;
    }
    return j;
  };
  for (;;) {
    i = skipWs(s, i);
    if (i >= s.length) return expect === 'after' && stack.length === 0 ? undefined : fail(i);
    const c = s.charCodeAt(i);
    // Right after '[' or '{', the container may close at once.
    if ((expect === 'firstValue' && c === CLOSE_ARRAY) || (expect === 'firstName' && c === CLOSE_OBJECT)) {
      stack.pop();
      i++;
      expect = 'after';
      continue;
    }
    switch (expect) {
      case 'firstValue':
      case 'value': {
        if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
          stack.push(c === OPEN_OBJECT ? OBJ : ARR);
          expect = c === OPEN_OBJECT ? 'firstName' : 'firstValue';
          i++;
          break;
        }
        let next: number | SyntaxProblem;
        if (c === QUOTE) next = string(i);
        else if (c === 0x2d || isDigit(c)) next = number(i);
        else {
          const word = ['true', 'false', 'null'].find((w) => s.startsWith(w, i));
          next = word ? i + word.length : fail(i);
        }
        if (typeof next !== 'number') return next;
        i = next;
        expect = 'after';
        break;
      }
      case 'firstName':
      case 'name': {
        if (c !== QUOTE) return fail(i, `unexpected ${describeChar(s, i)} where a member name in double quotes belongs`);
        const next = string(i);
        if (typeof next !== 'number') return next;
        i = next;
        expect = 'colon';
        break;
      }
      case 'colon':
        if (c !== COLON) return fail(i, `unexpected ${describeChar(s, i)} where ':' belongs`);
        i++;
        expect = 'value';
        break;
      case 'after': {
        const top = stack[stack.length - 1];
        if (top === undefined) return fail(i, `unexpected ${describeChar(s, i)} after the end of the JSON value`);
        if (c === COMMA) {
          expect = top === OBJ ? 'name' : 'value';
          i++;
        } else if ((c === CLOSE_ARRAY && top === ARR) || (c === CLOSE_OBJECT && top === OBJ)) {
          stack.pop();
          i++;
        } else return fail(i, `unexpected ${describeChar(s, i)} where ',' or '${top === OBJ ? '}' : ']'}' belongs`);
        break;
      }
    }
  }
}
