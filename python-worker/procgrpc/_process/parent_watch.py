"""Detecting that the process that started the worker has died.

Three layers, because orphaned workers are the failure mode that hurts most:
the control fd (a socketpair from Node: EOF means the parent is gone), a
getppid() poll when there is no control fd, and PR_SET_PDEATHSIG on Linux.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
from typing import Any, Callable, Dict, Optional

__all__ = ["set_parent_death_signal", "write_ready", "ParentWatch"]

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(original_ppid: int) -> bool:
    """Ask Linux to send SIGTERM when the parent dies.

    Returns False when the parent already died before the request took effect
    (getppid() no longer matches ``original_ppid``), which closes the race
    between fork and prctl.
    """
    if sys.platform.startswith("linux"):
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
    """Calls ``on_death(reason)`` once when the parent goes away."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_death: Callable[[str], None],
                 control_fd: Optional[int], original_ppid: int) -> None:
        self._loop = loop
        self._on_death = on_death
        self._fd = control_fd
        self._ppid = original_ppid
        self._fired = False
        self._poll: Optional[asyncio.TimerHandle] = None

    def start(self) -> None:
        """Begin watching (control fd reader, or a 0.5 s getppid poll)."""
        if self._fd is not None:
            # Non-blocking so a spurious wakeup can never stall the event loop in read().
            os.set_blocking(self._fd, False)
            self._loop.add_reader(self._fd, self._on_readable)
        else:
            self._schedule_poll()

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        if self._fd is not None:
            try:
                self._loop.remove_reader(self._fd)
            except (ValueError, OSError):
                pass
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def _fire(self, reason: str) -> None:
        if self._fired:
            return
        self._fired = True
        self.stop()
        self._on_death(reason)

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fire(f"control fd error: {exc}")
            return
        if not data:
            self._fire("control fd closed")
        # Any bytes the parent sends are reserved for future use and ignored.

    def _schedule_poll(self) -> None:
        self._poll = self._loop.call_later(0.5, self._check_ppid)

    def _check_ppid(self) -> None:
        if os.getppid() != self._ppid:
            self._fire("parent process changed")
        else:
            self._schedule_poll()
