// Each part's report: a paragraph on how it was measured (`m`: `measured`,
// "Measured <day> on <machine>"; `how`, the command; `runs`), then its
// markdown tables. And the --readme rewrite of docs/benchmarks.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RCLONE_VERSION } from '../s3/rclone.mjs';
import { POWDB_VERSION } from '../powdb-server.mjs';
import { SEAWEED_VERSION } from '../s3/servers.mjs';
import { MB, fmt, root } from './kit.mjs';

const met = (ok) => (ok ? 'met' : '**not met**');
const mb = (n) => `${fmt(n / MB, 1)} MB`;

function coreTable(all) {
  const lines = [
    '| data | operation | ours, CLI (s) | reference (s) | ours / reference | ours in-process (s) | ours MB/s (in-process) | % of read ceiling | ours peak RSS (MiB) | reference peak RSS (MiB) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of all) {
    for (const r of s.results) {
      const rate = r.bytes / r.apiSecs / MB;
      lines.push(
        `| ${r.mib} MiB | ${r.label} | ${fmt(r.ours.secs)} | ${fmt(r.theirs.secs)} | ${fmt(r.ours.secs / r.theirs.secs)} | ${fmt(r.apiSecs)} | ${fmt(rate, 0)} | ${fmt((100 * rate) / s.ceiling.read, 0)}% | ${fmt(r.ours.rss / 1024, 1)} | ${fmt(r.theirs.rss / 1024, 1)} |`,
      );
    }
  }
  lines.push(
    '',
    '| data | read ceiling: `cat` to /dev/null | read ceiling: 1 MiB `read()` | BLAKE3, 1 core | BLAKE3, all cores | JS timer (10 ms) latest during a full backup |',
    '|---|---|---|---|---|---|',
  );
  for (const s of all) {
    const c = s.ceiling;
    lines.push(
      `| ${s.mib} MiB | ${fmt(c.cat, 0)} MB/s | ${fmt(c.read, 0)} MB/s | ${fmt(c.hash1, 0)} MB/s | ${fmt(c.hashAll, 0)} MB/s | ${fmt(s.lag.maxLateMs, 1)} ms late |`,
    );
  }
  lines.push(
    '',
    '| data | heap bytes | content maps per backup | maps / heap | increment at 1%: bytes stored | of which content maps |',
    '|---|---|---|---|---|---|',
  );
  for (const s of all) {
    const m = s.maps;
    lines.push(
      `| ${s.mib} MiB | ${fmt(m.heapBytes / MB, 1)} MB | ${fmt(m.mapBytes / MB, 2)} MB | ${fmt((100 * m.mapBytes) / m.heapBytes, 2)}% | ${fmt(m.incBytes / MB, 1)} MB | ${fmt(m.incMapBytes / MB, 2)} MB |`,
    );
  }
  return lines.join('\n');
}

export const coreReport = (all, m) =>
  `${m.measured} with ${m.how} (medians of ${m.runs} alternating runs, warm page cache, engine powdb-storage 0.29.0). "ours / reference" compares whole processes (CLI against the reference's Rust binary, each including its start-up: Node's is ~0.15 s); "in-process" times our API call alone, and "% of read ceiling" compares that with reading the same bytes with 1 MiB \`read()\` calls.\n\n${coreTable(all)}`;

function repoTable(all) {
  const lines = [
    '| data | repository | full backup (s) | / plain full backup | restore (s) | / plain restore | peak RSS backup, restore (MiB) | stored by the full backup | data / stored |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of all) {
    lines.push(
      `| ${s.mib} MiB | plain directory (reference format) | ${fmt(s.plain.backup.secs)} | 1.00 | ${fmt(s.plain.restore.secs)} | 1.00 | ${fmt(s.plain.backup.rss / 1024, 1)}, ${fmt(s.plain.restore.rss / 1024, 1)} | ${fmt(s.dataBytes / MB, 1)} MB | 1.0 |`,
    );
    for (const r of s.repos) {
      lines.push(
        `| ${s.mib} MiB | ${r.kind} | ${fmt(r.backup.secs)} | ${fmt(r.backup.secs / s.plain.backup.secs)} | ${fmt(r.restore.secs)} | ${fmt(r.restore.secs / s.plain.restore.secs)} | ${fmt(r.backup.rss / 1024, 1)}, ${fmt(r.restore.rss / 1024, 1)} | ${fmt(Number(r.stored) / MB, 1)} MB | ${fmt(s.dataBytes / Number(r.stored), 1)} |`,
      );
    }
  }
  lines.push(
    '',
    '| data | increment after inserting 1% more rows (indexed table) | bytes stored | / bytes of the heap pages that changed | time (s) | peak RSS (MiB) |',
    '|---|---|---|---|---|---|',
  );
  for (const s of all) {
    if (s.skipped) {
      lines.push(`| ${s.mib} MiB | not measured: the engine cannot insert (${s.skipped}) | | | | |`);
      continue;
    }
    const changed = s.changedPages * 4096;
    lines.push(`| ${s.mib} MiB | heap pages that changed: ${s.changedPages} | ${fmt(changed / MB, 2)} MB | 1.00 | | |`);
    for (const inc of s.increments) {
      lines.push(
        `| ${s.mib} MiB | ${inc.who} | ${fmt(inc.bytes / MB, 2)} MB | ${fmt(inc.bytes / changed)} | ${fmt(inc.secs)} | ${fmt(inc.rss_kib / 1024, 1)} |`,
      );
    }
  }
  return lines.join('\n');
}

