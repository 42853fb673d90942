"""Python side of the lane's file-I/O micro-benchmark: write, read and unlink a file of each size in
a private 0700 directory under /dev/shm (or the directory given), several ways. Prints JSON lines.

Usage: python fileio.py [DIR] [--rounds N]
"""
import json
import mmap
import os
import sys
import tempfile
import time
import zlib
import hashlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python-worker"))
from procgrpc._shm import Lane  # noqa: E402

SIZES = [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]


def timed(fn, rounds):
    best = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    best.sort()
    return best[len(best) // 2] * 1e6  # median, µs


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "/dev/shm"
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 9
    d = tempfile.mkdtemp(prefix="pglane-io-", dir=base)
    os.chmod(d, 0o700)
    try:
        for size in SIZES:
            payload = os.urandom(size)
            path = os.path.join(d, "f")
            r = max(3, min(rounds, int(rounds * (1 << 20) / size) or 3))

            def write():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                view = memoryview(payload)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.close(fd)

            def read_os():
                fd = os.open(path, os.O_RDONLY)
                data = os.read(fd, size)
                os.close(fd)
                assert len(data) == size

            def read_into():
                buf = bytearray(size)
                fd = os.open(path, os.O_RDONLY)
                with os.fdopen(fd, "rb", buffering=0) as f:
                    n = f.readinto(buf)
                assert n == size

            def read_mmap():
                fd = os.open(path, os.O_RDONLY)
                m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                os.close(fd)
                data = bytes(m)  # one copy out, as a parser would need
                m.close()
                assert len(data) == size

            def read_mmap_touch():
                # Map only and touch every page: the cost a zero-copy consumer (numpy.frombuffer) pays.
                fd = os.open(path, os.O_RDONLY)
                m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                os.close(fd)
                mv = memoryview(m)
                s = 0
                for i in range(0, size, 4096):
                    s += mv[i]
                mv.release()
                m.close()

            def unlink_cycle():
                write()
                os.unlink(path)

            out = {"side": "python", "size": size}
            out["write_us"] = timed(write, r)
            out["read_os_us"] = timed(read_os, r)
            out["read_into_us"] = timed(read_into, r)
            out["read_mmap_copy_us"] = timed(read_mmap, r)
            out["read_mmap_touch_us"] = timed(read_mmap_touch, r)
            out["write_unlink_us"] = timed(unlink_cycle, r)
            out["unlink_only_us"] = out["write_unlink_us"] - out["write_us"]
            lane = Lane(d, "w1")
            out["lane_write_read_us"] = timed(lambda: lane.read(lane.write(payload)), r)
            out["crc32_us"] = timed(lambda: zlib.crc32(payload), r)
            out["blake2b_us"] = timed(lambda: hashlib.blake2b(payload, digest_size=8).digest(), r)
            out["md5_us"] = timed(lambda: hashlib.md5(payload).digest(), r)
            out["bytes_copy_us"] = timed(lambda: bytearray(payload), r)
            if os.path.exists(path):
                os.unlink(path)
            lane.sweep()
            print(json.dumps(out), flush=True)
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


if __name__ == "__main__":
    main()
