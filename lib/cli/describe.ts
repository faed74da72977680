// What the CLI prints: one-line summaries and tables of results (plain text;
// --json prints the results themselves).
import { formatBytes, plural } from './bytes.js';
import type { BackupManifest, IncrementManifest } from '../chain/manifest.js';
import type { RepairResult } from '../native/repo.js';
import type { BackupRecord, RepositoryTotals } from '../repo/repository.js';
import type { SourceSummary } from '../repo/base.js';
import type { SyncOutcome } from '../source/sync.js';
import type { ArchiveLineage } from '../repo/archive.js';
import type { DeltaSummary } from '../restore/inplace.js';
import type { VerifyReport } from '../chain/verify.js';
import type { OnlineReport } from '../online/live-copy.js';
import type { TableRestoreSummary } from '../restore/tables.js';
import type { TableListing, TablesInfo } from '../restore/tables-list.js';
import type { DumpResult } from '../restore/dump.js';

/** What a delta restore compared, rewrote and removed. */
export function deltaNote(d: DeltaSummary | undefined): string {
  if (!d) return '';
  return (
    `\nin place: compared ${plural(d.filesCompared, 'file')} (${d.pagesCompared} heap pages), ` +
    `rewrote ${plural(d.filesRewritten, 'file')} (${d.pagesRewritten} pages, ${formatBytes(d.bytesWritten)} written), ` +
    `removed ${plural(d.filesRemoved, 'file')}`
  );
}

/** What a table restore kept (rows as the engine counted them at its open) and left out. */
export function tablesNote(t: TableRestoreSummary | undefined): string {
  if (!t) return '';
  const kept = t.tables.map(
    (x) => `${x.name}${x.as === x.name ? '' : ` as ${x.as}`} (${plural(Number(x.rows), 'row')})`,
  );
  const dropped = [
    ...t.droppedLinks.map((l) => `\nnote: link ${l} left out (its other table is not restored)`),
    ...t.droppedViews.map((v) => `\nnote: view ${v} left out (a table it reads is not restored)`),
  ];
  const whole =
    t.route === 'whole'
      ? '\nnote: the point was restored whole into a scratch directory beside the destination first'
      : '';
  const m = t.merged;
  const merged = m
    ? `\nmerged into ${m.into} (catalog version ${m.catalogVersion} kept${m.views.length > 0 ? `, views ${m.views.join(', ')} added` : ''})${m.finishedRerun ? '; this run finished the merge an interrupted run had planned' : ''}`
    : '';
  return `\ntables: ${kept.join(', ')}; opened and verified by the PowDB engine${dropped.join('')}${whole}${merged}`;
}

/** What a restore did with the sync identity, for its summary line. */
export function syncNote(sync: SyncOutcome | undefined): string {
  if (!sync) return '';
  if (sync.mode === 'strip') return ', sync identity stripped';
  return `, sync identity ${sync.mode === 'preserve' ? 'preserved' : 'forked'} (${sync.identity!.database_id})`;
}

export function fullSummary(m: BackupManifest, dest: string): string {
  const bytes = m.files.reduce((sum, f) => sum + f.len, 0n);
  return `full backup: ${plural(m.files.length, 'file')}, ${formatBytes(bytes)}, source LSN ${m.source_lsn} -> ${dest}`;
}

export function incrementSummary(m: IncrementManifest, dest: string): string {
  let bytes = 0n;
  let pages = 0;
  for (const c of m.changed) {
    if ('Whole' in c) bytes += c.Whole.len;
    else [bytes, pages] = [bytes + c.Pages.delta_len, pages + c.Pages.page_indices.length];
  }
  return (
    `incremental backup: ${plural(m.changed.length, 'changed file')} (${plural(pages, 'page')}), ` +
    `${formatBytes(bytes)}, LSN ${m.base_source_lsn} -> ${m.source_lsn} -> ${dest}`
  );
}

export function recordLine(r: BackupRecord): string {
  const on = r.parent ? ` on ${r.parent}` : '';
  const from = r.source
    ? `, from ${r.source.host}:${r.source.path}${r.source.database_id ? ` (database ${r.source.database_id})` : ''}${r.source.name === undefined ? '' : `, source ${r.source.name}`}`
    : '';
  return `${r.id} (${r.type}${on}): ${plural(r.files, 'file')}, ${formatBytes(r.logical_bytes)} of data, ${formatBytes(r.stored_bytes)} stored, ${plural(r.pages, 'page')}, LSN ${r.source_lsn}${from}`;
}

