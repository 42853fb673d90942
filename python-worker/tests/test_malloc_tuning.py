"""glibc malloc tuning of the worker process (issue 15 §1): large buffers reuse heap memory."""
import json
import os
import subprocess
import sys

import pytest

from procgrpc._process.malloc_tuning import tune_malloc

def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):
        return False


linux_glibc = pytest.mark.skipif(not _glibc(), reason="glibc on Linux only")

# Allocates and frees 1 MiB buffers the way a worker handling 1 MiB messages does, and reports
# the minor page faults they cost: with glibc's defaults every buffer is a fresh mmap.
_CHURN = r"""
import json, resource, sys
from procgrpc._process.malloc_tuning import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tune" else False
keep = []
for _ in range(20):
    keep = [bytearray(1 << 20) for _ in range(3)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    keep = [bytearray(1 << 20) for _ in range(3)]
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _churn(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "PROCGRPC_MALLOC_TUNING")}
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], env={**clean, **env}, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


@linux_glibc
def test_tuned_large_buffers_reuse_memory_instead_of_faulting_in_fresh_pages():
    untuned = _churn("plain")
    tuned = _churn("tune")
    assert tuned["tuned"] is True
    # 600 buffers of 256 pages each: the defaults fault many of them in again (48,000 here); tuned, none.
    assert untuned["faults"] > 600 * 20
    assert tuned["faults"] < untuned["faults"] / 10


@linux_glibc
def test_the_off_switch_and_the_users_own_malloc_settings_are_respected():
    assert _churn("tune", PROCGRPC_MALLOC_TUNING="off")["tuned"] is False
    assert _churn("tune", MALLOC_ARENA_MAX="2")["tuned"] is False
    assert _churn("tune", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")["tuned"] is False
    assert _churn("tune", GLIBC_TUNABLES="glibc.rtld.nns=4")["tuned"] is True


def test_tune_malloc_reads_the_environment_it_is_given():
    assert tune_malloc({"PROCGRPC_MALLOC_TUNING": "off"}) is False
    assert tune_malloc({"MALLOC_TRIM_THRESHOLD_": "0"}) is False


# Holds ~100 MiB of 1 MiB buffers (heap memory once tuned, below the 128 MiB trim threshold, so
# glibc keeps it after they are freed), frees them, then reports resident memory as the trimmer
# sees it. ``busy`` is what the trimmer is told about calls in flight.
_TRIM = r"""
import json, sys, time
from procgrpc._process.malloc_tuning import HeapTrimmer, resident_bytes, tune_malloc
assert tune_malloc()
busy = int(sys.argv[1])
trimmer = HeapTrimmer(lambda: busy, interval=0.05, slack_bytes=32 << 20)
trimmer.start()
held = [bytearray(b"x" * (1 << 20)) for _ in range(100)]
peak = resident_bytes()
del held
freed = resident_bytes()
deadline = time.monotonic() + 30
while time.monotonic() < deadline and ((trimmer.trims == 0 or resident_bytes() > peak - (60 << 20)) if not busy else trimmer.samples < 10):
    time.sleep(0.01)
print(json.dumps({"peak": peak, "freed": freed, "after": resident_bytes(), "trims": trimmer.trims, "samples": trimmer.samples}))
"""


def _trim(busy: int) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "PROCGRPC_MALLOC_TUNING")}
    return json.loads(subprocess.run([sys.executable, "-c", _TRIM, str(busy)], env=clean, check=True, capture_output=True, text=True).stdout)


@linux_glibc
def test_an_idle_tuned_worker_gives_freed_heap_back():
    r = _trim(busy=0)
    assert r["freed"] > r["peak"] - (20 << 20)  # tuned: freeing alone keeps the memory
    assert r["trims"] >= 1
    assert r["after"] < r["peak"] - (60 << 20)


@linux_glibc
def test_a_busy_worker_is_not_trimmed():
    r = _trim(busy=1)
    assert r["samples"] >= 10 and r["trims"] == 0
    assert r["after"] > r["peak"] - (20 << 20)
