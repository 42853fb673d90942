"""Turning an exception raised by a servicer method into a gRPC status (docs/errors.md)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import traceback
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # type: ignore[import-untyped]

from .. import errors
from .codes import SERVER_FAILURES, status_code

__all__ = ["DEFAULT_MAPPING", "ExceptionMapper", "hidden_message"]

#: Built-in mapping. Lookup walks the exception's MRO, so the most specific
#: class wins (PermissionError before any OSError entry, etc.).
DEFAULT_MAPPING: Dict[Type[BaseException], grpc.StatusCode] = {
    ValueError: grpc.StatusCode.INVALID_ARGUMENT,
    LookupError: grpc.StatusCode.NOT_FOUND,
    PermissionError: grpc.StatusCode.PERMISSION_DENIED,
    NotImplementedError: grpc.StatusCode.UNIMPLEMENTED,
    TimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    # Distinct from TimeoutError before Python 3.11.
    asyncio.TimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    concurrent.futures.TimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    ConnectionError: grpc.StatusCode.UNAVAILABLE,
    MemoryError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def hidden_message(exception_name: str, request_id: Optional[str]) -> str:
    """What the caller sees instead of the text of an exception that is a server-side failure."""
    if request_id:
        return f"{exception_name} (request id {request_id}; details in the worker log)"
    return f"{exception_name} (details in the worker log)"


class ExceptionMapper:
    """Maps an exception to a status.

    ``RpcStatusError`` carries its own code; other exceptions are looked up in
    the user's entries first, then the built-in table, else UNKNOWN.

    The text of an exception raised by accident can hold internals (file paths, hosts, data),
    so when it maps to a server-side failure (``_status.codes.SERVER_FAILURES``: UNKNOWN,
    INTERNAL, DATA_LOSS, UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNIMPLEMENTED) the
    caller gets only the exception's class and the request id (the worker logs the rest), unless
    debug mode is on (``PROCGRPC_DEBUG=1``). Client-error mappings (``ValueError`` →
    INVALID_ARGUMENT, …) and ``procgrpc.errors`` classes pass their message through.
    """

    def __init__(self, extra: Optional[Mapping[Type[BaseException], grpc.StatusCode]] = None,
                 debug: Optional[bool] = None) -> None:
        self._user: Dict[Type[BaseException], grpc.StatusCode] = dict(extra or {})
        for key, code in self._user.items():
            if not (isinstance(key, type) and issubclass(key, BaseException)):
                raise TypeError(f"exception_mapping key {key!r} is not an exception class")
            if not isinstance(code, grpc.StatusCode) or code == grpc.StatusCode.OK:
                raise TypeError(f"exception_mapping[{key.__name__}] must be a non-OK grpc.StatusCode")
        self.debug = os.environ.get("PROCGRPC_DEBUG") == "1" if debug is None else debug

    def code_for(self, exc: BaseException) -> Optional[grpc.StatusCode]:
        """The mapped code, or None when nothing matches (the caller then uses UNKNOWN)."""
        mro = type(exc).__mro__
        for table in (self._user, DEFAULT_MAPPING):
            if table:
                for cls in mro:
                    code = table.get(cls)
                    if code is not None:
                        return code
        return None

    def status_for(self, exc: BaseException, method: str, fallback: Any = None,
                   request_id: Optional[str] = None) -> Any:
        """Build the ``grpc.Status`` for ``exc`` raised by ``method`` in the call ``request_id``.

        ``fallback`` is a code already set with ``context.set_code`` (a ``grpc.StatusCode`` or
        an int, as grpcio accepts); it is used instead of UNKNOWN for exceptions nothing maps.
        """
        name = type(exc).__name__
        details: List[Message] = []
        trailing: Tuple[Any, ...] = ()
        if isinstance(exc, errors.RpcStatusError):
            # Raised on purpose with a code: it always wins over the tables.
            code = exc.code
            message = exc.message
            details.extend(exc.details)
            trailing = exc.trailing_metadata
        else:
            mapped = self.code_for(exc)
            if mapped is not None:
                code = mapped
                message = str(exc)
            else:
                # A code set with set_code, in any form grpcio takes (enum or int), else UNKNOWN.
                code = grpc.StatusCode.UNKNOWN if fallback is None else status_code(fallback)
                message = f"{name}: {exc}"
            if code == grpc.StatusCode.OK:
                code = grpc.StatusCode.UNKNOWN
            if code in SERVER_FAILURES and not self.debug:
                message = hidden_message(name, request_id)
        if code == grpc.StatusCode.OK:  # e.g. RpcStatusError(OK, ...): not an error status.
            code = grpc.StatusCode.UNKNOWN
        # One ErrorInfo per status (AIP-193): keep the user's when they sent one.
        if not any(isinstance(d, error_details_pb2.ErrorInfo) for d in details):
            details.insert(0, errors.error_info(name, "python", {"method": method}))
        if self.debug:
            details.append(errors.debug_info(
                traceback.format_exception(type(exc), exc, exc.__traceback__), f"{name}: {exc}"))
        return errors.build_status(code, message, details, trailing)