export function totalsLine(t: RepositoryTotals): string {
  const ratio = t.stored_bytes > 0n ? ` (${(Number(t.logical_bytes) / Number(t.stored_bytes)).toFixed(1)}x)` : '';
  return (
    `format ${t.format}, compression ${t.compression}, encryption ${t.encryption}: ` +
    `${plural(t.backups, 'backup')}, ${formatBytes(t.logical_bytes)} of data in ${formatBytes(t.stored_bytes)} stored${ratio}` +
    (t.conditional_writes === false
      ? '\nthe store ignores conditional writes: each write is checked first; unique names and the writer lock protect the repository'
      : t.conditional_writes === null
        ? '\nwhether the store honours conditional writes is unknown: these credentials cannot write'
        : '')
  );
}

/** The WAL archive of each lineage: its LSN ranges, gaps and times. */
export function archiveLines(lineages: ArchiveLineage[]): string {
  return lineages
    .map(
      (l) =>
        `WAL archive of database ${l.database_id} generation ${l.primary_generation}: ${plural(l.segments, 'segment')}, ${formatBytes(l.bytes)}, ` +
        l.ranges
          .map((r) => `LSNs ${r.start_lsn}-${r.end_lsn} (archived ${r.first_archived} to ${r.last_archived})`)
          .join(', ') +
        (l.newest_boundary === null ? '' : `; restorable up to LSN ${l.newest_boundary}`) +
        l.gaps.map((g) => `\n  GAP: no archived LSNs ${g.after_lsn + 1n}-${g.next_lsn - 1n}`).join(''),
    )
    .join('\n');
}

