# Helpers of the benchmark's disk part (`node scripts/bench.mjs --part disk`).
#
#   disk.py run <argv...>          runs argv; prints {"secs", "rss_kib", the I/O it did, "out": its stdout}
#   disk.py times <n> <argv...>    runs argv n times (exit status ignored); prints {"secs": [...]}
#   disk.py cfr <dest> <files...>  copies files into the new directory dest with copy_file_range(2),
#                                  fsyncs each file and dest; prints {"bytes", "reflink"}
#
# The I/O of a child: when a process reaps a child, the kernel adds the child's
# I/O accounting (with that of its threads and reaped children) to the
# parent's, so /proc/self/io read before and after the run differs by exactly
# what the child did. `write_bytes`: bytes the child caused to be sent to the
# storage layer (page-cache pages it dirtied, counted once per page until
# written back); `wchar`: bytes it passed to write-like system calls (pipes
# and terminals included, copy_file_range not).
import fcntl, json, os, resource, subprocess, sys, time


def io():
    with open('/proc/self/io') as f:
        return {k: int(v) for k, v in (line.split(': ') for line in f.read().splitlines())}


def run(argv):
    before = io()
    started = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    secs = time.perf_counter() - started
    after = io()
    if result.returncode != 0:
        sys.stderr.write(result.stderr.decode())
        sys.exit(result.returncode)
    out = {'secs': secs, 'rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}
    for k in ('write_bytes', 'cancelled_write_bytes', 'wchar', 'read_bytes', 'rchar'):
        out[k] = after[k] - before[k]
    if result.stdout.strip():
        out['out'] = result.stdout.decode().strip()
    print(json.dumps(out))


def times(n, argv):
    secs = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        secs.append(time.perf_counter() - started)
    print(json.dumps({'secs': secs}))


FICLONE = 0x40049409  # _IOW(0x94, 9, int)


def cfr(dest, files):
    os.mkdir(dest)
    total = 0
    reflink = None
    for path in files:
        target = os.path.join(dest, os.path.basename(path))
        src = os.open(path, os.O_RDONLY)
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        size = os.fstat(src).st_size
        if reflink is None:  # would the file system clone? (ext4: EOPNOTSUPP)
            try:
                fcntl.ioctl(dst, FICLONE, src)
                reflink = 'yes'
                os.ftruncate(dst, 0)
            except OSError as e:
                reflink = f'no ({os.strerror(e.errno)})'
        done = 0
        while done < size:
            n = os.copy_file_range(src, dst, size - done, done, done)
            if n == 0:
                break
            done += n
        os.fsync(dst)
        os.close(dst)
        os.close(src)
        total += done
    d = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(d)
    os.close(d)
    print(json.dumps({'bytes': total, 'reflink': reflink}))


command, *rest = sys.argv[1:]
if command == 'run':
    run(rest)
elif command == 'times':
    times(int(rest[0]), rest[1:])
elif command == 'cfr':
    cfr(rest[0], rest[1:])
else:
    sys.exit(f'disk.py: unknown command {command}')
