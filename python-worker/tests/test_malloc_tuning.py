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
