# Runs a command and prints {"secs": wall seconds, "rss_kib": peak RSS of it and its children}.
# With --stdout-to FILE first, the command's stdout goes to FILE (else it is dropped).
import json, resource, subprocess, sys, time

argv = sys.argv[1:]
out = subprocess.DEVNULL
if argv[:1] == ["--stdout-to"]:
    out = open(argv[1], "wb")
    argv = argv[2:]
started = time.perf_counter()
result = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE)
secs = time.perf_counter() - started
if result.returncode != 0:
    sys.stderr.write(result.stderr.decode())
    sys.exit(result.returncode)
print(json.dumps({"secs": secs, "rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
