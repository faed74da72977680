"""Runs a command under a real pseudo-terminal, as a user at a terminal would.

usage: pty-run.py <json spec>
spec: {"argv": [...], "interrupt_after": "<text>" | null, "timeout": seconds,
       "fsize_limit": bytes | null}
Waits for <text> in the terminal's output, then types Ctrl-C once (the
terminal sends SIGINT to the foreground process group). Prints one JSON line:
{"exit": code or null, "signal": n or null, "hung": bool, "output": text}.
"hung" means the process was still alive `timeout` seconds after the
interrupt (or after starting): it is then killed.
"""
import json
import os
import pty
import resource
import select
import signal
import sys
import time

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    if spec.get("fsize_limit"):
        # Writes past the limit fail with EFBIG instead of killing the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(spec["fsize_limit"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    os.execvp(spec["argv"][0], spec["argv"])

output = b""
interrupted = spec.get("interrupt_after") is None
deadline = time.monotonic() + spec["timeout"]
status = None
closed = False
while True:
    if status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    ready = [] if closed else select.select([fd], [], [], 0.05)[0]
    if ready:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end closed
            chunk = b""
        closed = chunk == b""
        output += chunk
    if status is not None and not ready:
        break
    if closed and status is None:
        time.sleep(0.05)
    if not interrupted and spec["interrupt_after"].encode() in output:
        os.write(fd, b"\x03")
        interrupted = True
        deadline = time.monotonic() + spec["timeout"]
    if status is None and time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print(json.dumps({"exit": None, "signal": None, "hung": True, "output": output.decode(errors="replace")}))
        sys.exit(0)

print(
    json.dumps(
        {
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "hung": False,
            "output": output.decode(errors="replace"),
        }
    )
)
