// The pure planners, without the engine or a repository: --as-of parsing and
// its resolution, the next backup's type and parent, the catalog order, the
// source check, and the fast JSON parser of snapshots. Fast, and exact about
// edge cases the end-to-end suites reach only one at a time.
import { describe, expect, it } from 'vitest';
import { parseIntegerJson, parseJson } from '../lib/common/json.js';
import { nextBackup, sortRecords, type BackupRecord } from '../lib/repo/base.js';
import { assertSameSource } from '../lib/repo/source.js';
import { parseTarget, parseTime, resolvedTarget } from '../lib/repo/target.js';
import { rejectsWith } from './helpers.js';

const NOW = Date.parse('2026-12-07T12:00:00Z');

function record(id: string, created: string, lsn: bigint, extra: Partial<BackupRecord> = {}): BackupRecord {
  return {
    id,
    type: 'full',
    parent: null,
    base_source_lsn: null,
    source_lsn: lsn,
    created,
    bytes: 0n,
    files: 1,
    pages: 1,
    logical_bytes: 0n,
    stored_bytes: 0n,
    ...extra,
  };
}

describe('--as-of times', () => {
  it('need a zone; Z, offsets with and without a colon, and a space for T name one moment', () => {
    const utc = Date.parse('2026-12-07T08:44:04Z');
    for (const text of [
      '2026-12-07T08:44:04Z',
      '2026-12-07T17:44:04+09:00',
      '2026-12-07T17:44:04+0900',
      '2026-12-07T03:44:04-05',
      '2026-12-07 08:44:04z',
    ])
      expect(parseTime(text, NOW), text).toBe(utc);
    expect(parseTime('2026-12-07T08:44Z', NOW)).toBe(Date.parse('2026-12-07T08:44:00Z'));
    expect(() => parseTime('2026-12-07T08:44:04', NOW)).toThrow(
      /has no time zone: add Z for UTC \(2026-12-07T08:44:04Z\)/,
    );
    expect(() => parseTime('2026-12-08T00:00:00Z', NOW)).toThrow(/is in the future/);
    expect(parseTime('yesterday', NOW)).toBeUndefined();
  });

  it('a target is an id first, then an LSN, then a time', () => {
    const ids = new Set(['20261207T084404Z-F', '12345']);
    expect(parseTarget('20261207T084404Z-F', ids)).toEqual({ id: '20261207T084404Z-F' });
    expect(parseTarget('12345', ids)).toEqual({ id: '12345' }); // an id that looks like an LSN stays an id
    expect(parseTarget('99', ids)).toEqual({ lsn: 99n });
    expect(parseTarget(7n, ids)).toEqual({ lsn: 7n });
    expect(parseTarget(new Date(0), ids)).toEqual({ time: 0 });
    expect(() => parseTarget('soon', ids)).toThrow(/neither a backup id, an LSN nor an ISO 8601 time with a zone/);
  });

  it('resolves exactly at a backup, and says how far behind when nothing reaches the target', () => {
    const r = record('B', '2026-12-07T08:00:00.000Z', 500n);
    const ids = new Set(['B']);
    expect(resolvedTarget(undefined, r, 500n, false, ids)).toBeUndefined();
    expect(resolvedTarget('B', r, 500n, false, ids)).toMatchObject({ exact: true, lsn: 500n });
    expect(resolvedTarget(500n, r, 500n, false, ids)).toMatchObject({ exact: true });
    const lsn = resolvedTarget(600n, r, 500n, false, ids)!;
    expect(lsn.exact).toBe(false);
    expect(lsn.note).toContain('LSN 600 is past backup B (LSN 500)');
    expect(resolvedTarget(600n, r, 600n, true, ids)).toMatchObject({ exact: true }); // replayed to it
    const time = resolvedTarget(new Date('2026-12-07T10:05:00Z'), r, 500n, false, ids)!;
    expect(time).toMatchObject({ exact: false, time: '2026-12-07T10:05:00.000Z' });
    expect(time.note).toContain('2 h 5 min before the target');
    expect(resolvedTarget(new Date('2026-12-07T08:00:00.900Z'), r, 500n, false, ids)).toMatchObject({ exact: true });
  });
});

describe('the catalog', () => {
  it('orders by creation, then id; the next backup is full until there is one, diff builds on the newest full', () => {
    const f = record('F', '2026-12-07T08:00:00.000Z', 10n);
    const i = record('I', '2026-12-07T09:00:00.000Z', 20n, { type: 'incr', parent: 'F' });
    const g = record('G', '2026-12-07T08:00:00.000Z', 15n);
    expect(sortRecords([i, g, f]).map((r) => r.id)).toEqual(['F', 'G', 'I']);
    expect(nextBackup([], 'incr')).toEqual({ type: 'full', parent: undefined });
    expect(nextBackup([f, i], 'incr')).toEqual({ type: 'incr', parent: i });
    expect(nextBackup([f, i], 'diff')).toEqual({ type: 'diff', parent: f });
    expect(nextBackup([f, i], 'full')).toEqual({ type: 'full', parent: undefined });
  });

  it('refuses another database or an LSN running backwards; records without a source constrain nothing', async () => {
    const here = { host: 'h', path: '/data' };
    const records = [record('A', '2026-12-07T08:00:00.000Z', 100n, { source: here })];
    const check = (source: typeof here & { database_id?: string }, lsn?: bigint, override = false) =>
      Promise.resolve().then(() => assertSameSource(records, source, lsn, override));
    await check(here, 100n);
    await rejectsWith(check({ host: 'h', path: '/other' }), 'ERR_OTHER_DATABASE');
    await rejectsWith(check({ host: 'other', path: '/data' }), 'ERR_OTHER_DATABASE');
    await rejectsWith(check(here, 99n), 'ERR_LSN_BACKWARDS');
    await check({ host: 'h', path: '/other' }, 1n, true);
    expect(() => assertSameSource([record('Old', '2026-12-07T07:00:00.000Z', 5n)], here, 1n, false)).not.toThrow();
    // A sync id decides when both have one, wherever the directory is.
    records[0]!.source = { ...here, database_id: 'a'.repeat(32) };
    await check({ host: 'x', path: '/moved', database_id: 'a'.repeat(32) }, 100n);
    await rejectsWith(check({ ...here, database_id: 'b'.repeat(32) }), 'ERR_OTHER_DATABASE');
  });
});

describe('reading a snapshot fast', () => {
  it('gives what the exact parser gives: integers as bigints, exact beyond 2^53, fractions as numbers', () => {
    for (const text of [
      '{"a": 1, "b": [0, -3, 9007199254740991], "c": {"d": "x", "e": null, "f": true}}',
      '{"len": 18446744073709551615, "n": 1}',
      '{"ratio": 0.5, "n": 2}',
      '[]',
      '[[1, 2], {"a": [{"b": 3}]}, 4]',
      '7',
    ]) {
      expect(parseIntegerJson(text)).toEqual(parseJson(text));
    }
    expect(parseIntegerJson('{"len": 18446744073709551615}')).toEqual({ len: 18446744073709551615n });
    expect(() => parseIntegerJson('{"a": 1,')).toThrow();
    // A key "__proto__" stays an own property, as JSON.parse makes it: it never sets the prototype.
    const odd = parseIntegerJson('{"__proto__": 1, "x": {"__proto__": {"y": 2}}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(odd)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(odd, '__proto__')?.value).toBe(1n);
    expect(Object.getOwnPropertyDescriptor(odd.x, '__proto__')?.value).toEqual({ y: 2n });
  });
});
