// Two processes that find one stale writer lock on an S3 server race to take
// it over (crate/src/core/repo/lease.rs). Both are stopped right before the
// takeover's write, then let go: with conditional writes (If-Match on the
// stale lease's ETag) exactly one wins, whether they go on together or one
// after the other. The negative control, without conditional writes: a taker
// let go after the other already holds the lock takes it too (the race is
// lost by both), and the first finds out when it next confirms its lease;
// two expires are still kept apart then: the second by the first's exclusive
// hold, the first by its confirmation before it removes anything.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PackedRepository } from '../../index.js';
import { s3Request } from '../../scripts/s3/servers.mjs';
import { tmp } from '../helpers.js';
import { envFor, freshPrefix, parseS3Url, s3Targets, type S3Target } from './targets.js';

const CHILD = join(import.meta.dirname, '..', 'lease-child.mjs');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** Resolves once `check` holds, polling every 20 ms; fails after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  for (const end = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

/** Whether process `pid` is stopped (state T); a process that is gone is not. */
function stopped(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('T');
  } catch {
    return false;
  }
}

/** A taker in its own process, stopped at the takeover of the stale lease. */
async function taker(target: S3Target, url: string, go: string, conditional: boolean, how = 'lease') {
  const child = spawn(process.execPath, [CHILD, how, url, go, ...(conditional ? [] : ['no-conditional-writes'])], {
    env: { ...process.env, ...envFor(target), POWDB_BACKUP_CRASH_AT: 'lease-takeover:1:stop' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  let gone = false;
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  void exited.then(() => (gone = true));
  await until(() => gone || stopped(child.pid!), 30_000, 'the taker to stop at its takeover');
  if (gone) throw new Error(`the taker ended before its takeover: ${out}${err}`);
  return {
    resume: () => child.kill('SIGCONT'),
    out: () => out,
    outcome: async () => {
      await until(() => /held|refused/.test(out), 30_000, `an outcome: ${out}${err}`);
      return out.includes('held') ? 'held' : out.trim();
    },
    exited,
  };
}

async function staleLock(target: S3Target): Promise<string> {
  const url = freshPrefix(target, 'lease-race');
  (await PackedRepository.init(url, {})).close();
  const { bucket, prefix } = parseS3Url(url);
  const body = JSON.stringify({ owner: 'stale', host: 'elsewhere', pid: 4242, expires_unix_secs: 1 });
  expect((await s3Request(target, 'PUT', { bucket, key: `${prefix}/LOCK`, body })).status).toBe(200);
  return url;
}

describe.each(s3Targets().map((t) => [t.name, t] as const))('one stale lease on %s', (_name, target) => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([k]) => k.startsWith('AWS_'))));
  });

  it('two takers let go at once: exactly one wins (conditional writes)', async () => {
    Object.assign(process.env, envFor(target));
    const url = await staleLock(target);
    const go = join(tmp(), 'go');
    const [a, b] = await Promise.all([taker(target, url, go, true), taker(target, url, go, true)]);
    a!.resume();
    b!.resume();
    const outcomes = await Promise.all([a!.outcome(), b!.outcome()]);
    expect(outcomes.sort()).toEqual(['held', 'refused ERR_REPO_LOCKED']);
    writeFileSync(go, '');
    await Promise.all([a!.exited, b!.exited]);
    expect([a!.out(), b!.out()].filter((o) => o.includes('done'))).toHaveLength(1);
  });

  it.each([
    ['with conditional writes the later taker is refused', true],
    ['without them (negative control) the later taker takes it too, and the first finds out at its renewal', false],
  ])('one taker let go after the other holds the lock: %s', async (_what, conditional) => {
    Object.assign(process.env, envFor(target));
    const url = await staleLock(target);
    const go = join(tmp(), 'go');
    const [a, b] = await Promise.all([taker(target, url, go, conditional), taker(target, url, go, conditional)]);
    a!.resume();
    expect(await a!.outcome()).toBe('held');
    b!.resume();
    const second = await b!.outcome();
    writeFileSync(go, '');
    await Promise.all([a!.exited, b!.exited]);
    if (conditional) {
      expect(second).toBe('refused ERR_REPO_LOCKED');
      expect(a!.out()).toContain('done');
    } else {
      expect(second).toBe('held'); // both held the lock at once: the race was lost
      expect(b!.out()).toContain('done');
      expect(a!.out()).toContain('refused ERR_REPO_LOCKED'); // its confirmation found another's lease
    }
  });

  it('without conditional writes, of two expires that both won the lease neither removes anything', async () => {
    Object.assign(process.env, envFor(target));
    const url = await staleLock(target);
    const go = join(tmp(), 'go');
    const [a, b] = await Promise.all([0, 1].map(() => taker(target, url, go, false, 'alone')));
    a!.resume();
    expect(await a!.outcome()).toBe('held');
    b!.resume();
    expect(await b!.outcome()).toBe('refused ERR_REPO_LOCKED'); // by the first's exclusive hold
    writeFileSync(go, '');
    await Promise.all([a!.exited, b!.exited]);
    expect(a!.out()).toBe('held\nrefused ERR_REPO_LOCKED\n'); // its confirmation found its lease replaced
  });
});
