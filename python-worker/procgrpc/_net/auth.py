"""Bearer-token authentication: a server interceptor (docs/scaling.md).

Every call must carry ``authorization: Bearer <token>``; the comparison is
constant-time (``hmac.compare_digest``). grpc.health.v1 is exempt so that
load balancers, grpc-js client-side health checking and Kubernetes ``grpc:``
probes (which cannot send metadata) see the worker's status; the status says
nothing secret. A refused call ends with UNAUTHENTICATED before the servicer
runs, whatever the method's streaming kind, and before the method is even looked up: without
a token an unknown method is refused just like an existing one, so the method names cannot be
probed.
"""

from __future__ import annotations

import hmac
from typing import Any, Awaitable, Callable, Optional

import grpc

from .._process.log import get_logger

__all__ = ["TokenInterceptor", "EXEMPT_PREFIX"]

#: Methods under this prefix need no token.
EXEMPT_PREFIX = "/grpc.health.v1.Health/"

_log = get_logger()


def _presented_token(metadata: Any) -> Optional[bytes]:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            scheme, _, credential = text.partition(" ")
            if scheme.lower() != "bearer":
                return b""  # present, but not a bearer token: refused as invalid
            return credential.strip().encode("utf-8")
    return None


def _deny_handler(message: str) -> "grpc.RpcMethodHandler[Any, Any]":
    """A handler that only aborts. Stream-stream fits a call of any kind: it reads nothing, and
    on the wire an abort before any message looks the same for every kind."""
    async def deny(_requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.stream_stream_rpc_method_handler(deny)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls whose bearer token is missing or wrong with UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Optional["grpc.RpcMethodHandler[Any, Any]"]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Optional["grpc.RpcMethodHandler[Any, Any]"]:
        """Passes the call on when its token matches (or it is a health check), else denies it
        without looking the method up."""
        method = str(handler_call_details.method)
        if method.startswith(EXEMPT_PREFIX):
            return await continuation(handler_call_details)
        presented = _presented_token(handler_call_details.invocation_metadata)
        if presented is not None and hmac.compare_digest(presented, self._token):
            return await continuation(handler_call_details)
        reason = "missing" if presented is None else "wrong"
        _log.warn("call refused: bearer token " + reason, method=method)
        message = ("missing bearer token: send metadata 'authorization: Bearer <token>' (RemotePool option `token`)"
                   if presented is None else "invalid bearer token")
        return _deny_handler(message)
