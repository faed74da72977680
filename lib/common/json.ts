import { isInteger, parse, stringify } from 'lossless-json';
import * as v from 'valibot';

/**
 * JSON for u64 fields: every integer is read as a bigint (never through a JS
 * number, which loses precision above 2^53) and bigints are written as exact
 * integers.
 */
export function parseJson(text: string): unknown {
  return parse(text, null, (value: string) => (isInteger(value) ? BigInt(value) : Number(value)));
}

/** A number JSON.parse cannot give exactly as parseJson does: a fraction, or an integer beyond 2^53. */
const INEXACT = Symbol('inexact');

/**
 * parseJson for text whose numbers are all integers (a snapshot's), about ten
 * times faster: JSON.parse, each integer made a bigint, unless a number is a
 * fraction or beyond 2^53 (then the exact parser reads it all). Text our
 * writer never makes reads otherwise: an integer written with a fraction or
 * exponent (`1.0`, `1e3`) as that integer, a key given twice as its last value
 * (the exact parser refuses it). Whoever can write such text into a repository
 * can write any snapshot: it gains nothing.
 */
export function parseIntegerJson(text: string): unknown {
  // JSON.parse, then a walk: a reviver, called for every value, took three times as long.
  const value: unknown = JSON.parse(text);
  try {
    return integersToBigints(value);
  } catch (err) {
    if (err === INEXACT) return parseJson(text);
    throw err;
  }
}

/** `value` with every number made a bigint, in place; throws INEXACT at a number that is not a safe integer. */
function integersToBigints(value: unknown): unknown {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw INEXACT;
    return BigInt(value);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = integersToBigints(value[i]);
  } else if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const item = record[key];
      if (typeof item === 'number') {
        // Defined, not assigned: a key "__proto__" is an own property here, as JSON.parse made it.
        Object.defineProperty(record, key, {
          value: integersToBigints(item),
          writable: true,
          enumerable: true,
          configurable: true,
        });
      } else integersToBigints(item);
    }
  }
  return value;
}

/** 2-space pretty JSON without a trailing newline, as serde_json's `to_vec_pretty` writes it. */
export function formatJson(value: unknown): string {
  const text = stringify(value, undefined, 2);
  if (text === undefined) throw new TypeError('value cannot be written as JSON');
  return text;
}

/** The same JSON on one line (a stream of events, one a line). */
export function formatJsonLine(value: unknown): string {
  const text = stringify(value);
  if (text === undefined) throw new TypeError('value cannot be written as JSON');
  return text;
}

/** Parses JSON text and checks it against `schema`; `bad(why)` is the error for text that is neither. */
export function parseJsonAs<S extends v.GenericSchema>(
  text: string,
  schema: S,
  bad: (why: string) => Error,
  parse: (text: string) => unknown = parseJson,
): v.InferOutput<S> {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw bad((err as Error).message);
  }
  const parsed = v.safeParse(schema, raw);
  if (!parsed.success) throw bad(v.summarize(parsed.issues));
  return parsed.output;
}
