// --part peers: ours against the backup tools a host would use instead
// (restic, rustic, Kopia, borg; installed by scripts/peers.mjs, a missing one
// skipped with its reason), each at its defaults with encryption into a
// local repository on the same disk, on the same engine-made database (rows
// padded and indexed). Per tool and run, alternating which goes first: a full
// backup, then an increment after 1% more rows (the same path, its content
// swapped for the grown copy), then a restore of the newest backup; each step
// timed to durability (the command and a `sync`; the copies are synced before
// the clock starts), with the peak RSS; then what
// the repository stores after both backups. Medians of `runs`.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PEERS, ensurePeer } from '../peers.mjs';
import { copyOf, fmt, fresh, grow, measure, median, ours, pristine, run, scratch } from './kit.mjs';

const PASSWORD = 'bench-password';
// Rows padded as the disk part's above 1 GiB: the 4 GiB database's index stays under the engine's 512 MB limit.
const padOf = (mib) => (mib > 1024 ? 240 : undefined);
const MiB = 1 << 20;

/** Wall time and peak RSS of `argv` run in `cwd`, with a `sync` after it (durability). */
const durable = (cwd, argv, env = {}) =>
  measure([
    'env',
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    'sh',
    '-c',
    'cd "$0" && "$@" && sync',
    cwd,
    ...argv,
  ]);

/** Bytes of every file under `dir`. */
const treeBytes = (dir) =>
  readdirSync(dir, { recursive: true })
    .map((n) => statSync(join(dir, n)))
    .filter((s) => s.isFile())
    .reduce((sum, s) => sum + s.size, 0);

/** How each tool makes a repository, backs up `data` (always the same path) and restores the newest backup. */
function adapters(bins, at) {
  const kopiaCfg = ['--config-file', at('kopia.config')];
  const borgEnv = {
    BORG_PASSPHRASE: PASSWORD,
    BORG_BASE_DIR: at('borg-home'),
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  };
  const kopiaEnv = { KOPIA_PASSWORD: PASSWORD, KOPIA_CHECK_FOR_UPDATES: 'false' };
  return {
    'powdb-backup': {
      env: { POWDB_BACKUP_PASSWORD: PASSWORD },
      init: (repo) => ours('init', repo, '--encrypt'),
      backup: (repo, data) => ours('backup', data, '--repo', repo, '--quiet'),
      restore: (repo, _data, dest) => ours('restore', '--repo', repo, dest, '--quiet'),
    },
    restic: bins.restic && {
      env: { RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: at('restic-cache') },
      init: (repo) => [bins.restic, '-r', repo, 'init', '-q'],
      backup: (repo, data) => [bins.restic, '-r', repo, 'backup', '-q', data],
      restore: (repo, data, dest) => [bins.restic, '-r', repo, 'restore', '-q', `latest:${data}`, '--target', dest],
    },
    rustic: bins.rustic && {
      env: { RUSTIC_PASSWORD: PASSWORD, RUSTIC_CACHE_DIR: at('rustic-cache') },
      init: (repo) => [bins.rustic, '-r', repo, 'init', '--no-progress'],
      backup: (repo, data) => [bins.rustic, '-r', repo, 'backup', '--no-progress', data],
      restore: (repo, data, dest) => [bins.rustic, '-r', repo, 'restore', '--no-progress', `latest:${data}`, dest],
    },
    kopia: bins.kopia && {
      env: kopiaEnv,
      init: (repo) => [
        bins.kopia,
        ...kopiaCfg,
        'repository',
        'create',
        'filesystem',
        '--path',
        repo,
        '--cache-directory',
        at('kopia-cache'),
      ],
      backup: (_repo, data) => [bins.kopia, ...kopiaCfg, 'snapshot', 'create', '--no-progress', data],
      restore: (_repo, data, dest) => ['sh', '-c', KOPIA_RESTORE, bins.kopia, at('kopia.config'), data, dest],
    },
    borg: bins.borg && {
      env: borgEnv,
      init: (repo) => [bins.borg, 'init', '--encryption=repokey-blake2', repo],
      backup: (repo, data) => ['sh', '-c', BORG_CREATE, bins.borg, repo, data],
      restore: (repo, _data, dest) => ['sh', '-c', BORG_EXTRACT, bins.borg, repo, dest],
    },
    // Without encryption: ours and borg (restic and rustic always encrypt; Kopia has no such option either).
    'powdb-backup, no encryption': {
      plain: true,
      env: {},
      init: (repo) => ours('init', repo),
      backup: (repo, data) => ours('backup', data, '--repo', repo, '--quiet'),
      restore: (repo, _data, dest) => ours('restore', '--repo', repo, dest, '--quiet'),
    },
    'borg, no encryption': bins.borg && {
      plain: true,
      env: borgEnv,
      init: (repo) => [bins.borg, 'init', '--encryption=none', repo],
      backup: (repo, data) => ['sh', '-c', BORG_CREATE, bins.borg, repo, data],
      restore: (repo, _data, dest) => ['sh', '-c', BORG_EXTRACT, bins.borg, repo, dest],
    },
  };
}

