"""Detecting that the process that started the worker has died, off the event loop.

Orphaned workers are the failure mode that hurts most, and servicer code can block the event
loop (an ``async def`` calling blocking code) or keep threads busy for ever, so detection and
the hard exit never depend on the loop:

* a daemon thread (:class:`ParentWatch`) waits on the control fd (a socketpair from Node: the
  kernel closes Node's end when Node dies, so EOF means the parent is gone) and polls
  ``getppid()``; it asks the loop for a graceful stop and, whatever the loop does, exits the
  process itself at the deadline (``on_death`` does both);
* ``PR_SET_PDEATHSIG`` (Linux only) sends SIGTERM when the parent dies, for workers started
  without a control fd whose loop is free.

The portable path (control fd EOF and ``getppid`` polling, no ``prctl``) is what macOS gets;
``PROCGRPC_PORTABLE=1`` forces it on Linux, so the tests exercise it.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import threading
import time
from typing import Any, Callable, Dict, Optional

from .platform import portable

__all__ = ["set_parent_death_signal", "write_ready", "ParentWatch"]

_PR_SET_PDEATHSIG = 1
#: How often the watcher thread compares getppid() with the original parent.
POLL_SECONDS = 0.25


def set_parent_death_signal(original_ppid: int) -> bool:
    """Ask Linux to send SIGTERM when the parent dies (nothing on the portable path).

    Returns False when the parent already died before the request took effect
    (getppid() no longer matches ``original_ppid``), which closes the race
    between fork and prctl.
    """
    if not portable():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # Best effort: the control fd and ppid poll still apply.
    return os.getppid() == original_ppid


def write_ready(fd: int, payload: Dict[str, Any]) -> None:
    """Write the single ready line to the control fd (raises OSError if the parent is gone)."""
    data = (json.dumps(payload, separators=(",", ":")) + "\n").encode("utf-8")
    while data:
        written = os.write(fd, data)
        data = data[written:]


class ParentWatch:
    """Calls ``on_death(reason)`` once, from its own daemon thread, when the parent goes away."""

    def __init__(self, on_death: Callable[[str], None], control_fd: Optional[int], original_ppid: int,
                 poll_seconds: float = POLL_SECONDS) -> None:
        self._on_death = on_death
        self._fd = control_fd
        self._ppid = original_ppid
        self._poll = poll_seconds
        self._thread: Optional[threading.Thread] = None
        self._fired = threading.Event()

    @property
    def fired(self) -> bool:
        """Whether the parent's death was detected."""
        return self._fired.is_set()

    def start(self) -> None:
        """Begin watching in a daemon thread (it lives until the process exits)."""
        self._thread = threading.Thread(target=self._run, name="procgrpc-parent-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reason = self._wait_for_death()
        self._fired.set()
        self._on_death(reason)

    def _wait_for_death(self) -> str:
        fd = self._fd
        while True:
            if os.getppid() != self._ppid:
                return "parent process changed"
            if fd is None:
                time.sleep(self._poll)
                continue
            try:
                readable, _, _ = select.select([fd], [], [], self._poll)
                if not readable:
                    continue
                data = os.read(fd, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except (OSError, ValueError) as exc:
                return f"control fd error: {exc}"
            if not data:
                return "control fd closed"
            # Any bytes the parent sends are reserved for future use and ignored.
