"""The servicer context of one call carried on the pipeline stream (``_services.pipeline``).

It behaves as grpc.aio's own ``_ServicerContext`` does (``_cygrpc/aio/server.pyx.pxi``), where a
servicer can tell: codes as ``grpc.StatusCode`` or int, ``code()`` returning what was set,
``details()`` starting as ``""``, ``abort`` sending the status at once and raising
``AbortError`` (a second ``abort`` raises ``UsageError``), ``send_initial_metadata`` sending the
headers at once (a second one raises ``UsageError``). A call is answered exactly once: the first
answer (a result, an abort, a deadline, a stopping worker) wins, later ones are dropped.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

import grpc

from .._status.codes import status_code
from . import _pipeline_pb2 as pb

__all__ = ["PipeContext", "CallSlot", "Outbox", "entries", "invocation_metadata"]

_OK = grpc.StatusCode.OK

#: The metadata keys a ``PipeCall`` carries as plain fields (``request_id``, ``attempt_id``).
_REQUEST_ID_KEY = "x-request-id"
_ATTEMPT_ID_KEY = "procgrpc-call-id"


def invocation_metadata(call: Any) -> Tuple[Tuple[str, Any], ...]:
    """A ``PipeCall``'s metadata as grpc gives it: the entries, then the request id and attempt
    id the pool sent as fields (it sends them as fields only when they came last, in this order)."""
    metadata: Tuple[Tuple[str, Any], ...] = ()
    if call.metadata:
        metadata = tuple((e.key, e.value if e.key.endswith("-bin") else e.value.decode("utf-8", "replace"))
                         for e in call.metadata)
    if call.request_id:
        metadata += ((_REQUEST_ID_KEY, call.request_id),)
    if call.attempt_id:
        metadata += ((_ATTEMPT_ID_KEY, call.attempt_id),)
    return metadata


def entries(metadata: Sequence[Tuple[str, Any]]) -> List[Any]:
    """grpc metadata pairs as ``MetadataEntry`` messages (text values as UTF-8)."""
    out = []
    for key, value in metadata:
        out.append(pb.MetadataEntry(key=key, value=value if isinstance(value, bytes) else str(value).encode()))
    return out


def _fill(field: Any, metadata: Sequence[Tuple[str, Any]]) -> None:
    """Append grpc metadata pairs to a repeated ``MetadataEntry`` field, in place."""
    for key, value in metadata:
        field.add(key=key, value=value if isinstance(value, bytes) else str(value).encode())


class Outbox:
    """The next ``PipeResponse`` of a pipe, built in place: answers are added straight into its
    repeated fields (no ``PipeResult`` per call for the response to copy), and the pipe's writer
    takes the whole message when it writes."""

    __slots__ = ("response", "_wake", "_results", "_entries")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.response = pb.PipeResponse()
        self._wake = wake
        # Counted here: the length of a repeated field costs more than an int (once per answer).
        self._results = 0
        self._entries = 0

    def result(self) -> Any:
        """A new, empty ``PipeResult`` in the next response (the writer is woken)."""
        self._wake()
        self._results += 1
        self._entries += 1
        return self.response.results.add()

    def header(self) -> Any:
        """A new, empty ``PipeHeader`` in the next response (the writer is woken)."""
        self._wake()
        self._entries += 1
        return self.response.headers.add()

    def __bool__(self) -> bool:
        return self._entries > 0

    def size(self) -> int:
        """The answers in the next response."""
        return self._results

    def take(self) -> Any:
        """The response built so far; the next answers go into a new one."""
        response, self.response = self.response, pb.PipeResponse()
        self._results = self._entries = 0
        return response


class CallSlot:
    """One call on one pipe: answered at most once, through the pipe's batch writer."""

    __slots__ = ("call_id", "answered", "expired", "cancelled", "_outbox")

    def __init__(self, call_id: int, outbox: Outbox) -> None:
        self.call_id = call_id
        self.answered = False
        #: Set when the caller cancelled the call.
        self.cancelled = False
        #: Set when the call's deadline cancelled it (the pipe then answers DEADLINE_EXCEEDED).
        self.expired = False
        self._outbox = outbox

    def ok(self, payload: bytes, trailing: Sequence[Tuple[str, Any]] = (), initial: Sequence[Tuple[str, Any]] = (),
           payload_ref: Optional[Any] = None) -> None:
        """Answer with the response ``payload`` (serialized) unless the call was already
        answered or given up; with ``payload_ref`` (a ``LaneRef``) the response is a lane file."""
        if self.answered:
            return
        self.answered = True
        result = self._outbox.result()
        result.call_id = self.call_id
        result.payload = payload
        if payload_ref is not None:
            result.payload_ref.CopyFrom(payload_ref)
        if trailing:
            _fill(result.trailing_metadata, trailing)
        if initial:
            _fill(result.initial_metadata, initial)

    def give_up(self) -> None:
        """The caller cancelled: it expects no answer, and none will be sent."""
        self.answered = True
        self.cancelled = True

    def status(self, code: grpc.StatusCode, details: str, trailing: Sequence[Tuple[str, Any]] = (),
               initial: Sequence[Tuple[str, Any]] = ()) -> None:
        """Answer with a status (unless already answered or given up)."""
        if self.answered:
            return
        self.answered = True
        result = self._outbox.result()
        result.call_id = self.call_id
        result.code = code.value[0]
        result.details = details
        if trailing:
            _fill(result.trailing_metadata, trailing)
        if initial:
            _fill(result.initial_metadata, initial)

    def header(self, metadata: Sequence[Tuple[str, Any]]) -> None:
        """Send the call's initial metadata now (a PipeHeader)."""
        header = self._outbox.header()
        header.call_id = self.call_id
        _fill(header.metadata, metadata)


