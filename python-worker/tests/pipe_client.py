"""A raw client of ``procgrpc.internal.v1.PipelineService/Pipe`` for the protocol-level tests.

It sends batches (``PipeRequest``) when told to, half-closes when told to, and records every
``PipeResponse`` and the order in which headers and results arrived (within one message,
headers before results, as the protocol says readers handle them).
"""

from __future__ import annotations

import json
import queue
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


class PipeClient:
    """One pipe stream to a worker."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._out: "queue.Queue[Optional[Any]]" = queue.Queue()
        self._cond = threading.Condition()
        self.messages: List[Any] = []
        #: ("header" | "result", call_id) in arrival order.
        self.events: List[Tuple[str, int]] = []
        self.results: Dict[int, List[Any]] = {}
        self.headers: Dict[int, List[Any]] = {}
        #: The stream's final code once it ended (OK when the worker ended it normally).
        self.ended: Optional[grpc.StatusCode] = None
        stub = channel.stream_stream(PIPE, request_serializer=pb.PipeRequest.SerializeToString,
                                     response_deserializer=pb.PipeResponse.FromString)
        self._call = stub(iter(self._out.get, None))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        code = grpc.StatusCode.OK
        try:
            for message in self._call:
                with self._cond:
                    self.messages.append(message)
                    for header in message.headers:
                        self.events.append(("header", header.call_id))
                        self.headers.setdefault(header.call_id, []).append(header)
                    for result in message.results:
                        self.events.append(("result", result.call_id))
                        self.results.setdefault(result.call_id, []).append(result)
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            code = exc.code()
        with self._cond:
            self.ended = code
            self._cond.notify_all()

    def send(self, calls: Iterable[Any] = (), cancel: Iterable[int] = ()) -> None:
        """Send one batch."""
        self._out.put(pb.PipeRequest(calls=list(calls), cancel=list(cancel)))

    def half_close(self) -> None:
        """No more batches: the worker answers what runs, then ends the stream."""
        self._out.put(None)

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

    def close(self) -> None:
        """Cancel the stream (test clean-up)."""
        self._call.cancel()
        self._out.put(None)


def metadata_pairs(entries: Iterable[Any]) -> List[Tuple[str, bytes]]:
    """MetadataEntry messages as sorted (key, bytes) pairs, for comparisons."""
    return sorted((e.key, bytes(e.value)) for e in entries)