// Kopia restores a snapshot by id: the newest of the path's.
const KOPIA_RESTORE = `id=$("$0" --config-file "$1" snapshot list "$2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])') && "$0" --config-file "$1" snapshot restore "$id" "$3"`;
// borg stores paths as given: back up "." from inside the directory, extract inside the destination.
const BORG_CREATE = 'cd "$2" && "$0" create "$1::b$(date +%s%N)" .';
const BORG_EXTRACT = 'mkdir -p "$2" && cd "$2" && "$0" extract "$1::$("$0" list --last 1 --short "$1")"';

/** One run of one tool: full, increment, restore; then the repository's size. */
function oneRun(tool, a, { base, grown, data, at }) {
  const repo = at(`repo-${tool.replace(/\W+/g, '-')}`);
  const dest = at(`out-${tool.replace(/\W+/g, '-')}`);
  [repo, dest, at('kopia.config'), at('borg-home')].forEach(fresh);
  copyOf(base, data);
  run('env', [...Object.entries(a.env).map(([k, v]) => `${k}=${v}`), ...a.init(repo)]);
  // Each copy written out before the clock starts: its writeback is not the tool's to wait for.
  run('sync', []);
  const full = durable(at('.'), a.backup(repo, data), a.env);
  copyOf(grown, data); // the same path, 1% more rows
  run('sync', []);
  const incr = durable(at('.'), a.backup(repo, data), a.env);
  const restore = durable(at('.'), a.restore(repo, data, dest), a.env);
  const restored = treeBytes(dest);
  const stored = treeBytes(repo);
  fresh(dest);
  fresh(repo);
  return { full, incr, restore, stored, restored };
}

async function benchPeers(mib, runs, bins) {
  const db = pristine(mib, padOf(mib));
  const { at } = scratch(`peers-${mib}`);
  const base = copyOf(db.dir, at('base'));
  const grown = copyOf(db.dir, at('grown'));
  const refused = grow(grown, db);
  if (refused) throw new Error(`could not grow the ${mib} MiB database: ${refused}`);
  const grownBytes = treeBytes(grown);
  const tools = Object.entries(adapters(bins, at)).filter(([, a]) => a);
  const samples = Object.fromEntries(tools.map(([t]) => [t, []]));
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < tools.length; i++) {
      const [tool, a] = tools[(i + r) % tools.length];
      const s = oneRun(tool, a, { base, grown, data: at('data'), at });
      // Not a restore if it lacks the data (a tool restoring somewhere else would look fast).
      if (s.restored < grownBytes * 0.99) throw new Error(`${tool} restored ${s.restored} of ${grownBytes} bytes`);
      samples[tool].push(s);
      console.error(
        `peers ${mib} MiB run ${r + 1} ${tool}: full ${fmt(s.full.secs)} s, incr ${fmt(s.incr.secs)} s, restore ${fmt(s.restore.secs)} s, stored ${fmt(s.stored / MiB, 1)} MiB`,
      );
    }
  }
  [base, grown, at('data')].forEach(fresh);
  return {
    mib,
    rows: db.rows,
    tools: tools.map(([tool]) => {
      const xs = samples[tool];
      return {
        tool,
        plain: Boolean(adapters(bins, at)[tool].plain),
        version: tool.startsWith('powdb-backup') ? 'this' : PEERS[tool.split(',')[0]].version,
        full: median(xs.map((s) => s.full.secs)),
        incr: median(xs.map((s) => s.incr.secs)),
        restore: median(xs.map((s) => s.restore.secs)),
        storedMiB: median(xs.map((s) => s.stored)) / MiB,
        rssMiB: Math.max(...xs.flatMap((s) => [s.full, s.incr, s.restore].map((m) => m.rss_kib))) / 1024,
      };
    }),
  };
}

