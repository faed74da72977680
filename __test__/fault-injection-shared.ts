// Shared by the format-2 crash suites: fault-injection-v2.spec.ts (a
// repository in a local directory) and s3/fault-injection-s3.spec.ts (a
// repository on object storage). The child process that is killed and the
// plans of when to kill it, a seeded PRNG, an independent reader of the
// documented seal and index formats, and the byte comparison of restores.
import { spawn } from 'node:child_process';
import { createDecipheriv } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { argon2id } from '@noble/hashes/argon2.js';
import { blake3 } from '@noble/hashes/blake3.js';
import { expect } from 'vitest';

/** The child: `node crash-child-v2.mjs backup|expire <repo> <arg>`. */
export const CHILD = join(import.meta.dirname, 'crash-child-v2.mjs');

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------ the child

export interface Plan {
  label: string;
  /**
   * First kill the same operation at this point, so that the run starts from
   * what that kill left (unindexed packs, stale indexes): the run settles them.
   */
  pre?: string;
  /** `<point>:<n>`: the child kills itself the n-th time it reaches the point. */
  crashAt?: string;
  /** With `crashAt`: the point is reached fewer than n times, so the operation completes. */
  completes?: boolean;
  /** SIGKILL this long after the operation starts. */
  killAfterMs?: number;
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The child's process id. */
  pid: number;
  /** From "start" (repository open) to the end of the process. */
  opMs: number;
  result?: any;
}

/**
 * Runs `crash-child-v2.mjs args` with the environment of this process, less
 * POWDB_BACKUP_CRASH_AT and POWDB_BACKUP_PASSWORD, plus `env`, and kills it as
 * `plan` says. A child that fails other than by SIGKILL throws.
 */
export async function runChild(args: string[], plan: Plan, env: Record<string, string> = {}): Promise<Run> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv.POWDB_BACKUP_CRASH_AT;
  delete childEnv.POWDB_BACKUP_PASSWORD;
  Object.assign(childEnv, env);
  if (plan.crashAt) childEnv.POWDB_BACKUP_CRASH_AT = plan.crashAt;
  const child = spawn(process.execPath, [CHILD, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let started: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  child.stdout!.on('data', (d) => {
    stdout += d;
    if (started === undefined && stdout.includes('start\n')) {
      started = performance.now();
      if (plan.killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), plan.killAfterMs);
    }
  });
  child.stderr!.on('data', (d) => (stderr += d));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
    child.on('close', (c, s) => done([c, s])),
  );
  clearTimeout(timer);
  const ended = performance.now();
  if (code !== 0 && signal !== 'SIGKILL') throw new Error(`child failed (${code} ${signal}): ${stderr}`);
  const line = stdout.split('\n').find((l) => l.startsWith('result '));
  return {
    code,
    signal,
    pid: child.pid!,
    opMs: ended - (started ?? ended),
    result: line ? JSON.parse(line.slice(7)) : undefined,
  };
}

/** A boundary kill must end in SIGKILL; a point reached fewer than n times must let the operation finish. */
export function expectExit(run: Run, plan: Plan): void {
  if (plan.crashAt && !plan.completes) expect(run.signal, `${plan.crashAt} must be reached`).toBe('SIGKILL');
  if (plan.completes) expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
}

export const killedAt = (point: string, n: number): Plan => ({ label: `${point}:${n}`, crashAt: `${point}:${n}` });
export const each = (point: string, count: number): Plan[] =>
  Array.from({ length: count }, (_, i) => killedAt(point, i + 1));
/** One past the last time `point` is reached: proves `each(point, count)` covered every time. */
export const beyond = (point: string, count: number): Plan => ({ ...killedAt(point, count + 1), completes: true });
/** `runs` kills at moments drawn uniformly from [0, ms) after the operation starts. */
export function randomKills(rng: () => number, ms: number, runs: number): Plan[] {
  return Array.from({ length: runs }, () => {
    const killAfterMs = Math.round(rng() * ms * 10) / 10;
    return { label: `random ${killAfterMs} ms`, killAfterMs };
  });
}

/** `plans` after a first kill at `pre`. */
export const afterKill = (pre: string, plans: Plan[]): Plan[] =>
  plans.map((p) => ({ ...p, pre, label: `${pre}, then ${p.label}` }));

// ------------------------------------------- an independent reader