class PipeContext:
    """A ``grpc.aio.ServicerContext`` for one call carried on the pipeline stream."""

    __slots__ = ("_slot", "_call", "_metadata", "_deadline", "_code", "_details", "_trailing", "_initial",
                 "_headers_sent", "_abort")

    def __init__(self, slot: CallSlot, call: Any, deadline: Optional[float]) -> None:
        self._slot = slot
        self._call = call
        # Built on first use: most servicers never read their metadata (``invocation_metadata``).
        self._metadata: Optional[Tuple[Tuple[str, Any], ...]] = None
        self._deadline = deadline
        self._code: Any = None
        self._details = ""
        self._trailing: Tuple[Tuple[str, Any], ...] = ()
        self._initial: Tuple[Tuple[str, Any], ...] = ()
        self._headers_sent = False
        self._abort: Optional[grpc.aio.AbortError] = None

    def invocation_metadata(self) -> Tuple[Tuple[str, Any], ...]:
        """Metadata the client sent."""
        if self._metadata is None:
            self._metadata = invocation_metadata(self._call)
        return self._metadata

    def procgrpc_call_identity(self) -> Optional[Tuple[Optional[str], Optional[str]]]:
        """The call's request id and attempt id when its metadata holds nothing else (they came
        as fields), for ``_handlers.scope.CallScope``: a call without other metadata is then
        served without its metadata ever being built. None: read ``invocation_metadata()``."""
        call = self._call
        if call.metadata:
            return None
        return call.request_id or None, call.attempt_id or None

    def time_remaining(self) -> Optional[float]:
        """Seconds until the deadline, or None without one."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        """True once the caller cancelled the call or its deadline passed (as in grpc.aio)."""
        return self._slot.cancelled or self._slot.expired

    def done(self) -> bool:
        """True once the call was answered, aborted or cancelled."""
        return self._slot.answered or self._slot.expired

    def set_code(self, code: Any) -> None:
        """Set the status code sent when the method returns (a ``grpc.StatusCode`` or an int)."""
        self._code = status_code(code) if isinstance(code, int) else code

    def code(self) -> Any:
        """Status code set so far (None when none was; an int given is a ``grpc.StatusCode``)."""
        return self._code

    def set_details(self, details: str) -> None:
        """Set the status message sent when the method returns."""
        self._details = details

    def details(self) -> str:
        """Status message set so far."""
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        """Set trailing metadata sent with the status."""
        self._trailing = tuple(trailing_metadata or ())

    def trailing_metadata(self) -> Tuple[Tuple[str, Any], ...]:
        """Trailing metadata set so far."""
        return self._trailing

    def _raise_if_finished(self) -> None:
        if self._abort is not None:
            raise self._abort
        if self._slot.answered:
            raise grpc.aio.UsageError("RPC already finished.")

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        """Send initial metadata now, before the result (once per call, as in grpc.aio)."""
        self._raise_if_finished()
        if self._headers_sent:
            raise grpc.aio.UsageError("Send initial metadata failed: already sent")
        self._initial = tuple(initial_metadata or ())
        self._headers_sent = True
        self._slot.header(self._initial)

    async def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        """Send the status now and end the method with grpc's own ``AbortError``."""
        if self._abort is not None:
            raise grpc.aio.UsageError("Abort already called!")
        self._abort = grpc.aio.AbortError("Locally aborted.")
        # As grpc.aio: empty arguments keep what set_trailing_metadata / set_details set.
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        if details:
            self._details = details
        self._code = status_code(code) if isinstance(code, int) else code
        self.answer_status()
        raise self._abort

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

    def answer(self, payload: bytes, lane: Optional[Any] = None) -> None:
        """The method returned: answer with its response, or with the status it set. With the
        shared-memory lane (``_services.lane.PipeLane``), a large response goes as a lane file."""
        code = _OK if self._code is None else status_code(self._code)
        if code is _OK:
            ref = lane.response_ref(payload) if lane is not None and not self._slot.answered else None
            self._slot.ok(b"" if ref is not None else payload, self._trailing, self._initial, ref)
        else:
            self._slot.status(code, self._details, self._trailing, self._initial)

    def answer_status(self) -> None:
        """Answer with the status set or aborted with (UNKNOWN when none was)."""
        code = grpc.StatusCode.UNKNOWN if self._code is None else status_code(self._code)
        self._slot.status(code, self._details, self._trailing, self._initial)
