"""Pinning the worker to the CPUs the pool chose for its slot (``PROCGRPC_CPU_AFFINITY``).

Linux has ``os.sched_setaffinity``; it sets the mask of one thread, so every thread the process
already has (those started while the servicer's modules were imported, e.g. a numeric library's
pool) is pinned too, and threads started later inherit the mask of the thread that starts
them. Where the call is missing (macOS), or on the portable path (``PROCGRPC_PORTABLE=1``, which
the tests use to exercise it), the setting is ignored with one warning: the worker runs unpinned.
"""

from __future__ import annotations

import os
from typing import FrozenSet, List, Optional

from .log import get_logger
from .platform import portable

__all__ = ["AffinityError", "apply_cpu_affinity", "supported"]

_log = get_logger()


class AffinityError(Exception):
    """The CPUs asked for cannot be used here (not present, or outside the allowed set)."""


def supported() -> bool:
    """True when this platform can pin a process to CPUs."""
    return hasattr(os, "sched_setaffinity") and not portable()


def _threads() -> List[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # 0: the calling thread


def apply_cpu_affinity(cpus: Optional[FrozenSet[int]]) -> bool:
    """Pin every thread of this process to ``cpus``; returns True when pinned.

    ``None`` leaves the process alone. Unsupported platforms log one warning and return False.
    Raises :class:`AffinityError` when the kernel refuses the set.
    """
    if cpus is None:
        return False
    if not supported():
        _log.warn("cpu affinity is not supported on this platform; running unpinned",
                  cpus=sorted(cpus), portable=portable())
        return False
    try:
        for tid in _threads():
            try:
                os.sched_setaffinity(tid, cpus)
            except ProcessLookupError:
                pass  # that thread ended meanwhile
    except OSError as exc:
        allowed = sorted(os.sched_getaffinity(0))
        raise AffinityError(f"cannot pin to CPUs {sorted(cpus)}: {exc.strerror or exc} (this process may use {allowed})") from None
    _log.info("pinned to cpus", cpus=sorted(cpus))
    return True
