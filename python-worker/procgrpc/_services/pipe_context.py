"""The servicer context of one call carried on the pipeline stream (``_services.pipeline``)."""

from __future__ import annotations

import time
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

import grpc

from . import _pipeline_pb2 as pb

__all__ = ["PipeContext", "entries"]

_OK = grpc.StatusCode.OK


def entries(metadata: Sequence[Tuple[str, Any]]) -> List[Any]:
    """grpc metadata pairs as ``MetadataEntry`` messages (text values as UTF-8)."""
    out = []
    for key, value in metadata:
        out.append(pb.MetadataEntry(key=key, value=value if isinstance(value, bytes) else str(value).encode()))
    return out


class PipeContext:
    """A ``grpc.aio.ServicerContext`` for one call carried on the pipeline stream.

    It records the status, details and metadata the servicer sets; ``abort`` records and
    raises grpc's own ``AbortError`` so the wrapper and the server treat it as a real abort.
    """

    __slots__ = ("_metadata", "_deadline", "_code", "_details", "_trailing", "_initial", "_aborted")

    def __init__(self, metadata: Tuple[Tuple[str, Any], ...], deadline: Optional[float]) -> None:
        self._metadata = metadata
        self._deadline = deadline
        self._code: Optional[grpc.StatusCode] = None
        self._details: Optional[str] = None
        self._trailing: Tuple[Tuple[str, Any], ...] = ()
        self._initial: Tuple[Tuple[str, Any], ...] = ()
        self._aborted = False

    def invocation_metadata(self) -> Tuple[Tuple[str, Any], ...]:
        """Metadata the client sent."""
        return self._metadata

    def time_remaining(self) -> Optional[float]:
        """Seconds until the deadline, or None without one."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def set_code(self, code: grpc.StatusCode) -> None:
        """Set the status code sent when the method returns."""
        self._code = code

    def code(self) -> Optional[grpc.StatusCode]:
        """Status code set so far."""
        return self._code

    def set_details(self, details: str) -> None:
        """Set the status message sent when the method returns."""
        self._details = details

    def details(self) -> Optional[str]:
        """Status message set so far."""
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        """Set trailing metadata sent with the status."""
        self._trailing = tuple(trailing_metadata or ())

    def trailing_metadata(self) -> Tuple[Tuple[str, Any], ...]:
        """Trailing metadata set so far."""
        return self._trailing

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        """Initial metadata goes out with the call's single response."""
        self._initial = tuple(initial_metadata or ())

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        """Record the status and end the method, as grpc's abort does."""
        if self._aborted:
            raise grpc.aio.AbortError("abort() called twice")
        self._aborted = True
        self._code = code
        self._details = details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    async def abort_with_status(self, status: Any) -> NoReturn:
        """Abort with a ``grpc.Status``."""
        await self.abort(status.code, status.details, status.trailing_metadata)

    def peer(self) -> str:
        """The pool, on the worker's Unix socket."""
        return "unix:pipeline"

    def peer_identities(self) -> None:
        """No authenticated identities on a local socket."""
        return None

    def peer_identity_key(self) -> None:
        """No authenticated identities on a local socket."""
        return None

    def auth_context(self) -> Dict[str, Any]:
        """No auth context on a local socket."""
        return {}

    def set_compression(self, compression: Any) -> None:
        """Compression is not used on the pipeline."""

    def disable_next_message_compression(self) -> None:
        """Compression is not used on the pipeline."""

    def result(self, call_id: int, payload: bytes) -> Any:
        """The PipeResult for a method that returned normally."""
        code = self._code if self._code is not None else _OK
        if code is _OK:
            return pb.PipeResult(call_id=call_id, payload=payload,
                                 trailing_metadata=entries(self._trailing), initial_metadata=entries(self._initial))
        return self.status_result(call_id)

    def status_result(self, call_id: int) -> Any:
        """The PipeResult carrying the status the servicer set or aborted with."""
        code = self._code if self._code is not None else grpc.StatusCode.UNKNOWN
        return pb.PipeResult(call_id=call_id, code=code.value[0], details=self._details or "",
                             trailing_metadata=entries(self._trailing), initial_metadata=entries(self._initial))
