"""The deadlines of a pipe's running calls behind one event-loop timer (``_services.pipeline``).

A call that finishes without suspending needs no deadline timer at all; the others are kept in a
heap, and one ``call_later`` is armed for the earliest. A finished call is only forgotten
(``discard``); its entry is dropped when it reaches the top, and the heap is rebuilt when stale
entries outnumber live ones, so it stays as large as the calls in flight.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["Deadlines"]


class Deadlines:
    """Calls ``expire(call_id)`` once the loop time passes a call's deadline, unless the call
    was discarded first."""

    __slots__ = ("_expire", "_heap", "_live", "_timer", "_armed_at")

    def __init__(self, expire: Callable[[int], None]) -> None:
        self._expire = expire
        self._heap: List[Tuple[float, int]] = []
        self._live: Dict[int, float] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._armed_at = float("inf")

    def add(self, call_id: int, when: float) -> None:
        """Expire ``call_id`` at ``when`` (``time.monotonic()`` seconds)."""
        self._live[call_id] = when
        heapq.heappush(self._heap, (when, call_id))
        if when < self._armed_at:
            self._arm()

    def discard(self, call_id: int) -> None:
        """The call ended: forget its deadline. The last call's end drops every entry but leaves
        the timer armed: the next call's deadline is usually later, so calls one after another
        need no ``call_later`` and ``cancel`` each; the timer then fires once on nothing."""
        if self._live.pop(call_id, None) is None:
            return
        if not self._live:
            self._heap = []
        elif len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [(when, cid) for cid, when in self._live.items()]
            heapq.heapify(self._heap)

    def clear(self) -> None:
        """Forget every deadline and stop the timer."""
        self._live.clear()
        self._heap = []
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed_at = float("inf")

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_at = float("inf")
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if heap:
            self._armed_at = heap[0][0]
            delay = max(0.0, self._armed_at - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed_at = float("inf")
        now = time.monotonic()
        heap, live = self._heap, self._live
        due = []
        while heap and heap[0][0] <= now:
            when, call_id = heapq.heappop(heap)
            if live.get(call_id) == when:
                del live[call_id]
                due.append(call_id)
        self._arm()
        for call_id in due:
            self._expire(call_id)
