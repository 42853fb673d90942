"""What is running in this worker: the calls inside servicer code, and the handlers still executing.

A stopping worker drains the calls in flight while it still answers health checks (NOT_SERVING)
instead of refusing every new RPC at once. The running handlers are what the pool's hang
watchdog asks for (``procgrpc.internal.v1.Worker/Running``, ``_services.introspection``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any, Dict, Optional, Set, Tuple

from .switched_off import SwitchedOff

__all__ = ["CALL_ID_KEY", "InFlight", "RunningHandlers"]


#: Metadata key of the per-attempt call identity the pool sets on every call (the hang watchdog
#: matches running handlers by it; x-request-id is for correlation only and may repeat).
CALL_ID_KEY = "procgrpc-call-id"


class RunningHandlers:
    """Thread-safe registry of servicer handlers that have started and not yet returned.

    Without a lock: tokens come from an ``itertools.count`` and entries go in and out of a dict,
    each one step that the interpreter does not interleave with another thread's."""

    def __init__(self) -> None:
        self._tokens = itertools.count(1)
        self._running: Dict[int, Tuple[str, Optional[str], Optional[str], float]] = {}

    def started(self, method: str, request_id: Optional[str], call_id: Optional[str] = None) -> int:
        """Record a handler starting; returns the token to pass to :meth:`finished`."""
        token = next(self._tokens)
        self._running[token] = (method, request_id, call_id, time.monotonic())
        return token

    def finished(self, token: int) -> None:
        """Record a handler returning (normally or not)."""
        self._running.pop(token, None)

    def snapshot(self) -> Dict[str, Any]:
        """The registry as a JSON-like dict (the ``Running`` response)."""
        now = time.monotonic()
        items = list(self._running.values())
        return {
            "pid": os.getpid(),
            "running": [{"callId": cid or "", "requestId": rid or "", "method": method, "seconds": now - since}
                        for method, rid, cid, since in items],
        }


class InFlight:
    """Counts calls inside servicer code (on the event loop only) and keeps their scopes, so that
    a worker whose drain grace is over can end them itself; and holds the kill switches that
    keep new calls out of servicer code (one object every wrapped handler of the server shares)."""

    __slots__ = ("count", "_idle", "running", "scopes", "switched_off")

    def __init__(self) -> None:
        self.count = 0
        self._idle: Optional[asyncio.Event] = None
        #: The ``CallScope`` of every call inside servicer code now.
        self.scopes: Set[Any] = set()
        # Unlike ``count``, a handler stays here until its code returns, even after the call
        # was cancelled: the pool's hang watchdog asks for it (procgrpc.internal.v1.Worker).
        self.running = RunningHandlers()
        #: Calls to these methods and services are refused before they enter (``switched_off``).
        self.switched_off = SwitchedOff()

    def enter(self) -> None:
        """A call entered servicer code."""
        self.count += 1

    def leave(self) -> None:
        """A call left servicer code (returned, failed or was cancelled)."""
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def end_all(self) -> int:
        """End every call still inside servicer code with the stopping status (UNAVAILABLE,
        ``procgrpc-worker-stopping: 1``); returns how many were ended."""
        scopes = list(self.scopes)
        for scope in scopes:
            await scope.end_stopping()
        return len(scopes)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight or ``timeout`` seconds pass; True when idle."""
        if self.count == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
