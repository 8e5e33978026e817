/**
 * RFC 8785 (JCS) canonical JSON for the value types of a strict document:
 * members sorted by UTF-16 code units, no whitespace, strings escaped as
 * `JSON.stringify` does, integers in shortest form.
 *
 * @module
 */
import { isJsonObject, type JsonValue } from "./strict_json.ts";

/** Serialises `value` canonically. */
export function canonicalize(value: JsonValue): string {
  if (value === null || typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError("JCS here covers safe integers only");
    }
    return String(value);
  }
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    return "[" + value.map((v) => canonicalize(v)).join(",") + "]";
  }
  if (isJsonObject(value)) {
    // Default sort compares UTF-16 code units, as RFC 8785 §3.2.3 requires.
    const keys = Object.keys(value).sort();
    return "{" +
      keys.map((k) => JSON.stringify(k) + ":" + canonicalize(value[k])).join(
        ",",
      ) + "}";
  }
  throw new TypeError("not a JSON value");
}

/** The signed bytes of a document: JCS without top-level `signatures`. */
export function signedBytes(
  doc: { readonly [key: string]: JsonValue },
): Uint8Array {
  const rest: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(doc)) if (k !== "signatures") rest[k] = v;
  return new TextEncoder().encode(canonicalize(rest));
}
