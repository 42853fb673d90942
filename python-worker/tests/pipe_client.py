"""A raw client of ``procgrpc.internal.v1.PipelineService/Pipe`` for the protocol-level tests.

It sends batches (``PipeRequest``) when told to, half-closes when told to, and records every
``PipeResponse`` and the order in which headers and results arrived (within one message,
headers before results, as the protocol says readers handle them).
"""

from __future__ import annotations

import json
import queue
import socket
import struct
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import grpc

from procgrpc._services import _pipeline_pb2 as pb

PIPE = "/procgrpc.internal.v1.PipelineService/Pipe"
HOSTILE = "/procgrpc.test.Hostile/"


def pipe_call(call_id: int, method: str, spec: Dict[str, Any], timeout_s: float = 10.0,
              metadata: Iterable[Tuple[str, Any]] = ()) -> Any:
    """A PipeCall of a Hostile method with a JSON request."""
    entries = [pb.MetadataEntry(key=k, value=v if isinstance(v, bytes) else str(v).encode()) for k, v in metadata]
    return pb.PipeCall(call_id=call_id, method=HOSTILE + method, payload=json.dumps(spec).encode(),
                       timeout_us=max(0, int(timeout_s * 1e6)), metadata=entries)


class _Recorder:
    """What a pipe client saw: every ``PipeResponse``, and headers and results by call id."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.messages: List[Any] = []
        #: ("header" | "result", call_id) in arrival order.
        self.events: List[Tuple[str, int]] = []
        self.results: Dict[int, List[Any]] = {}
        self.headers: Dict[int, List[Any]] = {}
        #: The stream's final code once it ended (OK when the worker ended it normally).
        self.ended: Optional[grpc.StatusCode] = None

    def _record(self, message: Any) -> None:
        with self._cond:
            self.messages.append(message)
            for header in message.headers:
                self.events.append(("header", header.call_id))
                self.headers.setdefault(header.call_id, []).append(header)
            for result in message.results:
                self.events.append(("result", result.call_id))
                self.results.setdefault(result.call_id, []).append(result)
            self._cond.notify_all()

    def _end(self, code: grpc.StatusCode) -> None:
        with self._cond:
            self.ended = code
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
        """Wait until ``predicate()`` (checked under the lock) holds; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def result(self, call_id: int, timeout: float = 15.0) -> Any:
        """The (single) result of ``call_id``; fails the test when none comes in time."""
        assert self.wait(lambda: call_id in self.results, timeout), f"no result for call {call_id}"
        return self.results[call_id][0]

    def wait_ended(self, timeout: float = 15.0) -> Optional[grpc.StatusCode]:
        """The stream's final code, or None when it did not end in time."""
        self.wait(lambda: self.ended is not None, timeout)
        return self.ended


class PipeClient(_Recorder):
    """One pipe stream to a worker."""

    carrier = "grpc-stream"

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__()
        self._out: "queue.Queue[Optional[Any]]" = queue.Queue()
        stub = channel.stream_stream(PIPE, request_serializer=pb.PipeRequest.SerializeToString,
                                     response_deserializer=pb.PipeResponse.FromString)
        self._call = stub(iter(self._out.get, None))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        code = grpc.StatusCode.OK
        try:
            for message in self._call:
                self._record(message)
        except grpc.RpcError as exc:
            code = exc.code()
        self._end(code)

    def send(self, calls: Iterable[Any] = (), cancel: Iterable[int] = ()) -> None:
        """Send one batch."""
        self._out.put(pb.PipeRequest(calls=list(calls), cancel=list(cancel)))

    def half_close(self) -> None:
        """No more batches: the worker answers what runs, then ends the stream."""
        self._out.put(None)

    def close(self) -> None:
        """Cancel the stream (test clean-up)."""
        self._call.cancel()
        self._out.put(None)


_FRAME = struct.Struct("<I")


class SocketPipe:
    """The pipe on the socket pair a worker was started with (``start_worker(pipe=True)``): the
    same messages, each framed by a 4-byte little-endian length, as the pool sends them. A socket
    pair carries one pipe for the worker's life, so tests share it through views (:meth:`view`),
    each with its own range of call ids. The worker closing its end cleanly counts as the stream
    ending OK."""

    _RANGE = 1_000_000

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._views: Dict[int, "SocketPipeView"] = {}
        self._next = 1
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def view(self) -> "SocketPipeView":
        """A client of its own on the shared pipe (call ids 1.. as the tests number them)."""
        with self._lock:
            base = self._next * self._RANGE
            self._next += 1
            view = SocketPipeView(self, base)
            self._views[base] = view
            return view

    def _read_exactly(self, n: int) -> Optional[bytes]:
        data = bytearray()
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def _read(self) -> None:
        code = grpc.StatusCode.OK
        try:
            while True:
                header = self._read_exactly(_FRAME.size)
                if header is None:
                    break
                body = self._read_exactly(_FRAME.unpack(header)[0])
                if body is None:
                    code = grpc.StatusCode.INTERNAL  # ended inside a frame
                    break
                self._dispatch(pb.PipeResponse.FromString(body))
        except OSError:
            code = grpc.StatusCode.UNAVAILABLE
        for view in list(self._views.values()):
            view._end(code)

    def _dispatch(self, message: Any) -> None:
        parts: Dict[int, Any] = {}
        for header in message.headers:
            base = header.call_id - header.call_id % self._RANGE
            copy = parts.setdefault(base, pb.PipeResponse()).headers.add()
            copy.CopyFrom(header)
            copy.call_id -= base
        for result in message.results:
            base = result.call_id - result.call_id % self._RANGE
            copy = parts.setdefault(base, pb.PipeResponse()).results.add()
            copy.CopyFrom(result)
            copy.call_id -= base
        for base, part in parts.items():
            view = self._views.get(base)
            if view is not None:
                view._record(part)

    def send(self, request: Any) -> None:
        data = request.SerializeToString()
        with self._lock:
            self._sock.sendall(_FRAME.pack(len(data)) + data)

    def half_close(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)


class SocketPipeView(_Recorder):
    """One test's client on a shared :class:`SocketPipe`."""

    carrier = "socket-pair"

    def __init__(self, pipe: SocketPipe, base: int) -> None:
        super().__init__()
        self._pipe = pipe
        self._base = base

    def send(self, calls: Iterable[Any] = (), cancel: Iterable[int] = ()) -> None:
        """Send one batch."""
        shifted = []
        for call in calls:
            copy = pb.PipeCall()
            copy.CopyFrom(call)
            copy.call_id += self._base
            shifted.append(copy)
        self._pipe.send(pb.PipeRequest(calls=shifted, cancel=[c + self._base for c in cancel]))

    def half_close(self) -> None:
        """No more batches on the whole pipe: the worker answers what runs, then closes its end."""
        self._pipe.half_close()

    def close(self) -> None:
        """Nothing to close: the pipe is the worker's (the worker fixture closes it)."""


def metadata_pairs(entries: Iterable[Any]) -> List[Tuple[str, bytes]]:
    """MetadataEntry messages as sorted (key, bytes) pairs, for comparisons."""
    return sorted((e.key, bytes(e.value)) for e in entries)