/** Open XChaCha20-Poly1305 `nonce[24] ‖ ciphertext ‖ tag[16]` (HChaCha20 here, ChaCha20-Poly1305 from node). */
function xchachaOpen(key: Uint8Array, sealed: Buffer, aad: Buffer): Buffer | undefined {
  const k = Buffer.from(key);
  const s: number[] = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574];
  for (let i = 0; i < 8; i++) s.push(k.readUInt32LE(4 * i));
  for (let i = 0; i < 4; i++) s.push(sealed.readUInt32LE(4 * i));
  const rotl = (v: number, n: number) => ((v << n) | (v >>> (32 - n))) >>> 0;
  const qr = (a: number, b: number, c: number, d: number) => {
    for (const [x, y, z, r] of [
      [a, b, d, 16],
      [c, d, b, 12],
      [a, b, d, 8],
      [c, d, b, 7],
    ] as const) {
      s[x] = (s[x]! + s[y]!) >>> 0;
      s[z] = rotl(s[z]! ^ s[x]!, r);
    }
  };
  // Ten double rounds: four column rounds, then four diagonal ones.
  const QUARTERS = [
    0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14,
  ];
  for (let round = 0; round < 10; round++) {
    for (let q = 0; q < QUARTERS.length; q += 4) qr(QUARTERS[q]!, QUARTERS[q + 1]!, QUARTERS[q + 2]!, QUARTERS[q + 3]!);
  }
  const subkey = Buffer.alloc(32);
  [0, 1, 2, 3, 12, 13, 14, 15].forEach((w, i) => subkey.writeUInt32LE(s[w]!, 4 * i));
  const iv = Buffer.concat([Buffer.alloc(4), sealed.subarray(16, 24)]);
  const body = sealed.subarray(24, sealed.length - 16);
  const decipher = createDecipheriv('chacha20-poly1305', subkey, iv, { authTagLength: 16 });
  decipher.setAAD(aad, { plaintextLength: body.length });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  try {
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return undefined;
  }
}

export type Unseal = (sealed: Buffer, context: string) => Buffer;

/**
 * How to open the sealed objects of a repository, from the text of its
 * `config` and of its key files (as documented); `password` opens one of them.
 */
export function unsealerOf(configText: string, keyTexts: string[], password: string): Unseal {
  const config = JSON.parse(configText);
  if (config.encryption === 'none') {
    const idKey = Buffer.from(config.id_key_hex, 'hex');
    return (sealed, context) => {
      const plain = sealed.subarray(0, sealed.length - 32);
      const ctx = Buffer.from(context);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(ctx.length));
      const mac = blake3(Buffer.concat([len, ctx, plain]), { key: idKey });
      if (!Buffer.from(mac).equals(sealed.subarray(sealed.length - 32))) throw new Error(`${context} fails its seal`);
      return plain;
    };
  }
  for (const text of keyTexts) {
    const k = JSON.parse(text);
    const kek = argon2id(password, Buffer.from(k.salt_hex, 'hex'), { t: k.t, m: k.m_kib, p: k.p, dkLen: 32 });
    const master = xchachaOpen(kek, Buffer.from(k.wrapped_hex, 'hex'), Buffer.from(config.id));
    if (!master) continue;
    const cipherKey = master.subarray(0, 32);
    return (sealed, context) => {
      const plain = xchachaOpen(cipherKey, sealed, Buffer.from(context));
      if (!plain) throw new Error(`${context} fails its seal`);
      return plain;
    };
  }
  throw new Error('no key file opens with the test password');
}

/** The pack keys an index object lists. */
export function parseIndex(plain: Buffer, key: string): string[] {
  // Format-2 entries are 46 bytes; an index naming blobs in compression blocks (format 3) has 54-byte entries.
  const magic = plain.subarray(0, 8).toString('latin1');
  const entryLen = magic === 'PWBIDX2\0' ? 46 : magic === 'PWBIDX3\0' ? 54 : 0;
  if (!entryLen) throw new Error(`${key}: no index magic`);
  const packs: string[] = [];
  let at = 12;
  for (let i = 0; i < plain.readUInt32LE(8); i++) {
    const len = plain.readUInt16LE(at);
    packs.push(plain.subarray(at + 2, at + 2 + len).toString('utf8'));
    at += 2 + len;
    at += 4 + entryLen * plain.readUInt32LE(at);
  }
  if (at !== plain.length) throw new Error(`${key}: ${plain.length - at} bytes after the last pack`);
  return packs;
}

// ------------------------------------------------------------ restores

/** What a restore lays down: every file but manifests, content maps and pagemaps. */
export function dataFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(dir).sort()) {
    if (['manifest.json', 'increment.json', 'contents.json', 'LOCK'].includes(name) || name.endsWith('.pagemap'))
      continue;
    out.set(name, readFileSync(join(dir, name)));
  }
  return out;
}

/** `dir` holds exactly the data files of the plain backup `plain`, byte for byte. */
export function expectSameFiles(dir: string, plain: string): void {
  const got = dataFiles(dir);
  const want = dataFiles(plain);
  want.delete('wal.log'); // not part of a backup
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, bytes] of want) {
    const other = got.get(name)!;
    expect({ name, len: other.length, same: other.equals(bytes) }).toEqual({ name, len: bytes.length, same: true });
  }
}
