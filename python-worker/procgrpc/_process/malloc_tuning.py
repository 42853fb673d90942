"""Keeping the memory of large messages in the worker's heap (issue 15 §1).

glibc serves an allocation of 128 KiB or more with a fresh ``mmap`` and returns it to the
kernel when it is freed, and it gives back the top of its heap once 128 KiB of it is free. A
worker handling a 1 MiB message allocates several such buffers per call (the request's bytes, the
parsed message's field, the response, its serialization), so every call paid for fresh pages:
about 256 page faults and the kernel's zeroing per MiB, per buffer. Measured on the benchmark's
1 MiB echo, that was 4.4 ms of the worker's 4.4 ms CPU per call before this tuning and 1.7 ms after
(docs/benchmarks.md, "Large payloads"). With a 32 MiB mmap threshold (glibc's own upper bound for
its dynamic threshold) and a 64 MiB trim threshold, freed buffers are reused by the next call.

The cost is memory the worker keeps: up to the trim threshold of free heap after a burst of large
messages (flat, not growing). ``PROCGRPC_MALLOC_TUNING=off`` leaves glibc's defaults, and a
worker started with any glibc malloc setting of its own (``MALLOC_*`` variables,
``glibc.malloc`` tunables) is left as configured. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Mapping

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations below this come from the heap (glibc's maximum for its dynamic threshold on 64-bit).
MMAP_THRESHOLD_BYTES = 32 << 20
#: Free memory at the top of the heap kept for the next call before glibc returns it.
TRIM_THRESHOLD_BYTES = 128 << 20


def tune_malloc(env: Mapping[str, str] = os.environ) -> bool:
    """Sets glibc's mmap and trim thresholds for this process; True when they were set.

    Does nothing (False) off Linux, with a C library that is not glibc, when
    ``PROCGRPC_MALLOC_TUNING`` is ``off`` or when the environment already configures glibc's
    malloc."""
    if not sys.platform.startswith("linux") or env.get("PROCGRPC_MALLOC_TUNING", "").lower() in ("off", "0", "false"):
        return False
    if any(name.startswith("MALLOC_") for name in env) or "glibc.malloc." in env.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):
            return False
        mallopt = libc.mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
