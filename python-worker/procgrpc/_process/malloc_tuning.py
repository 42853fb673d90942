"""Keeping the memory of large messages in the worker's heap (issue 15 §1).

glibc serves an allocation of 128 KiB or more with a fresh ``mmap`` and returns it to the
kernel when it is freed, and it gives back the top of its heap once 128 KiB of it is free. A
worker handling a 1 MiB message allocates several such buffers per call (the request's bytes, the
parsed message's field, the response, its serialization), so every call paid for fresh pages:
about 256 page faults and the kernel's zeroing per MiB, per buffer. Measured on the benchmark's
1 MiB echo, that was 4.4 ms of the worker's 4.4 ms CPU per call before this tuning and 1.7 ms after
(docs/benchmarks.md, "Large payloads"). With a 32 MiB mmap threshold (glibc's own upper bound for
its dynamic threshold) and a 64 MiB trim threshold, freed buffers are reused by the next call.

The cost would be memory the worker keeps after a burst of large messages: up to the trim
threshold of free heap per malloc arena (grpc's threads use several). So a tuned worker also runs
a :class:`HeapTrimmer`: once the heap holds more than 64 MiB of free memory (``mallinfo2``; with a
glibc older than 2.33, once resident memory is 64 MiB above its level after the last trim) and no
call is inside servicer code, it calls ``malloc_trim(0)``, which hands the free pages back.
``PROCGRPC_MALLOC_TUNING=off`` leaves glibc's defaults (and starts no trimmer), and a worker
started with any glibc malloc setting of its own (``MALLOC_*`` variables, ``glibc.malloc``
tunables) is left as configured. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from typing import Callable, Mapping, Optional

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "HeapTrimmer", "resident_bytes", "tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations below this come from the heap (glibc's maximum for its dynamic threshold on 64-bit).
MMAP_THRESHOLD_BYTES = 32 << 20
#: Free memory at the top of the heap kept for the next call before glibc returns it.
TRIM_THRESHOLD_BYTES = 128 << 20
#: Free heap an idle worker may keep before it trims.
TRIM_SLACK_BYTES = 64 << 20

_tuned = False


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
        global _tuned
        _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
        return _tuned
    except (OSError, AttributeError):
        return False


def resident_bytes() -> int:
    """This process's resident memory (``/proc/self/statm``), 0 where there is none."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _free_heap_reader(libc: ctypes.CDLL) -> Optional[Callable[[], int]]:
    """Free bytes in all malloc arenas (``mallinfo2().fordblks``), or None before glibc 2.33."""
    fn = getattr(libc, "mallinfo2", None)
    if fn is None:
        return None
    fn.argtypes = ()
    fn.restype = _MallInfo2
    return lambda: int(fn().fordblks)


class HeapTrimmer:
    """Gives freed heap back to the kernel when an idle, tuned worker keeps much of it.

    A daemon thread looks every ``interval`` seconds; when the heap's free memory is over
    ``slack_bytes`` (with a glibc without ``mallinfo2``: when resident memory is ``slack_bytes``
    above its level after the last trim) and ``busy()`` says no call is running, it calls
    ``malloc_trim(0)``."""

    def __init__(self, busy: Callable[[], int], interval: float = 1.0, slack_bytes: int = TRIM_SLACK_BYTES) -> None:
        self._busy = busy
        self._interval = interval
        self._slack = slack_bytes
        #: Samples taken and trims made so far (for tests and diagnostics).
        self.samples = 0
        self.trims = 0
        self._looked = threading.Condition()
        libc = ctypes.CDLL(None)
        self._trim = libc.malloc_trim
        self._trim.argtypes = (ctypes.c_size_t,)
        self._trim.restype = ctypes.c_int
        self._free_heap = _free_heap_reader(libc)
        self._thread = threading.Thread(target=self._run, name="procgrpc-heap-trim", daemon=True)

    @classmethod
    def start_if_tuned(cls, busy: Callable[[], int]) -> Optional["HeapTrimmer"]:
        """A started trimmer when :func:`tune_malloc` changed glibc's thresholds, else None."""
        if not _tuned:
            return None
        trimmer = cls(busy)
        trimmer.start()
        return trimmer

    def start(self) -> None:
        """Starts the sampling thread."""
        self._thread.start()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Waits until ``condition()`` holds after one of the thread's looks, or ``timeout``
        seconds pass; returns whether it holds (for tests and diagnostics)."""
        with self._looked:
            return self._looked.wait_for(condition, timeout)

    def _run(self) -> None:
        level = resident_bytes()
        free_heap = self._free_heap
        while True:
            time.sleep(self._interval)
            keeps_too_much = free_heap() > self._slack if free_heap is not None else resident_bytes() > level + self._slack
            if keeps_too_much and self._busy() == 0:
                self._trim(0)
                self.trims += 1
                level = resident_bytes()
            with self._looked:
                self.samples += 1
                self._looked.notify_all()
