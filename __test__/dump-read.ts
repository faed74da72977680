// Reading a dump back (JSON Lines and CSV, parsed here independently of the native encoder) into the exact form in
// which the fixture's `rows` command prints the engine's reading of a table, and comparing the two.
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { fixture, type Gen } from './helpers.js';

export interface EngineRows {
  columns: { name: string; type: string }[];
  /** Ints and timestamps as decimal strings, floats as their bits in hex, UUIDs and bytes as hex, JSON as text. */
  rows: (string | boolean | null)[][];
}

/** The engine's reading of `table` in `dir` (opened read-only). */
export function engineRows(dir: string, table: string, gen: Gen = 'new'): EngineRows {
  return fixture(gen, 'rows', dir, '--table', table);
}

/** One value of a dump (`text` as written, `quoted` for a CSV field or a JSON string) in the engine's exact form. */
function exact(type: string, text: string, quoted: boolean): string | boolean | null {
  if (!quoted && (text === '' || text === 'null')) return null;
  switch (type) {
    case 'Int':
      expect(text).toMatch(/^-?\d+$/);
      return text;
    case 'Float':
      return floatBits(text);
    case 'Bool':
      return text === 'true';
    case 'DateTime':
      return String(isoMicros(text));
    case 'Uuid':
      expect(text).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      return text.replaceAll('-', '');
    case 'Bytes':
      expect(text).toMatch(/^[A-Za-z0-9+/]*={0,2}$/);
      return Buffer.from(text, 'base64').toString('hex');
    default: // Str, and Json as its canonical text
      return text;
  }
}

function floatBits(text: string): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Number(text));
  return view.getBigUint64(0).toString(16).padStart(16, '0');
}

/** `YYYY-MM-DDTHH:MM:SS.ffffffZ` (or an expanded `±YYYYYY` year) as microseconds since the epoch. */
function isoMicros(text: string): bigint {
  const m = /^([+-]\d{6}|\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z$/.exec(text);
  expect(m, text).not.toBeNull();
  const [, y, mo, d, h, mi, s, us] = m!.map(Number);
  const date = new Date(0);
  date.setUTCFullYear(y!, mo! - 1, d!); // not Date.UTC: it reads years 0-99 as 1900-1999
  date.setUTCHours(h!, mi!, s!, 0);
  return BigInt(date.getTime()) * 1000n + BigInt(us!);
}

/** The values of one JSON Lines row as written: each key's raw value text, in order. */
function jsonlFields(line: string): { key: string; raw: string }[] {
  const fields = [];
  let i = 1;
  expect(line[0]).toBe('{');
  while (line[i] !== '}') {
    const keyEnd = valueEnd(line, i);
    const key = JSON.parse(line.slice(i, keyEnd)) as string;
    expect(line[keyEnd]).toBe(':');
    const end = valueEnd(line, keyEnd + 1);
    fields.push({ key, raw: line.slice(keyEnd + 1, end) });
    i = line[end] === ',' ? end + 1 : end;
  }
  expect(i).toBe(line.length - 1);
  return fields;
}

/** Where the JSON value starting at `i` ends (strings, nesting and escapes respected). */
function valueEnd(text: string, i: number): number {
  let depth = 0;
  let inString = false;
  for (let j = i; j < text.length; j++) {
    const c = text[j];
    if (inString) {
      if (c === '\\') j++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return j + 1;
      }
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) return j;
      if (--depth === 0) return j + 1;
    } else if (c === ',' && depth === 0) return j;
  }
  return text.length;
}

/** A JSON Lines dump in the engine's exact form (keys checked against the column order). */
export function fromJsonl(text: string, columns: EngineRows['columns']): EngineRows['rows'] {
  expect(text.endsWith('\n') || text === '').toBe(true);
  return text
    .split('\n')
    .slice(0, -1)
    .map((line) => {
      const fields = jsonlFields(line);
      expect(fields.map((f) => f.key)).toEqual(columns.map((c) => c.name));
      return fields.map((f, i) => {
        const type = columns[i]!.type;
        if (type === 'Json') return f.raw === 'null' ? null : f.raw; // the document itself, as written
        if (f.raw.startsWith('"')) return exact(type, JSON.parse(f.raw) as string, true);
        return exact(type, f.raw, false);
      });
    });
}

/** RFC 4180 records: each field's text and whether it was quoted. */
function csvRecords(text: string): { text: string; quoted: boolean }[][] {
  const records = [];
  let i = 0;
  while (i < text.length) {
    const record = [];
    for (;;) {
      let field = '';
      let quoted = false;
      if (text[i] === '"') {
        quoted = true;
        for (i++; ; i++) {
          if (text[i] === '"' && text[i + 1] === '"') {
            field += '"';
            i++;
          } else if (text[i] === '"') {
            i++;
            break;
          } else field += text[i]!;
        }
      } else {
        while (i < text.length && text[i] !== ',' && text[i] !== '\r') field += text[i++]!;
      }
      record.push({ text: field, quoted });
      if (text[i] === ',') i++;
      else {
        expect(text.slice(i, i + 2)).toBe('\r\n');
        i += 2;
        break;
      }
    }
    records.push(record);
  }
  return records;
}

export function fromCsv(text: string, columns: EngineRows['columns']): EngineRows['rows'] {
  const [header, ...records] = csvRecords(text);
  expect(header!.map((f) => f.text)).toEqual(columns.map((c) => c.name));
  return records.map((r) => r.map((f, i) => exact(columns[i]!.type, f.text, f.quoted)));
}

/** A dump file read back into the engine's form. */
export function readDump(path: string, format: 'jsonl' | 'csv', columns: EngineRows['columns']): EngineRows['rows'] {
  const text = readFileSync(path, 'utf8');
  return format === 'jsonl' ? fromJsonl(text, columns) : fromCsv(text, columns);
}

/** Floats equal bit for bit, except that any NaN equals any NaN (text has one NaN). */
function canonicalNaN(rows: EngineRows['rows'], columns: EngineRows['columns']): EngineRows['rows'] {
  return rows.map((row) =>
    row.map((v, i) =>
      columns[i]!.type === 'Float' &&
      typeof v === 'string' &&
      /^[7f]ff[89a-f]/.test(v) &&
      v.slice(3) !== '0000000000000'
        ? 'NaN'
        : v,
    ),
  );
}

export function expectSameRows(dumped: EngineRows['rows'], engine: EngineRows, what: string): void {
  expect(canonicalNaN(dumped, engine.columns), what).toEqual(canonicalNaN(engine.rows, engine.columns));
}
