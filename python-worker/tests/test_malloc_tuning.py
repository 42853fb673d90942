"""glibc malloc tuning of the worker process (issue 15 §1): large buffers reuse heap memory."""
import json
import os
import subprocess
import sys

from procgrpc._process.malloc_tuning import tune_malloc


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):
        return False


GLIBC = _glibc()


def _clean_env(**env: str) -> dict:
    """This environment without malloc settings of its own, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "PROCGRPC_MALLOC_TUNING")}
    return {**clean, **env}


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
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], env=_clean_env(**env), check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_tuned_large_buffers_reuse_memory_instead_of_faulting_in_fresh_pages():
    untuned = _churn("plain")
    tuned = _churn("tune")
    if not GLIBC:
        assert tuned["tuned"] is False  # nothing is tuned with another C library
        return
    assert tuned["tuned"] is True
    # 600 buffers of 256 pages each: the defaults fault many of them in again (48,000 here); tuned, none.
    assert untuned["faults"] > 600 * 20
    assert tuned["faults"] < untuned["faults"] / 10


def test_the_off_switch_and_the_users_own_malloc_settings_are_respected():
    assert _churn("tune", PROCGRPC_MALLOC_TUNING="off")["tuned"] is False
    assert _churn("tune", MALLOC_ARENA_MAX="2")["tuned"] is False
    assert _churn("tune", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")["tuned"] is False
    assert _churn("tune", GLIBC_TUNABLES="glibc.rtld.nns=4")["tuned"] is GLIBC


def test_tune_malloc_reads_the_environment_it_is_given():
    assert tune_malloc({"PROCGRPC_MALLOC_TUNING": "off"}) is False
    assert tune_malloc({"MALLOC_TRIM_THRESHOLD_": "0"}) is False


# Holds ~100 MiB of 1 MiB buffers (heap memory once tuned, below the 128 MiB trim threshold, so
# glibc keeps it after they are freed), frees them, starts a trimmer, then reports resident memory once the
# trimmer has trimmed (idle) or looked ten times (busy). ``busy`` is what it is told about calls
# in flight.
_TRIM = r"""
import json, sys
from procgrpc._process.malloc_tuning import HeapTrimmer, resident_bytes, tune_malloc
if not tune_malloc():
    print(json.dumps({"tuned": False, "started": HeapTrimmer.start_if_tuned(lambda: 0) is not None}))
    sys.exit(0)
busy = int(sys.argv[1])
held = [bytearray(b"x" * (1 << 20)) for _ in range(100)]
peak = resident_bytes()
del held
freed = resident_bytes()
# Started once "freed" is read: a trim while the buffers were being freed would hide what
# freeing alone keeps.
trimmer = HeapTrimmer(lambda: busy, interval=0.05, slack_bytes=32 << 20)
trimmer.start()
# The deadline only bounds a failure.
if busy:
    trimmer.wait_for(lambda: trimmer.samples >= 10, 30)
else:
    trimmer.wait_for(lambda: trimmer.trims >= 1 and resident_bytes() < peak - (60 << 20), 30)
print(json.dumps({"tuned": True, "peak": peak, "freed": freed, "after": resident_bytes(), "trims": trimmer.trims, "samples": trimmer.samples}))
"""


def _trim(busy: int) -> dict:
    return json.loads(subprocess.run([sys.executable, "-c", _TRIM, str(busy)], env=_clean_env(), check=True, capture_output=True, text=True).stdout)


def test_an_idle_tuned_worker_gives_freed_heap_back():
    r = _trim(busy=0)
    if not GLIBC:
        assert r == {"tuned": False, "started": False}  # no trimmer where nothing was tuned
        return
    assert r["freed"] > r["peak"] - (20 << 20)  # tuned: freeing alone keeps the memory
    assert r["trims"] >= 1
    assert r["after"] < r["peak"] - (60 << 20)


def test_a_busy_worker_is_not_trimmed():
    r = _trim(busy=1)
    if not GLIBC:
        assert r == {"tuned": False, "started": False}
        return
    assert r["samples"] >= 10 and r["trims"] == 0
    assert r["after"] > r["peak"] - (20 << 20)
