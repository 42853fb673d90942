"""Status codes in every form grpcio accepts.

grpc.aio takes a ``grpc.StatusCode`` or a plain ``int`` wherever a servicer gives a code
(``set_code``, ``abort``, ``abort_with_status``): ``get_status_code`` in grpcio's
``_cygrpc/aio/common.pyx.pxi`` turns an int from 0 to 16 into that code, any other int into
UNKNOWN, and anything else into its ``.value[0]`` (UNKNOWN when it has none). ``code()`` then
returns what the servicer passed, unconverted. procgrpc's own paths (the pipeline transport,
exception mapping) coerce the same way, so both transports answer alike.
"""

from __future__ import annotations

from typing import Dict

import grpc

__all__ = ["status_code", "SERVER_FAILURES", "WORKER_STOPPING_CODE", "WORKER_STOPPING_DETAILS", "WORKER_STOPPING_TRAILER"]

_BY_NUMBER: Dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}

#: Codes that say the server failed (not that the caller asked for something wrong): an
#: uncaught exception mapped to one of these does not show its text to the caller.
SERVER_FAILURES = frozenset({
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
})


def status_code(code: object) -> grpc.StatusCode:
    """``code`` as a ``grpc.StatusCode``, converted as grpc.aio converts it (UNKNOWN when unusable)."""
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # bool included, as in grpcio
        return _BY_NUMBER.get(int(code), grpc.StatusCode.UNKNOWN)
    try:
        number = code.value[0]  # type: ignore[attr-defined]
    except (KeyError, AttributeError, IndexError, TypeError):
        return grpc.StatusCode.UNKNOWN
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN) if isinstance(number, int) else grpc.StatusCode.UNKNOWN


#: How a worker that stops with calls still running ends them (after its drain grace), on every
#: transport: the pool recognises the trailer and classifies the failure as a lost connection
#: to a worker the call reached (docs/worker-protocol.md).
WORKER_STOPPING_CODE = grpc.StatusCode.UNAVAILABLE
WORKER_STOPPING_DETAILS = "worker is shutting down"
WORKER_STOPPING_TRAILER = ("procgrpc-worker-stopping", "1")
