"""``procgrpc.internal.v1.KillSwitch/Set``: the pool puts its set of switched-off targets in force.

The pool calls it on every worker whenever a kill switch changes, and on a worker that starts
(or restarts) after a change its environment did not carry yet, before it routes calls there.
Request and response are ``google.protobuf.Struct`` (as ``Worker/Running``)::

    {"targets": ["/pkg.S/Method", "pkg.Other"], "generation": 7}

``targets`` replaces the whole set; ``generation`` grows with every change, and a set older than
the one in force is ignored (the answer then carries the newer one). The answer is the set in
force after the call.

Only the pool that started the worker may call it: the call must carry the metadata
``procgrpc-control-token`` with the secret the pool gave the worker in ``PROCGRPC_CONTROL_TOKEN``
(compared in constant time). A worker without one (started by hand, a remote worker) refuses
every call with PERMISSION_DENIED; a missing or wrong token is UNAUTHENTICATED. So a client that
can reach a published socket can call the worker but cannot switch anything on or off. It is
internal: not in reflection, not counted as a servicer call, never switched off itself.
"""

from __future__ import annotations

import hmac
from typing import Any, Optional

import grpc
from google.protobuf import struct_pb2

from .._handlers.switched_off import SwitchedOff
from .._process.log import get_logger

__all__ = ["SERVICE_NAME", "TOKEN_KEY", "handler"]

SERVICE_NAME = "procgrpc.internal.v1.KillSwitch"
#: The metadata key carrying the pool's control token.
TOKEN_KEY = "procgrpc-control-token"

_log = get_logger()


def _presented(context: Any) -> Optional[str]:
    for key, value in context.invocation_metadata() or ():
        if key == TOKEN_KEY:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def handler(switched_off: SwitchedOff, token: Optional[str]) -> grpc.GenericRpcHandler:
    """The generic handler serving ``Set`` into ``switched_off``, guarded by ``token``."""
    secret = token.encode("utf-8") if token else None

    async def set_switched_off(request: struct_pb2.Struct, context: Any) -> struct_pb2.Struct:
        presented = _presented(context)
        if secret is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                "this worker's kill switches are set only by the pool that started it")
        elif presented is None or not hmac.compare_digest(presented.encode("utf-8"), secret):
            _log.warn("kill switch change refused: control token " + ("missing" if presented is None else "wrong"))
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                f"missing {TOKEN_KEY}" if presented is None else f"invalid {TOKEN_KEY}")
        fields = request.fields
        raw_targets = fields["targets"].list_value.values if "targets" in fields else []
        generation = fields["generation"].number_value if "generation" in fields else -1.0
        if generation < 0 or generation != int(generation):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "generation must be an integer >= 0")
        try:
            targets = [v.string_value if v.HasField("string_value") else _not_a_string(v) for v in raw_targets]
            before = switched_off.targets
            applied = switched_off.replace(targets, int(generation))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if applied and switched_off.targets != before:
            _log.info("kill switches changed", switched_off=list(switched_off.targets),
                      generation=switched_off.generation)
        out = struct_pb2.Struct()
        out.update({"targets": list(switched_off.targets), "generation": switched_off.generation})
        return out

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Set": grpc.unary_unary_rpc_method_handler(
            set_switched_off,
            request_deserializer=struct_pb2.Struct.FromString,
            response_serializer=struct_pb2.Struct.SerializeToString,
        ),
    })


def _not_a_string(value: Any) -> str:
    raise ValueError(f"targets must be strings, got {value}")
