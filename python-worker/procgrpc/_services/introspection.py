"""``procgrpc.internal.v1.Worker/Running``: which handlers are still executing in this worker.

grpc-js ends a cancelled call on the Node side at once, but a ``def`` handler that ignores
cancellation keeps its pool thread. The pool asks this method, after a call's deadline and the
pool's ``cancelGraceMs``, whether the handler is still running; if it is, the worker is replaced.
Request ``google.protobuf.Empty``; response ``google.protobuf.Struct``::

    {"pid": 123, "running": [{"callId": "...", "requestId": "...", "method": "/pkg.S/M", "seconds": 1.5}]}

``callId`` is the call's ``procgrpc-call-id`` metadata, unique per attempt (the pool sets it on
every call, overriding any value of the caller's): the watchdog matches by it, since request ids
may be shared by concurrent calls. A handler whose call carried none is listed with ``""``.
Unary handlers are listed while their code runs (a ``def`` one from the moment a pool thread
picks it up), streaming ones while their call is open. It is internal (not in reflection) and
not counted as a servicer call.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2

from .._handlers.in_flight import RunningHandlers

__all__ = ["SERVICE_NAME", "handler"]

SERVICE_NAME = "procgrpc.internal.v1.Worker"


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
