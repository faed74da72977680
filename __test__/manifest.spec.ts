import { describe, expect, it } from 'vitest';
import {
  formatBackupManifest,
  formatIncrementManifest,
  parseBackupManifest,
  parseIncrementManifest,
  type BackupManifest,
  type IncrementManifest,
} from '../index.js';

const H1 = 'a'.repeat(64);
const H2 = '0123456789abcdef'.repeat(4);

// Laid out as serde_json::to_vec_pretty writes the reference's structs.
const GOLDEN_MANIFEST = `{
  "format_version": 1,
  "created_unix_secs": 1781000000,
  "source_lsn": 240,
  "catalog_version": 5,
  "files": [
    {
      "name": "T.heap",
      "len": 86016,
      "blake3_hex": "${H1}"
    },
    {
      "name": "catalog.bin",
      "len": 120,
      "blake3_hex": "${H2}"
    }
  ]
}`;

const GOLDEN_INCREMENT = `{
  "format_version": 1,
  "created_unix_secs": 1781000100,
  "base_source_lsn": 240,
  "source_lsn": 310,
  "catalog_version": 5,
  "changed": [
    {
      "Pages": {
        "name": "T.heap",
        "total_pages": 22,
        "page_indices": [
          20,
          21
        ],
        "delta_file": "T.heap.delta",
        "delta_len": 8200,
        "delta_blake3_hex": "${H1}"
      }
    },
    {
      "Whole": {
        "name": "catalog.bin",
        "len": 120,
        "blake3_hex": "${H2}"
      }
    }
  ]
}`;

describe('manifest layout and parsing', () => {
  it('writes manifest.json byte for byte as the reference does, names sorted in byte order', () => {
    const m: BackupManifest = {
      format_version: 1,
      created_unix_secs: 1781000000n,
      source_lsn: 240n,
      catalog_version: 5,
      files: [
        { name: 'catalog.bin', len: 120n, blake3_hex: H2 },
        { name: 'T.heap', len: 86016n, blake3_hex: H1 },
      ],
    };
    expect(formatBackupManifest(m)).toBe(GOLDEN_MANIFEST);
    expect(formatBackupManifest(parseBackupManifest(GOLDEN_MANIFEST, 'm'))).toBe(GOLDEN_MANIFEST);
  });

  it('writes increment.json byte for byte as the reference does', () => {
    const m = parseIncrementManifest(GOLDEN_INCREMENT, 'i');
    expect(formatIncrementManifest({ ...m, changed: [...m.changed].reverse() })).toBe(GOLDEN_INCREMENT);
    expect(m.changed[0]).toEqual({
      Pages: {
        name: 'T.heap',
        total_pages: 22,
        page_indices: [20, 21],
        delta_file: 'T.heap.delta',
        delta_len: 8200n,
        delta_blake3_hex: H1,
      },
    });
  });

  it('accepts manifests without catalog_version, as 0.4.7 writes them, and ignores unknown fields', () => {
    const legacy = GOLDEN_MANIFEST.replace('  "catalog_version": 5,\n', '').replace(
      '"files"',
      '"future_field": {"x": [1]},\n  "files"',
    );
    const m = parseBackupManifest(legacy, 'm');
    expect(m.catalog_version).toBeUndefined();
    expect(m.files).toHaveLength(2);
    expect(formatBackupManifest(m)).toBe(GOLDEN_MANIFEST.replace('  "catalog_version": 5,\n', ''));
    expect(
      parseIncrementManifest(GOLDEN_INCREMENT.replace('  "catalog_version": 5,\n', ''), 'i').catalog_version,
    ).toBeUndefined();
  });

  it('keeps u64 LSNs exact through JSON', () => {
    const max = 2n ** 64n - 1n;
    const text = GOLDEN_MANIFEST.replace('"source_lsn": 240', `"source_lsn": ${max}`);
    const m: IncrementManifest | BackupManifest = parseBackupManifest(text, 'm');
    expect(m.source_lsn).toBe(max);
    expect(formatBackupManifest(m)).toContain('"source_lsn": 18446744073709551615,');
    const near = 2n ** 53n + 1n;
    expect(
      parseBackupManifest(GOLDEN_MANIFEST.replace('"source_lsn": 240', `"source_lsn": ${near}`), 'm').source_lsn,
    ).toBe(near);
  });

  const bad = (edit: (t: string) => string) => () => parseBackupManifest(edit(GOLDEN_MANIFEST), 'M');
  const badInc = (edit: (t: string) => string) => () => parseIncrementManifest(edit(GOLDEN_INCREMENT), 'I');

  it.each([
    ['malformed JSON', (t: string) => t.slice(0, -3)],
    ['a negative LSN', (t: string) => t.replace('"source_lsn": 240', '"source_lsn": -1')],
    ['an LSN above u64', (t: string) => t.replace('"source_lsn": 240', '"source_lsn": 18446744073709551616')],
    ['a fractional length', (t: string) => t.replace('"len": 120', '"len": 1.5')],
    ['a string where a number belongs', (t: string) => t.replace('"len": 120', '"len": "120"')],
    ['a short hash', (t: string) => t.replace(H2, 'abc')],
    ['a missing field', (t: string) => t.replace('  "source_lsn": 240,\n', '')],
    ['an array root', (t: string) => `[${t}]`],
  ])('refuses %s with ERR_BAD_MANIFEST', (_, edit) => {
    expect(bad(edit)).toThrow(expect.objectContaining({ code: 'ERR_BAD_MANIFEST' }));
  });

  it.each(['../evil', '/etc/passwd', 'a/b', 'a\\\\b', '..', '.', 'C:x', 'nul\\u0000', 'sp ace', ''])(
    'refuses the file name %j',
    (name) => {
      expect(bad((t) => t.replace('"T.heap"', `"${name}"`))).toThrow(
        expect.objectContaining({
          code: 'ERR_BAD_MANIFEST',
          message: expect.stringContaining('invalid backup manifest file name'),
        }),
      );
    },
  );

  it('refuses duplicate names, foreign delta names and inconsistent page lists', () => {
    expect(bad((t) => t.replace('"catalog.bin"', '"T.heap"'))).toThrow(/listed twice/);
    expect(badInc((t) => t.replace('"T.heap.delta"', '"other.delta"'))).toThrow(/must be T.heap.delta/);
    expect(badInc((t) => t.replace('"delta_len": 8200', '"delta_len": 8201'))).toThrow(/page records expected 8200/);
    expect(badInc((t) => t.replace('"total_pages": 22', '"total_pages": 21'))).toThrow(/lists page 21 of 21/);
    expect(badInc((t) => t.replace('20,\n', '21,\n'))).toThrow(/not ascending/);
    expect(badInc((t) => t.replace('"Whole"', '"Hole"'))).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_MANIFEST' }),
    );
  });

  it('names an unsupported format before checking anything else', () => {
    expect(
      bad((t) => t.replace('"format_version": 1', '"format_version": 2').replace('"len": 120', '"len": -5')),
    ).toThrow(
      expect.objectContaining({
        code: 'ERR_UNSUPPORTED_FORMAT',
        message: expect.stringContaining('unsupported backup format 2 (this build understands 1)'),
      }),
    );
    expect(badInc((t) => t.replace('"format_version": 1', '"format_version": 7'))).toThrow(
      /unsupported increment format 7/,
    );
  });
});
