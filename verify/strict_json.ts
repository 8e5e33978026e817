/**
 * A strict JSON parser for signed documents. Unlike `JSON.parse` it rejects
 * a repeated member name anywhere (TM-01: a signer and a verifier must
 * never disagree on what was signed), non-integer and unsafe numbers (no
 * v1 value is one, and JCS of large numbers differs between libraries),
 * invalid UTF-8, and nesting deeper than {@link MAX_JSON_DEPTH}.
 *
 * @module
 */

/** A JSON value as decoded by {@link parseStrictJson}. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** Deepest nesting accepted. */
export const MAX_JSON_DEPTH = 32;

/** Why a document was rejected, with the byte offset. */
export class StrictJsonError extends Error {
  /** What is wrong and where, as a byte offset into the document. */
  constructor(message: string, readonly offset: number) {
    super(`${message} at offset ${offset}`);
    this.name = "StrictJsonError";
  }
}

// ignoreBOM: true keeps a leading U+FEFF in the text, where the check below
// refuses it; with false the decoder would strip it silently and a manifest
// with and without a BOM (two different CIDs) would both verify.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parses UTF-8 bytes (or a string) strictly. */
export function parseStrictJson(input: Uint8Array | string): JsonValue {
  let text: string;
  if (typeof input === "string") text = input;
  else {
    try {
      text = decoder.decode(input);
    } catch {
      throw new StrictJsonError("invalid UTF-8", 0);
    }
  }
  let i = 0;
  const fail = (msg: string): never => {
    throw new StrictJsonError(msg, i);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const parseString = (): string => {
    // text[i] === '"'
    i++;
    let out = "";
    let start = i;
    while (true) {
      if (i >= text.length) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c === 0x5c) {
        out += text.slice(start, i);
        const e = text[i + 1];
        switch (e) {
          case '"':
            out += '"';
            break;
          case "\\":
            out += "\\";
            break;
          case "/":
            out += "/";
            break;
          case "b":
            out += "\b";
            break;
          case "f":
            out += "\f";
            break;
          case "n":
            out += "\n";
            break;
          case "r":
            out += "\r";
            break;
          case "t":
            out += "\t";
            break;
          case "u": {
            const hex = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default:
            fail("bad escape");
        }
        i += 2;
        start = i;
        continue;
      }
      i++;
    }
  };
  const parseNumber = (): number => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(
      text.slice(i, i + 400),
    );
    if (!m) return fail("bad number");
    if (m[2] !== undefined || m[3] !== undefined) {
      fail("non-integer number");
    }
    if (m[0] === "-0") fail("negative zero");
    const n = Number(m[0]);
    if (!Number.isSafeInteger(n)) fail("integer out of the safe range");
    i += m[0].length;
    return n;
  };
  const parseValue = (depth: number): JsonValue => {
    if (depth > MAX_JSON_DEPTH) fail("nesting too deep");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: Record<string, JsonValue> = Object.create(null);
      const seen = new Set<string>();
      ws();
      if (text[i] === "}") {
        i++;
        return Object.freeze(obj);
      }
      while (true) {
        ws();
        if (text[i] !== '"') fail("expected member name");
        const key = parseString();
        if (seen.has(key)) fail(`repeated member name '${key}'`);
        seen.add(key);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        const value = parseValue(depth + 1);
        Object.defineProperty(obj, key, {
          value,
          enumerable: true,
          writable: false,
          configurable: false,
        });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          // A null-prototype object keeps "__proto__" an ordinary member.
          return Object.freeze(obj);
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return Object.freeze(arr);
      }
      while (true) {
        arr.push(parseValue(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return Object.freeze(arr);
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return parseString();
    if (c === "t" && text.startsWith("true", i)) {
      i += 4;
      return true;
    }
    if (c === "f" && text.startsWith("false", i)) {
      i += 5;
      return false;
    }
    if (c === "n" && text.startsWith("null", i)) {
      i += 4;
      return null;
    }
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) {
      return parseNumber();
    }
    return fail(c === undefined ? "unexpected end of input" : "unexpected character");
  };
  if (text.charCodeAt(0) === 0xfeff) fail("byte order mark");
  const value = parseValue(0);
  ws();
  if (i !== text.length) fail("trailing data");
  return value;
}

/** True for a JSON object (not an array, not null). */
export function isJsonObject(
  v: JsonValue | undefined,
): v is { readonly [key: string]: JsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