export const repoReport = (all, m) =>
  `${m.measured} with ${m.how} (medians of ${m.runs} runs, each after a \`sync\`, the plain and repository runs alternating; the CLI, each run including Node's start-up and, encrypted, the argon2id key derivation; peak RSS of the whole process):\n\n${repoTable(all)}`;

function s3Table(all) {
  const lines = [
    '| data | operation | ours (s) | compared with | its time (s) | ours / it | goal | ours peak RSS (MiB; goal ≤ 128) | its peak RSS (MiB) | bytes: ours, its |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of all) {
    lines.push(
      `| ${s.mib} MiB | full backup to S3 (zstd) | ${fmt(s.backup.secs)} | \`rclone copy\` upload, \`--transfers 4\` | ${fmt(s.upload.secs)} | ${fmt(s.backup.secs / s.upload.secs)} | ≤ 1.0 | ${fmt(s.backup.rss / 1024, 1)} | ${fmt(s.upload.rss / 1024, 1)} | ${mb(s.stored.full)} stored, ${mb(s.dataBytes)} uploaded |`,
      `| ${s.mib} MiB | restore from S3 | ${fmt(s.restore.secs)} | \`rclone copy\` download of that upload, then \`sync\` | ${fmt(s.download.secs)} | ${fmt(s.restore.secs / s.download.secs)} | ≤ 1.0 | ${fmt(s.restore.rss / 1024, 1)} | ${fmt(s.download.rss / 1024, 1)} | ${mb(s.stored.full)}, ${mb(s.dataBytes)} fetched |`,
    );
    if (s.skipped) {
      lines.push(
        `| ${s.mib} MiB | increment after inserting 1% more rows: not measured, the engine cannot insert (${s.skipped}) | | | | | ≤ 0.2 | | | |`,
      );
    } else {
      lines.push(
        `| ${s.mib} MiB | increment after inserting 1% more rows | ${fmt(s.increment.secs)} | our full backup to S3 (above) | ${fmt(s.backup.secs)} | ${fmt(s.increment.secs / s.backup.secs)} | ≤ 0.2 | ${fmt(s.increment.rss / 1024, 1)} | ${fmt(s.backup.rss / 1024, 1)} | ${mb(s.stored.increment)}, ${mb(s.stored.full)} stored |`,
      );
    }
  }
  return lines.join('\n');
}

export const s3Report = (all, m) =>
  `${m.measured} with ${m.how} against SeaweedFS ${SEAWEED_VERSION} (\`weed mini\`, started by the benchmark on 127.0.0.1, on the same disk and cores) and rclone ${RCLONE_VERSION} (medians of ${m.runs} runs, each after a \`sync\` and into or from fresh prefixes, ours and rclone's alternating; the CLI, each run including Node's start-up; peak RSS of the whole process):\n\n${s3Table(all)}`;

/** The disk part's rows against their ceilings, copy_file_range included. */
function ceilingLines(all) {
  const lines = [
    '| data | operation | ours (s) | ceiling | ceiling (s) | ceiling rate (data directory bytes) | ours, % of the ceiling | goal |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const d of all) {
    for (const r of d.rows) {
      lines.push(
        `| ${d.mib} MiB | ${r.op} | ${fmt(r.ours)} | ${r.ceiling} | ${fmt(r.ceilingSecs)} | ${fmt(r.rate, 0)} MB/s | ${fmt(r.pct, 0)}% | ≥ ${r.goal}%: ${met(r.pct >= r.goal)} |`,
      );
    }
    lines.push(
      `| ${d.mib} MiB | restore, directory, against \`copy_file_range\` of the backup's data files, each fsynced (reflink: ${d.cfr.reflink}) | ${fmt(d.cfr.ours)} | \`copy_file_range\` | ${fmt(d.cfr.secs)} | ${fmt(d.dataBytes / d.cfr.secs / MB, 0)} MB/s | ${fmt((100 * d.cfr.secs) / d.cfr.ours, 0)}% | measured only |`,
    );
  }
  return lines;
}

