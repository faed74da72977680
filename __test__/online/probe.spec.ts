// The native wire client against a real powdb-server 0.29.0 (started by
// __test__/powdb-server.ts): the LSN probe, and every way a connection fails
// with its code, without ever hanging.
import { existsSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { serverProbe } from '../../lib/online/server.js';
import { rejectsWith } from '../helpers.js';
import { startPowdbServer, type User } from '../powdb-server.js';

const APP: User = { name: 'app', role: 'readwrite', password: 'app-pw' };
const RO: User = { name: 'ro', role: 'readonly', password: 'ro-pw' };

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

describe('the test server helper', () => {
  it('starts a server with its logins, stops it cleanly keeping the data, and leaves no process behind', async () => {
    const server = await startPowdbServer({ users: [APP, RO] });
    await server.query(APP.name, APP.password, 'type T { required unique id: int }');
    expect(await server.query(RO.name, RO.password, 'count(T)')).toEqual({ value: 0 });
    expect(await server.query(server.admin.user, server.admin.password, 'count(T)')).toEqual({ value: 0 });
    await server.stop();
    expect(() => process.kill(server.pid, 0)).toThrow(/ESRCH/);
    expect(server.log()).toContain('clean shutdown complete');
    expect(existsSync(server.dataDir)).toBe(true);
  });

  it('a server whose parent goes away is killed and its directory removed', async () => {
    const server = await startPowdbServer({ users: [APP] });
    await server.abandon();
    expect(() => process.kill(server.pid, 0)).toThrow(/ESRCH/);
    expect(existsSync(server.dataDir)).toBe(false);
  });
});

describe('serverProbe', () => {
  it("returns the server's LSN, which grows with each write and stays put without one", async () => {
    const server = await startPowdbServer({ users: [APP] });
    const login = server.login(APP.name, APP.password);
    const first = await serverProbe(login);
    expect(first.serverVersion).toBe('0.29.0');
    expect(first.protocol).toBe(2);
    expect(first.features).toEqual(expect.arrayContaining(['sync']));
    expect(typeof first.remoteLsn).toBe('bigint');
    // No write in between: the same LSN (the probe itself writes nothing).
    expect((await serverProbe(login)).remoteLsn).toBe(first.remoteLsn);
    await server.query(APP.name, APP.password, 'type T { required unique id: int, v: int }');
    const afterDdl = (await serverProbe(login)).remoteLsn;
    expect(afterDdl).toBeGreaterThan(first.remoteLsn);
    await server.query(APP.name, APP.password, 'insert T { id := 1, v := 10 }');
    const afterInsert = (await serverProbe(login)).remoteLsn;
    expect(afterInsert).toBeGreaterThan(afterDdl);
    // A read is not a write.
    await server.query(APP.name, APP.password, 'count(T)');
    expect((await serverProbe(login)).remoteLsn).toBe(afterInsert);
    // Sync is off: the probe's replica id has no cursor, which the status says.
    expect(first.sync).toMatchObject({ replicaId: 'powdb-backup-probe', active: false });
  });

  it('a wrong password or an unknown user is ERR_SERVER_AUTH; the right one then connects', async () => {
    const server = await startPowdbServer({ users: [APP] });
    const e = await rejectsWith(serverProbe(server.login(APP.name, 'wrong')), 'ERR_SERVER_AUTH');
    expect(e.message).toMatch(/refused login 'app': authentication failed/);
    await rejectsWith(serverProbe(server.login('nobody', APP.password)), 'ERR_SERVER_AUTH');
    expect((await serverProbe(server.login(APP.name, APP.password))).serverVersion).toBe('0.29.0');
  });

  it('a readonly login authenticates but is ERR_SERVER_ROLE: the probe needs write permission', async () => {
    const server = await startPowdbServer({ users: [APP, RO] });
    // The login itself is good: it reads.
    expect(await server.query(RO.name, RO.password, 'schema')).toBeDefined();
    const e = await rejectsWith(serverProbe(server.login(RO.name, RO.password)), 'ERR_SERVER_ROLE');
    expect(e.message).toMatch(/readwrite \(or admin\) login/);
  });

  it('a closed port is ERR_SERVER_UNREACHABLE at once', async () => {
    const port = await closedPort();
    const started = performance.now();
    const e = await rejectsWith(
      serverProbe({ host: '127.0.0.1', port, user: 'u', password: 'p' }),
      'ERR_SERVER_UNREACHABLE',
    );
    expect(performance.now() - started).toBeLessThan(1000);
    expect(e.message).toContain(`127.0.0.1:${port}`);
  });

  it('a server that accepts but never answers is ERR_SERVER_TIMEOUT after timeoutMs, and answers again once resumed', async () => {
    const server = await startPowdbServer({ users: [APP] });
    const login = { ...server.login(APP.name, APP.password), timeoutMs: 500 };
    server.pause(); // SIGSTOP: the kernel still completes the TCP handshake
    const started = performance.now();
    await rejectsWith(serverProbe(login), 'ERR_SERVER_TIMEOUT');
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3000);
    server.resume();
    expect((await serverProbe(login)).serverVersion).toBe('0.29.0');
  });

  it('refuses a port out of range and a zero timeout with ERR_INVALID_ARG', async () => {
    await rejectsWith(serverProbe({ host: '127.0.0.1', port: 0 }), 'ERR_INVALID_ARG');
    await rejectsWith(serverProbe({ host: '127.0.0.1', port: 70000 }), 'ERR_INVALID_ARG');
    await rejectsWith(serverProbe({ host: '127.0.0.1', port: 1, timeoutMs: 0 }), 'ERR_INVALID_ARG');
  });
});