/** The backups as a table, source by source: each source's line (its key and where its newest backup is from), then its backups. */
export function infoTable(records: BackupRecord[], sources: SourceSummary[]): string {
  if (records.length === 0) return 'no backups yet';
  const header = ['id', 'type', 'parent', 'LSN', 'created', 'logical', 'added', 'holds', 'files', 'pages', 'source'];
  const byId = new Map(records.map((r) => [r.id, r]));
  const rows = sources.flatMap((s) => s.backups.map((id) => row(byId.get(id)!)));
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((cells) => cells[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const lines = [line(header)];
  for (const s of sources) {
    const from = s.source ? `, newest from ${s.source.host}:${s.source.path}` : ' (recorded before 0.1.1)';
    lines.push(`source ${s.key}${from}: ${plural(s.backups.length, 'backup')}`);
    for (const id of s.backups) lines.push(line(row(byId.get(id)!)));
  }
  return lines.join('\n');
}

function row(r: BackupRecord): string[] {
  return [
    r.id,
    r.type,
    r.parent ?? '-',
    String(r.source_lsn),
    r.created,
    formatBytes(r.logical_bytes),
    formatBytes(r.stored_bytes),
    r.held_bytes === undefined ? '-' : formatBytes(r.held_bytes),
    String(r.files),
    String(r.pages),
    r.source ? `${r.source.host}:${r.source.path}` : '-',
  ];
}

/** One verdict over a repository's verify: how many backups restore, which do not, what to do next. */
export function repositoryVerdict(
  reports: { id?: string; report: VerifyReport }[],
  repo: string,
  format: 1 | 2 | 3 | 4,
) {
  const backups = reports.filter((r) => r.id !== 'repository' && r.id !== 'archive');
  const damaged = backups.filter((r) => !r.report.ok).map((r) => r.id!);
  const store = reports.find((r) => r.id === 'repository')?.report.ok !== false;
  const archive = reports.find((r) => r.id === 'archive')?.report.ok !== false;
  const restorable = backups.length - damaged.length;
  const next =
    damaged.length > 0 || !store
      ? format === 1
        ? 'next: restore another backup, and take a new full backup (--type full); a format-1 repository cannot be repaired (migrate converts it)'
        : `next: powdb-backup repair --repo ${repo}, then a new backup, then verify again (README: When something goes wrong)`
      : !archive
        ? 'next: the WAL archive has problems (see above): restores that replay past them fail; run archive again from the database'
        : undefined;
  const line =
    `verdict: ${restorable} of ${plural(backups.length, 'backup')} restorable` +
    (damaged.length ? `; damaged: ${damaged.join(', ')}` : '') +
    (!store && damaged.length === 0 ? '; the repository has damage no backup needs' : '') +
    (next ? `; ${next}` : '');
  return { restorable, backups: backups.length, damaged, ...(next ? { next } : {}), line };
}

export function verifySummary(report: VerifyReport): string {
  const lines = [
    ...report.checks.map((c) => `ok    ${c}`),
    ...report.errors.map((e) => `FAIL  [${e.code}] ${e.message}`),
  ];
  const first = report.errors[0];
  const page = report.errors.find((e) => e.file === first?.file && e.page !== undefined)?.page;
  lines.push(
    first
      ? `verify found ${plural(report.errors.length, 'problem')}; first in ${first.file}${page === undefined ? '' : ` page ${page}`}`
      : `verified: no problems (${plural(report.checks.length, 'check')})`,
  );
  return lines.join('\n');
}

export function repairSummary(r: RepairResult): string {
  const lines: string[] = [];
  if (r.indexesRemoved + r.packsIndexed > 0 || r.packsRemoved > r.packsDamaged) {
    lines.push(
      `removed ${plural(r.indexesRemoved, 'damaged index object')}, indexed ${plural(r.packsIndexed, 'pack')} anew`,
    );
  }
  if (r.packsDamaged > 0) {
    lines.push(
      `${plural(r.packsDamaged, 'damaged or missing pack')} removed from the index and the repository; ` +
        `${plural(r.chunksSalvaged, 'intact chunk')} kept in ${plural(r.packsWritten, 'new pack')}, ${plural(r.chunksLost, 'chunk')} lost`,
    );
  } else if (lines.length === 0) {
    lines.push('nothing was damaged; nothing changed');
  }
  if (r.damageRecordsCleared > 0) lines.push(`cleared ${plural(r.damageRecordsCleared, 'damage record')}`);
  for (const b of r.backups) {
    const files = b.files.map((f) => `${f.name} (${plural(f.chunksMissing, 'chunk')})`).join(', ');
    lines.push(`backup ${b.id} needs chunks that are gone: ${files}`);
  }
  if (r.backups.length > 0) {
    lines.push(
      'these backups are kept: they cannot be restored until a backup of a source that still holds the same content stores those chunks again',
    );
  }
  if (r.chunksLost > 0) lines.push('run a backup now: it stores the lost chunks again from its source');
  return lines.join('\n');
}

/** What an online backup's freeze cost the server's writers. */
export function onlineLine(r: OnlineReport): string {
  const retried = r.attempts > 1 ? `, ${r.attempts} attempts (${r.retries.join('; ')})` : '';
  const refreshed = r.refreshed_under_freeze ? ', changed heaps re-read under the freeze' : '';
  const redo = r.finalize === 'redo' ? ', recovered by redo (indexes rebuilt at the first open after a restore)' : '';
  return `online: writers waited ${r.freeze_ms.toFixed(1)} ms (freeze at ${r.frozen_at}), ${r.pages_recopied} of ${r.heap_pages} pages copied again${refreshed}, LSN ${r.source_lsn}${redo}${retried}`;
}

/** `tables`: each table with its size, columns and indexes, then the links and views. */
export function tablesListing(info: TablesInfo, where: string): string {
  const lines = [`${where}: ${plural(info.tables.length, 'table')}, catalog version ${info.catalogVersion}`];
  for (const t of info.tables) lines.push(...tableLines(t));
  for (const l of info.links) {
    lines.push(
      `link ${l.owner}.${l.name} -> ${l.target} (${l.owner}.${l.localKey} = ${l.target}.${l.targetKey}, ${l.kind})`,
    );
  }
  for (const v of info.views) lines.push(`view ${v.name} over ${v.dependsOn.join(', ') || 'nothing'}: ${v.query}`);
  return lines.join('\n');
}

function tableLines(t: TableListing): string[] {
  const rows = t.rows === undefined ? '' : `, ${plural(Number(t.rows), 'row')}`;
  const column = (c: TableListing['columns'][number]) =>
    `${c.name} ${c.type}${c.required ? ' required' : ''}${c.default ? ' default' : ''}${c.autoIncrement ? ' auto' : ''}`;
  const index = (x: TableListing['indexes'][number]) =>
    `${x.expression ? 'expression ' : ''}${x.key}${x.unique ? ' unique' : ''} (${x.bytes > 0n ? formatBytes(x.bytes) : 'rebuilt at open'})`;
  return [
    `${t.name}: heap ${formatBytes(t.heapBytes)}${rows}`,
    `  columns: ${t.columns.map(column).join(', ')}`,
    ...(t.indexes.length > 0 ? [`  indexes: ${t.indexes.map(index).join(', ')}`] : []),
  ];
}

/** `dump --output`: what was written where. */
export function dumpSummary(r: DumpResult, where: string): string {
  const whole = r.route === 'whole' ? ' (the point was restored whole and recovered by the engine first)' : '';
  return `${where}: ${plural(Number(r.rows), 'row')} of ${r.table} written to ${r.output} as ${r.format}, ${formatBytes(r.bytes)}${whole}`;
}
