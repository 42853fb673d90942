"""Stream calls through the shared-memory lane (issue 15; docs/shared-memory-lane.md, "Streams").

A pool with the lane sends its stream calls to the alias ``/procgrpc.internal.v1.Lane/<service>/<method>``
of each method. The alias serves the method's own (wrapped) handler; only its responses differ:
each is a *lane frame*, one tag byte then the message itself (``0x00``, inline) or an encoded
``LaneRef`` (``0x01``: the message is in a lane file, read and removed by the pool). Requests are
the method's own messages: measured, stream requests through lane files cost more CPU than
inline, large responses less (docs/benchmarks.md, "Stream messages through the shared-memory lane").

The worker writes a response as a lane file when it is at least the threshold and the files this
call wrote that nobody has opened yet stay under :data:`STREAM_OUTSTANDING_BYTES`; otherwise it
goes inline, where HTTP/2 flow control holds the producer back. When the call is cancelled its
unread files are removed; when it ends otherwise the client still reads them (they are removed
when the worker exits, at the latest).
"""

from __future__ import annotations

import contextvars
import os
from typing import Any, Callable, List, Optional, Tuple

import grpc

from .._handlers.cancel_hooks import when_cancelled
from .._shm import LaneError, LaneReference
from .lane import PipeLane

__all__ = ["LANE_STREAM_PREFIX", "STREAM_OUTSTANDING_BYTES", "handler"]

#: The alias prefix of stream methods for a pool with the lane.
LANE_STREAM_PREFIX = "/procgrpc.internal.v1.Lane"
#: Lane bytes one stream's responses may have outstanding (written, not yet opened by the client).
STREAM_OUTSTANDING_BYTES = 8 * 1024 * 1024

_INLINE = 0
_REFERENCE = 1
_INLINE_TAG = bytes([_INLINE])
_REFERENCE_TAG = bytes([_REFERENCE])

# The response files of the call running in this task: the serializer runs in the call's task,
# so each call (its own task, its own context) sees only its own.
_call_files: contextvars.ContextVar[Optional["_ResponseFiles"]] = contextvars.ContextVar("procgrpc_lane_stream_files",
                                                                                          default=None)


class _ResponseFiles:
    """The lane files one stream call's responses were written to."""

    __slots__ = ("_lane", "_written")

    def __init__(self, lane: PipeLane) -> None:
        self._lane = lane
        self._written: List[LaneReference] = []

    def frame(self, message: bytes) -> bytes:
        if len(message) >= self._lane.threshold:
            outstanding = self._outstanding()
            if outstanding == 0 or outstanding + len(message) <= STREAM_OUTSTANDING_BYTES:
                ref = self._lane.response_ref(message)
                if ref is not None:
                    self._written.append(LaneReference(ref.name, ref.length, ref.nonce))
                    encoded: bytes = ref.SerializeToString()
                    return _REFERENCE_TAG + encoded
        return _INLINE_TAG + message

    def discard_unread(self) -> None:
        for ref in self._written:
            try:
                self._lane.lane.discard(ref)
            except LaneError:
                pass
        self._written = []

    def _outstanding(self) -> int:
        directory = self._lane.lane.directory
        self._written = [ref for ref in self._written if os.path.exists(os.path.join(directory, ref.name))]
        return sum(ref.length for ref in self._written)


def _serializer(lane: Optional[PipeLane], inner: Optional[Callable[[Any], bytes]]) -> Callable[[Any], bytes]:
    def serialize(response: Any) -> bytes:
        message = inner(response) if inner is not None else response
        if lane is None or len(message) < lane.threshold:
            return _INLINE_TAG + message  # small: no per-call bookkeeping
        files = _call_files.get()
        if files is None:
            files = _ResponseFiles(lane)
            _call_files.set(files)
            when_cancelled(files.discard_unread)  # the client will not read them
        return files.frame(message)
    return serialize


class _LaneStreams(grpc.GenericRpcHandler):
    def __init__(self, lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any], lane: Optional[PipeLane]) -> None:
        self._lookup = lookup
        self._lane = lane

    def service(self, details: Any) -> Any:
        path: str = details.method
        if not path.startswith(LANE_STREAM_PREFIX + "/"):
            return None
        inner = self._lookup(path[len(LANE_STREAM_PREFIX):], tuple(details.invocation_metadata or ()))
        if inner is None or not (inner.request_streaming or inner.response_streaming):
            return None  # UNIMPLEMENTED, as for any unknown method
        des = inner.request_deserializer  # requests are the method's own messages
        ser = _serializer(self._lane, inner.response_serializer)
        if inner.request_streaming and inner.response_streaming:
            return grpc.stream_stream_rpc_method_handler(inner.stream_stream, request_deserializer=des, response_serializer=ser)
        if inner.response_streaming:
            return grpc.unary_stream_rpc_method_handler(inner.unary_stream, request_deserializer=des, response_serializer=ser)
        return grpc.stream_unary_rpc_method_handler(inner.stream_unary, request_deserializer=des, response_serializer=ser)


def handler(lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any], lane: Optional[PipeLane]) -> grpc.GenericRpcHandler:
    """The generic handler of the lane aliases of every stream method ``lookup`` finds."""
    return _LaneStreams(lookup, lane)
