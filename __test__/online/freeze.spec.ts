// The write freeze (`begin` held on a connection, ended by `commit`) against a
// real powdb-server 0.29.0: it holds writers and lets readers through, it ends
// with commit (its Begin and Commit stay in the log), and every way the server
// ends it first is ERR_FREEZE_LOST, never a silent success.
import { describe, expect, it } from 'vitest';
import { ServerFreeze, serverProbe } from '../../lib/online/server.js';
import { rejectsWith } from '../helpers.js';
import { startPowdbServer, type User } from '../powdb-server.js';

const APP: User = { name: 'app', role: 'readwrite', password: 'app-pw' };
const RO: User = { name: 'ro', role: 'readonly', password: 'ro-pw' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ServerFreeze', () => {
  it('holds a writer until commit while a read is answered', async () => {
    // Writers wait for the gate up to 30 s here, so the blocked insert waits, not fails.
    const server = await startPowdbServer({ users: [APP], env: { POWDB_TX_WAIT_TIMEOUT_MS: '30000' } });
    const q = (powql: string) => server.query(APP.name, APP.password, powql);
    await q('type T { required unique id: int, v: int }');
    await q('insert T { id := 1, v := 1 }');
    // The control: without a freeze the same kind of insert takes this long.
    const t = performance.now();
    await q('insert T { id := 2, v := 2 }');
    const unfrozen = performance.now() - t;

    const freeze = await ServerFreeze.begin(server.login(APP.name, APP.password));
    try {
      const insert = server.start(APP.name, APP.password, 'insert T { id := 3, v := 3 }');
      let insertEnded = false;
      void insert.done.then(() => (insertEnded = true));
      await sleep(300); // the insert reaches the server and queues on the gate
      // A read is answered beside the freeze, even with a writer queued. (The
      // powdb-cli process itself then waits: see RunningCli.)
      const readFrom = performance.now();
      const read = server.start(APP.name, APP.password, 'count(T)');
      const answer = await read.answered;
      expect(JSON.parse(answer.stdout)).toEqual({ value: 2 });
      expect(answer.at - readFrom).toBeLessThan(5000);
      await sleep(Math.max(1000, 3 * unfrozen));
      expect(insertEnded, 'the insert completed during the freeze').toBe(false);

      const committing = performance.now();
      const { heldMs } = await freeze.commit();
      const done = await insert.done;
      expect(done.code, done.stderr).toBe(0);
      expect(done.endedAt).toBeGreaterThan(committing);
      expect(done.endedAt - committing).toBeLessThan(5000);
      expect(answer.at).toBeLessThan(committing);
      expect(heldMs).toBeGreaterThanOrEqual(1000);
      expect((await read.done).code).toBe(0);
      expect(await q('count(T)')).toEqual({ value: 3 });
    } finally {
      freeze.drop();
    }
  });

  it('ends with commit: its Begin and Commit stay in the log (a rollback would give its LSN back)', async () => {
    const server = await startPowdbServer({ users: [APP] });
    const login = server.login(APP.name, APP.password);
    await server.query(APP.name, APP.password, 'type T { required unique id: int }');
    const before = (await serverProbe(login)).remoteLsn;
    await (await ServerFreeze.begin(login)).commit();
    expect((await serverProbe(login)).remoteLsn).toBe(before + 2n);
  });

  it('a writer that waits longer than POWDB_TX_WAIT_TIMEOUT_MS fails, and so does a second freeze (ERR_SERVER_BUSY)', async () => {
    const server = await startPowdbServer({ users: [APP], env: { POWDB_TX_WAIT_TIMEOUT_MS: '500' } });
    const login = server.login(APP.name, APP.password);
    await server.query(APP.name, APP.password, 'type T { required unique id: int }');
    const freeze = await ServerFreeze.begin(login);
    try {
      const blocked = await server.run(APP.name, APP.password, 'insert T { id := 1 }');
      expect(blocked.code).not.toBe(0);
      expect(blocked.stderr).toMatch(/transaction gate timeout after 500ms/);
      const e = await rejectsWith(ServerFreeze.begin(login), 'ERR_SERVER_BUSY');
      expect(e.message).toMatch(/holds the server's write gate/);
      // The probe's SyncStatus also needs the whole gate.
      await rejectsWith(serverProbe(login), 'ERR_SERVER_BUSY');
      await freeze.commit();
    } finally {
      freeze.drop();
    }
    // The control: with the freeze ended the same insert goes through.
    expect(await server.query(APP.name, APP.password, 'insert T { id := 1 }')).toEqual({ affected: 1 });
  });

  it('a readonly login is ERR_SERVER_ROLE, saying a readwrite login is needed', async () => {
    const server = await startPowdbServer({ users: [APP, RO] });
    const e = await rejectsWith(ServerFreeze.begin(server.login(RO.name, RO.password)), 'ERR_SERVER_ROLE');
    expect(e.message).toMatch(/explicit transaction \(`begin`\) that holds the server's write gate/);
    expect(e.message).toMatch(/readwrite \(or admin\) login/);
    // The control: a readwrite login freezes.
    await (await ServerFreeze.begin(server.login(APP.name, APP.password))).commit();
  });

  it('held past POWDB_TX_MAX_LIFETIME_MS, the server rolls it back and commit is ERR_FREEZE_LOST; a shorter one commits', async () => {
    const server = await startPowdbServer({
      users: [APP],
      env: { POWDB_TX_MAX_LIFETIME_MS: '1500', POWDB_TX_WAIT_TIMEOUT_MS: '30000' },
    });
    const login = server.login(APP.name, APP.password);
    await server.query(APP.name, APP.password, 'type T { required unique id: int }');

    // The control: well inside the lifetime, commit succeeds.
    const short = await ServerFreeze.begin(login);
    expect((await short.commit()).heldMs).toBeLessThan(1500);

    const long = await ServerFreeze.begin(login);
    try {
      // A writer blocked by the freeze gets through once the server gives the gate back.
      const insert = server.run(APP.name, APP.password, 'insert T { id := 1 }');
      await sleep(2500);
      const done = await insert;
      expect(done.code, done.stderr).toBe(0);
      const e = await rejectsWith(long.commit(), 'ERR_FREEZE_LOST');
      expect(e.message).toMatch(/exceeded the maximum lifetime of 1500ms/);
      expect(e.message).toMatch(/not consistent/);
    } finally {
      long.drop();
    }
    expect(server.log()).toMatch(/transaction exceeded its maximum lifetime/);
  });

  it('a server killed during the freeze is ERR_FREEZE_LOST', async () => {
    const server = await startPowdbServer({ users: [APP] });
    const freeze = await ServerFreeze.begin({ ...server.login(APP.name, APP.password), timeoutMs: 2000 });
    await server.kill();
    await rejectsWith(freeze.commit(), 'ERR_FREEZE_LOST');
  });

  it('ends one way only: a second commit is ERR_INVALID_ARG and drop after it does nothing', async () => {
    const server = await startPowdbServer({ users: [APP] });
    const freeze = await ServerFreeze.begin(server.login(APP.name, APP.password));
    await freeze.commit();
    await rejectsWith(freeze.commit(), 'ERR_INVALID_ARG');
    freeze.drop();
  });

  it('a dropped freeze releases the gate: the server rolls it back on the disconnect', async () => {
    const server = await startPowdbServer({ users: [APP], env: { POWDB_TX_WAIT_TIMEOUT_MS: '30000' } });
    await server.query(APP.name, APP.password, 'type T { required unique id: int }');
    const freeze = await ServerFreeze.begin(server.login(APP.name, APP.password));
    const insert = server.run(APP.name, APP.password, 'insert T { id := 1 }');
    await sleep(500);
    const dropped = performance.now();
    freeze.drop();
    const done = await insert;
    expect(done.code, done.stderr).toBe(0);
    expect(done.endedAt).toBeGreaterThan(dropped);
    expect(done.endedAt - dropped).toBeLessThan(5000);
  });
});
