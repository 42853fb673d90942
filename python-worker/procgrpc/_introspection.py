"""``procgrpc.internal.v1.Worker/Running``: which handlers are still executing in this worker.

grpc-js ends a cancelled call on the Node side at once, but a ``def`` handler that ignores
cancellation keeps its pool thread. The pool asks this method, after a call's deadline and the
pool's ``cancelGraceMs``, whether the handler is still running; if it is, the worker is replaced.
Request ``google.protobuf.Empty``; response ``google.protobuf.Struct``::

    {"pid": 123, "running": [{"requestId": "...", "method": "/pkg.S/M", "seconds": 1.5}]}

It is internal (not in reflection) and not counted as a servicer call.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, Optional, Tuple

import grpc
from google.protobuf import empty_pb2, struct_pb2

__all__ = ["SERVICE_NAME", "RunningHandlers", "handler"]

SERVICE_NAME = "procgrpc.internal.v1.Worker"


class RunningHandlers:
    """Thread-safe registry of servicer handlers that have started and not yet returned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._running: Dict[int, Tuple[str, Optional[str], float]] = {}

    def started(self, method: str, request_id: Optional[str]) -> int:
        """Record a handler starting; returns the token to pass to :meth:`finished`."""
        with self._lock:
            self._next += 1
            self._running[self._next] = (method, request_id, time.monotonic())
            return self._next

    def finished(self, token: int) -> None:
        """Record a handler returning (normally or not)."""
        with self._lock:
            self._running.pop(token, None)

    def snapshot(self) -> Dict[str, Any]:
        """The registry as a JSON-like dict (the ``Running`` response)."""
        now = time.monotonic()
        with self._lock:
            items = list(self._running.values())
        return {
            "pid": os.getpid(),
            "running": [{"requestId": rid or "", "method": method, "seconds": now - since}
                        for method, rid, since in items],
        }


def handler(registry: RunningHandlers) -> grpc.GenericRpcHandler:
    """The generic handler serving ``Running`` from ``registry``."""
    async def running(request: empty_pb2.Empty, context: Any) -> struct_pb2.Struct:
        out = struct_pb2.Struct()
        out.update(registry.snapshot())
        return out

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Running": grpc.unary_unary_rpc_method_handler(
            running,
            request_deserializer=empty_pb2.Empty.FromString,
            response_serializer=struct_pb2.Struct.SerializeToString,
        ),
    })
