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
): v.InferOutput<S> {
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (err) {
    throw bad((err as Error).message);
  }
  const parsed = v.safeParse(schema, raw);
  if (!parsed.success) throw bad(v.summarize(parsed.issues));
  return parsed.output;
}