/** The peers part at each of `sizes`; what peersReport takes (`skipped`: one line per missing tool). */
export async function benchPeersAll(sizes, runs, only) {
  const bins = {};
  const skipped = [];
  for (const name of Object.keys(PEERS).filter((n) => !only || only.includes(n))) {
    const got = await ensurePeer(name);
    if (got.skip) skipped.push(got.skip);
    else bins[name] = got.bin;
  }
  skipped.forEach((s) => console.error(`peers: skipped: ${s}`));
  const all = [];
  for (const mib of sizes) all.push(await benchPeers(mib, runs, bins));
  return { all, skipped };
}

const ratio = (ours, best) => `${fmt(ours / best)}×`;

/** The table per size, and the goals of issue 25 against the best peer. */
export function peersReport({ all, skipped }, m) {
  const parts = all.map(({ mib, rows, tools }) => {
    const lines = [
      `**${mib} MiB** (${rows} rows):`,
      '',
      '| tool | full backup (s) | increment after +1% rows (s) | restore (s) | stored after both (MiB) | peak RSS (MiB) |',
      '|---|---|---|---|---|---|',
      ...tools.map(
        (t) =>
          `| ${t.version === 'this' ? t.tool : t.tool.replace(/^\w+/, (name) => `${name} ${t.version}`)} | ${fmt(t.full)} | ${fmt(t.incr)} | ${fmt(t.restore)} | ${fmt(t.storedMiB, 1)} | ${fmt(t.rssMiB, 0)} |`,
      ),
    ];
    const against = (ours, peers, what) => {
      if (!ours || peers.length === 0) return;
      const best = (key) => Math.min(...peers.map((t) => t[key]));
      lines.push(
        '',
        `${what}: stored ${ratio(ours.storedMiB, best('storedMiB'))} (goal ≤ 0.75×), full backup ${ratio(ours.full, best('full'))} and increment ${ratio(ours.incr, best('incr'))} (goal ≤ 0.6×), restore ${ratio(ours.restore, best('restore'))} (goal ≤ 0.8×), peak RSS ${fmt(ours.rssMiB, 0)} MiB (goal ≤ 128).`,
      );
    };
    const isOurs = (t) => t.version === 'this';
    const encrypted = tools.filter((t) => !t.plain);
    against(
      encrypted.find(isOurs),
      encrypted.filter((t) => !isOurs(t)),
      'Encrypted, against the best peer',
    );
    // Unencrypted: borg without encryption, and the peers that always encrypt as they are.
    const plainPeers = tools.filter(
      (t) => !isOurs(t) && (t.plain || !tools.some((p) => p.plain && p.tool.startsWith(`${t.tool},`))),
    );
    against(
      tools.find((t) => isOurs(t) && t.plain),
      plainPeers,
      'Without encryption, against the best peer (restic, rustic and Kopia always encrypt)',
    );
    return lines.join('\n');
  });
  const skips = skipped.length ? `\n\nSkipped: ${skipped.join('; ')}.` : '';
  return `${m.measured} with ${m.how}: each tool at its defaults with encryption (and ours and borg also without), into a local repository on the same disk, on the same engine-made database (indexed; rows padded with 240 bytes above 1 GiB); a full backup, an increment after 1% more rows (same path), a restore of the newest backup, each timed to durability (the command and a \`sync\`; the database copies each step reads are synced before the clock starts); runs alternating which tool goes first; medians of ${m.runs} runs; stored is the repository's bytes after both backups.${skips}\n\n${parts.join('\n\n')}`;
}
