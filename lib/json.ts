import { isInteger, parse, stringify } from 'lossless-json';

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
