"""Servicer-controlled health: ``procgrpc.set_serving(False)`` takes this worker out of rotation.

The Node pool checks every worker with grpc.health.v1 ``Check``; a worker that answers
NOT_SERVING gets no new calls until it answers SERVING again (and is replaced if it stays
NOT_SERVING longer than the pool's ``replaceUnhealthyAfterMs``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List, Optional

from grpc_health.v1 import health_pb2

__all__ = ["set_serving"]

# How long a servicer thread waits for the event loop to apply the new status.
_APPLY_TIMEOUT_SECONDS = 5.0


class _Health:
    __slots__ = ("loop", "servicer", "names")

    def __init__(self, loop: asyncio.AbstractEventLoop, servicer: Any, names: List[str]) -> None:
        self.loop = loop
        self.servicer = servicer
        self.names = names


_current: Optional[_Health] = None
_lock = threading.Lock()


def _install(loop: asyncio.AbstractEventLoop, servicer: Any, names: List[str]) -> None:
    """Called by ``run_worker`` once the server is SERVING."""
    global _current
    with _lock:
        _current = _Health(loop, servicer, [""] + list(names))


def _uninstall() -> None:
    global _current
    with _lock:
        _current = None


def set_serving(serving: bool) -> None:
    """Report this worker as SERVING (``True``) or NOT_SERVING (``False``) over grpc.health.v1.

    Call it from any servicer method, ``def`` or ``async def``, e.g. when a model is reloading
    or a dependency is down. It applies to the whole server and every registered service. From a
    ``def`` method (a pool thread) the change is applied before the function returns; from the
    event loop it is applied before the next health check is answered. Once the worker is
    stopping it stays NOT_SERVING whatever is set.

    Raises ``RuntimeError`` outside a running procgrpc worker.
    """
    with _lock:
        current = _current
    if current is None:
        raise RuntimeError("procgrpc.set_serving() works only inside a running procgrpc worker (run_worker)")
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING

    async def apply() -> None:
        for name in current.names:
            await current.servicer.set(name, status)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is current.loop:
        current.loop.create_task(apply())
    else:
        asyncio.run_coroutine_threadsafe(apply(), current.loop).result(_APPLY_TIMEOUT_SECONDS)