function startupLines(start) {
  const lines = [`| CLI start-up: process start to exit (median of ${start.n}) | ms | goal |`, '|---|---|---|'];
  for (const [what, secs, goal] of start.rows) {
    lines.push(`| ${what} | ${fmt(secs * 1000, 0)} | ${goal ? `≤ ${goal * 1000} ms: ${met(secs <= goal)}` : ''} |`);
  }
  return lines;
}

function deltaLines(all) {
  const lines = [
    '| data | delta restore onto a plain restore of the older backup (1% of heap pages differ) | plain restore (s) | delta (s) | delta / plain time | goal ≤ 0.5 | bytes written (`wchar`): plain, delta | delta / plain | goal ≤ 2% | page-cache bytes dirtied (`write_bytes`): plain, delta | delta / plain | the device wrote, during the run and a `sync` (whole machine): plain, delta | delta / plain | its summary: heap pages rewritten of compared, files rewritten of compared |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const d of all) {
    for (const x of d.deltas) {
      const t = x.delta.secs / x.plain.secs;
      const c = x.delta.wchar / x.plain.wchar;
      const w = x.delta.write / x.plain.write;
      const m = x.summary;
      lines.push(
        `| ${d.mib} MiB | ${x.source} | ${fmt(x.plain.secs)} | ${fmt(x.delta.secs)} | ${fmt(t)} | ${met(t <= 0.5)} | ${mb(x.plain.wchar)}, ${mb(x.delta.wchar)} | ${fmt(100 * c, 2)}% | ${met(c <= 0.02)} | ${mb(x.plain.write)}, ${mb(x.delta.write)} | ${fmt(100 * w, 2)}% | ${mb(x.plain.device)}, ${mb(x.delta.device)} | ${fmt((100 * x.delta.device) / x.plain.device, 2)}% | ${m.pagesRewritten} of ${m.pagesCompared}, ${m.filesRewritten} of ${m.filesCompared} |`,
      );
    }
  }
  return lines;
}

/** `disk`: what benchDiskAll returns. */
export function diskReport(disk, m) {
  const padded = disk.padded.length
    ? `; at ${disk.padded.join(', ')} MiB each row carries ${disk.pad} bytes of padding, so that the engine can open the database to change it`
    : '';
  const tables = [ceilingLines(disk.all), startupLines(disk.start), deltaLines(disk.all)];
  return `${m.measured}, ${disk.fs}, with ${m.how} (medians of ${m.runs} runs, ours and the ceiling alternating, each after a \`sync\` and a ${disk.pauseMs / 1000} s pause, warm page cache; ours is the CLI, each run including Node's start-up${padded}):\n\n${tables.map((t) => t.join('\n')).join('\n\n')}`;
}

