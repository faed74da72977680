# Runs a command and prints {"secs": wall seconds, "rss_kib": peak RSS of it and its children}.
import json, resource, subprocess, sys, time

started = time.perf_counter()
result = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
secs = time.perf_counter() - started
if result.returncode != 0:
    sys.stderr.write(result.stderr.decode())
    sys.exit(result.returncode)
print(json.dumps({"secs": secs, "rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