function onlineTable(all) {
  const lines = [
    '| data | freeze, median (ms) | freeze, worst (ms) | goal < 100 ms | online backup, median (s) | offline backup, median (s) | attempts per backup | recovered by | peak RSS of the online backup (MiB) |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const or = (n, digits) => (Number.isNaN(n) ? '-' : fmt(n, digits));
  for (const s of all) {
    const failed = s.failed.length ? ` (${s.failed.length} of ${s.runs} failed)` : '';
    lines.push(
      `| ${s.mib} MiB${s.pad ? ` (rows padded by ${s.pad} bytes)` : ''} | ${or(s.freezeMedian, 1)} | ${or(s.freezeWorst, 1)} | ${met(!s.failed.length && s.freezeWorst < 100)}${failed} | ${or(s.onlineSecs)} | ${fmt(s.offlineSecs)} | ${s.attempts.join(', ')} | ${s.finalize} | ${or(s.rssMiB, 0)} |`,
    );
  }
  return lines.join('\n');
}

/** `all`: what benchOnlineAll returns. */
export const onlineReport = (all, m) =>
  `${m.measured} with ${m.how} against powdb-server ${POWDB_VERSION} (started by the benchmark on 127.0.0.1, on a copy of the database, the same disk and cores) while \`powdb-load run\` keeps 3 autocommit writers and 2 transfer workers (15% of their transactions end in \`rollback\`) busy on tables of its own, and 2 workers updating random rows of the database's largest table, T (\`--hot T\`). Times and freezes are of the backups that succeeded; a failed one shows its error code under attempts, where \`r\` marks a backup whose kept freeze also read again the heaps changed since their copy. Each online backup is the CLI with \`--server\`, into a fresh destination, timed whole (Node's start-up, staging, recovery, verification and storing); the freeze is the one the backup's JSON reports (\`online.freeze_ms\`; worst: \`online.longest_freeze_ms\`, over all attempts). The offline backup is of the same directory after the server stopped cleanly (SIGTERM). Medians of ${m.runs} runs; peak RSS is the largest of the backup process and its children (the engine's open of the copy, by \`engine\`; our bounded redo, by \`redo\`, chosen above 64 MiB of heaps). Goal: freeze under 100 ms at every size.\n\n${onlineTable(all)}`;

function tablesTable(all) {
  const lines = [
    '| data | repository | table restored | whole restore (s) | one-table restore (s) | time: one / whole (goal ≤ 5%) | bytes written: whole, one table | bytes: one / whole | `dump` of the table (s) | dump / whole | peak RSS whole, one, dump (MiB) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of all) {
    const data = s.pad === undefined ? `${s.mib} MiB` : `${s.mib} MiB (rows padded by ${s.pad} bytes)`;
    lines.push(
      `| ${data} | ${s.where === 's3' ? 'S3 (SeaweedFS)' : 'local disk'} | Small (${s.smallRows} rows, 1% of T's) | ${fmt(s.whole.secs)} | ${fmt(s.table.secs)} | ${fmt((100 * s.table.secs) / s.whole.secs, 1)}% | ${mb(s.bytes.whole)}, ${mb(s.bytes.table)} | ${fmt((100 * s.bytes.table) / s.bytes.whole, 1)}% | ${fmt(s.dump.secs)} (${mb(s.bytes.dump)} of JSON Lines) | ${fmt((100 * s.dump.secs) / s.whole.secs, 1)}% | ${fmt(s.whole.rss / 1024, 1)}, ${fmt(s.table.rss / 1024, 1)}, ${fmt(s.dump.rss / 1024, 1)} |`,
    );
  }
  return lines.join('\n');
}

export const tablesReport = (all, m) =>
  `${m.measured} with ${m.how} (medians of ${m.runs} runs, alternating, each into a fresh directory after a \`sync\`; the CLI, each run including Node's start-up; a repository on the same disk, and one on a SeaweedFS server on 127.0.0.1 started by the benchmark, both compression none; the one-table restore includes fetching the catalog first and the engine's check of its result):\n\n${tablesTable(all)}`;

function fleetTables({ dedup, counts }) {
  const lines = [
    '| data | A backed up (source a): stored | B = A restored, +1% rows: bytes changed | B backed up (source b): added | added / changed (goal: a small multiple) | added / A stored (goal: about 1%) | control, other rows of the same size (source c): added |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const d of dedup) {
    lines.push(
      `| ${d.mib} MiB | ${mb(d.withA)} | ${mb(d.changed)} | ${mb(d.addedB)} | ${fmt(d.addedB / d.changed, 2)} | ${fmt((100 * d.addedB) / d.withA, 2)}% | ${mb(d.addedC)} (${fmt((100 * d.addedC) / d.withA, 0)}%) |`,
    );
  }
  lines.push(
    '',
    '| backups (sources) | open, in-process (ms) | `info` (s) | `info --json` (s) | increment of one source (s) | peak RSS `info`, increment (MiB) |',
    '|---|---|---|---|---|---|',
  );
  for (const c of counts) {
    lines.push(
      `| ${c.backups.toLocaleString('en')} (${c.sources}) | ${fmt(c.open * 1000, 1)} | ${fmt(c.info.secs)} | ${fmt(c.json.secs)} | ${fmt(c.incr.secs)} | ${fmt(c.info.rss / 1024, 1)}, ${fmt(c.incr.rss / 1024, 1)} |`,
    );
  }
  return lines.join('\n');
}

export const fleetReport = (all, m) =>
  `${m.measured} with ${m.how} (one repository, compression none, the CLI; the second table: medians of ${m.runs} runs each including Node's start-up, on synthetic repositories made by \`scripts/bench/fleet-synth.mjs\`):\n\n${fleetTables(all)}`;

/** Replaces each report's table between its `<!-- name:start -->` and `<!-- name:end -->` markers in docs/benchmarks.md. */
export function rewriteReadme(reports) {
  const readme = join(root, 'docs', 'benchmarks.md');
  let text = readFileSync(readme, 'utf8');
  for (const [name, report] of Object.entries(reports)) {
    text = text.replace(
      new RegExp(`<!-- ${name}:start -->[\\s\\S]*<!-- ${name}:end -->`),
      `<!-- ${name}:start -->\n${report}\n<!-- ${name}:end -->`,
    );
  }
  writeFileSync(readme, text);
}
