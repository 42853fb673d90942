"""LAB COPY of procgrpc/_pipeline.py for issue 15 §2 (bench only; procgrpc itself is untouched).

bench/profile/lab_worker.py installs ``handler`` from here in place of procgrpc's, with the
variant named by $PGLAB_VARIANT (comma-separated flags):
  base        this file as copied (must measure like procgrpc)
  yield       answers leave through an async generator (``yield``) instead of ``context.write``,
              requests are read by ``async for`` in a reader task (the bare floor's API)
  notimer     no per-call ``call_later`` deadline timer: one shared timer for the earliest deadline
  alternate   the read loop writes the results that are ready itself before it reads again (as
              the bare floor alternates read and write in one task); the writer task only
              flushes results of calls that finish while the read loop waits
  direct      results are built inside the batch's PipeResponse (``results.add(**fields)``) instead
              of as PipeResult messages that ``PipeResponse(results=batch)`` then copies
  inline      calls whose handler returns without suspending are answered in the read loop (the
              coroutine is stepped once; only one that suspends becomes a task), like 3.12's eager tasks
The original module docstring follows.

``procgrpc.internal.v1.PipelineService/Pipe``: many unary calls on one bidirectional stream.

The pool's ``transport: "pipelined"`` mode sends each unary call as one ``PipeRequest`` on a
long-lived stream per worker, which saves the per-call HTTP/2 stream set-up that dominates the
cost of small calls. Each call runs through the very same wrapped handler as a normal call
(exception mapping, full ``def``/``async def`` contexts, in-flight counting), with a
:class:`PipeContext` standing in for grpc's servicer context, so servicers behave identically:
``abort``, ``set_code``, ``set_details``, ``set_trailing_metadata``, ``abort_with_status``,
``time_remaining``, ``is_active``, ``add_callback`` and ``invocation_metadata`` all work.
Every call is answered exactly once unless the client cancelled it first. Calls and
results travel in batches (one stream message per event-loop turn on either side).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Dict, List, NamedTuple, NoReturn, Optional, Sequence, Tuple

import grpc

import contextvars
import heapq
import os

from procgrpc import _pipeline_pb2 as pb
from procgrpc._logging import get_logger

FLAGS = set(filter(None, os.environ.get("PGLAB_VARIANT", "base").split(",")))

__all__ = ["SERVICE_NAME", "PipeContext", "handler"]

SERVICE_NAME = "procgrpc.internal.v1.PipelineService"

_log = get_logger()
_OK = grpc.StatusCode.OK
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _entries(metadata: Sequence[Tuple[str, Any]]) -> List[Any]:
    out = []
    for key, value in metadata:
        out.append(pb.MetadataEntry(key=key, value=value if isinstance(value, bytes) else str(value).encode()))
    return out


class _Details(NamedTuple):
    """The ``grpc.HandlerCallDetails`` a generic handler looks a method up with."""

    method: str
    invocation_metadata: Tuple[Tuple[str, Any], ...]


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

    def result_fields(self, call_id: int, payload: bytes) -> Dict[str, Any]:
        """direct: the fields of the result, for ``results.add(**fields)``."""
        code = self._code if self._code is not None else _OK
        if code is _OK:
            out: Dict[str, Any] = {"call_id": call_id, "payload": payload}
            if self._trailing:
                out["trailing_metadata"] = _entries(self._trailing)
            if self._initial:
                out["initial_metadata"] = _entries(self._initial)
            return out
        return self.status_fields(call_id)

    def status_fields(self, call_id: int) -> Dict[str, Any]:
        code = self._code if self._code is not None else grpc.StatusCode.UNKNOWN
        return {"call_id": call_id, "code": code.value[0], "details": self._details or "",
                "trailing_metadata": _entries(self._trailing), "initial_metadata": _entries(self._initial)}

    def result(self, call_id: int, payload: bytes) -> Any:
        """The PipeResult for a method that returned normally."""
        code = self._code if self._code is not None else _OK
        if code is _OK:
            return pb.PipeResult(call_id=call_id, payload=payload,
                                 trailing_metadata=_entries(self._trailing), initial_metadata=_entries(self._initial))
        return self.status_result(call_id)

    def status_result(self, call_id: int) -> Any:
        """The PipeResult carrying the status the servicer set or aborted with."""
        code = self._code if self._code is not None else grpc.StatusCode.UNKNOWN
        return pb.PipeResult(call_id=call_id, code=code.value[0], details=self._details or "",
                             trailing_metadata=_entries(self._trailing), initial_metadata=_entries(self._initial))


class _Deadlines:
    """notimer: one loop timer for the earliest deadline of all calls instead of one per call."""

    def __init__(self) -> None:
        self._heap: List[Any] = []
        self._seq = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self._at = float("inf")

    def add(self, when: float, state: "_CallState") -> List[Any]:
        entry = [when, self._seq, state]
        self._seq += 1
        heapq.heappush(self._heap, entry)
        if when < self._at:
            self._arm()
        return entry

    @staticmethod
    def remove(entry: List[Any]) -> None:
        entry[2] = None  # lazily dropped when it reaches the top

    def _arm(self) -> None:
        while self._heap and self._heap[0][2] is None:
            heapq.heappop(self._heap)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._heap:
            self._at = float("inf")
            return
        self._at = self._heap[0][0]
        self._timer = asyncio.get_running_loop().call_at(self._at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        while self._heap and self._heap[0][0] <= now:
            state = heapq.heappop(self._heap)[2]
            if state is not None:
                state.expire()
        self._arm()


class _CallState:
    """What the deadline needs to cancel one call (its task, once it has one)."""

    __slots__ = ("task", "expired", "entry")

    def __init__(self) -> None:
        self.task: Optional["asyncio.Future[Any]"] = None
        self.expired = False
        self.entry: Optional[List[Any]] = None

    def expire(self) -> None:
        self.expired = True
        if self.task is not None:
            self.task.cancel()


async def _drive(coro: Any, yielded: Any) -> None:
    """inline: go on running a coroutine that suspended during its first, synchronous step."""
    value: Any = None
    exc: Optional[BaseException] = None
    while True:
        if yielded is None:
            try:
                await asyncio.sleep(0)
            except BaseException as e:  # noqa: B902 - passed into the coroutine, as a Task would
                exc = e
        else:
            yielded._asyncio_future_blocking = False
            try:
                value = await yielded
            except BaseException as e:  # noqa: B902
                exc = e
        try:
            if exc is not None:
                e, exc = exc, None
                yielded = coro.throw(e)
            else:
                yielded = coro.send(value)
            value = None
        except StopIteration:
            return


class _Pipe:
    """One pipeline stream: runs each call as a task and writes the results that are ready as
    one batch per stream message, so that under load many calls share each message's cost."""

    def __init__(self, lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any], context: Any,
                 requests: Any = None) -> None:
        self._lookup = lookup
        self._context = context
        self._requests = requests
        self._tasks: Dict[int, "asyncio.Future[None]"] = {}
        self._states: Dict[int, _CallState] = {}
        self._results: List[Any] = []
        self._ready = asyncio.Event()
        self._reading = True
        self._deadlines = _Deadlines() if "notimer" in FLAGS else None
        self._inline = "inline" in FLAGS
        self._alternate = "alternate" in FLAGS
        self._direct = "direct" in FLAGS
        self._pending = pb.PipeResponse()
        self._write_lock = asyncio.Lock()

    # -- reading
    def _take(self, batch: Any) -> None:
        for call_id in batch.cancel:
            task = self._tasks.get(call_id)
            if task is not None:
                task.cancel()
        for call in batch.calls:
            self._start(call)

    def _start(self, call: Any) -> None:
        state = _CallState()
        coro = self._run(call, state)
        if self._inline:
            ctx = contextvars.copy_context()
            try:
                yielded = ctx.run(coro.send, None)
            except StopIteration:
                return  # answered without suspending: no task, no timer
            task: "asyncio.Future[None]" = asyncio.get_running_loop().create_task(_drive(coro, yielded), context=ctx)
        else:
            task = asyncio.ensure_future(coro)
        state.task = task
        self._tasks[call.call_id] = task
        if self._deadlines is not None or self._inline:
            timeout = call.timeout_us / 1e6
            if timeout:
                if self._deadlines is not None:
                    state.entry = self._deadlines.add(asyncio.get_running_loop().time() + timeout, state)
                else:
                    handle = asyncio.get_running_loop().call_later(timeout, state.expire)
                    state.entry = [handle]
        task.add_done_callback(lambda _t, cid=call.call_id: self._done(cid, state))

    def _done(self, call_id: int, state: _CallState) -> None:
        self._tasks.pop(call_id, None)
        if state.entry is not None:
            if self._deadlines is not None:
                _Deadlines.remove(state.entry)
            else:
                state.entry[0].cancel()

    async def _finish_reading(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def serve(self) -> None:
        writer = asyncio.ensure_future(self._write_loop())
        try:
            while True:
                batch = await self._context.read()
                if batch is grpc.aio.EOF:
                    break
                self._take(batch)
                if self._alternate and self._results:
                    await self._flush()
            await self._finish_reading()
        finally:
            for task in list(self._tasks.values()):
                task.cancel()
            self._reading = False
            self._ready.set()
            try:
                await writer
            except asyncio.CancelledError:
                pass

    async def _read_loop(self) -> None:
        try:
            async for batch in self._requests:
                self._take(batch)
            await self._finish_reading()
        finally:
            self._reading = False
            self._ready.set()

    async def serve_yield(self) -> Any:
        """yield: answers leave through this async generator, as in the bare floor."""
        reader = asyncio.ensure_future(self._read_loop())
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                if self._results:
                    yield self._take_batch()
                elif not self._reading:
                    return
        finally:
            reader.cancel()
            for task in list(self._tasks.values()):
                task.cancel()

    def _emit(self, result: Any) -> None:
        self._results.append(result)
        self._ready.set()

    def _emit_fields(self, **fields: Any) -> None:
        if self._direct:
            self._pending.results.add(**fields)
            self._results.append(None)  # a count: the results themselves are in self._pending
            self._ready.set()
        else:
            self._emit(pb.PipeResult(**fields))

    def _take_batch(self) -> Any:
        if self._direct:
            response, self._pending = self._pending, pb.PipeResponse()
            self._results = []
            return response
        batch, self._results = self._results, []
        return pb.PipeResponse(results=batch)

    async def _flush(self) -> None:
        async with self._write_lock:
            if self._results:
                await self._context.write(self._take_batch())

    async def _write_loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._results:
                if self._alternate:
                    # Let the read loop take them if it is about to (one turn), else write.
                    await asyncio.sleep(0)
                    await self._flush()
                else:
                    await self._context.write(self._take_batch())
            elif not self._reading:
                return

    async def _run(self, call: Any, state: _CallState) -> None:
        call_id = call.call_id
        metadata = tuple((e.key, e.value if e.key.endswith("-bin") else e.value.decode("utf-8", "replace"))
                         for e in call.metadata)
        try:
            handler = self._lookup(call.method, metadata)
            if handler is None or handler.request_streaming or handler.response_streaming:
                self._emit_fields(call_id=call_id, code=grpc.StatusCode.UNIMPLEMENTED.value[0],
                                         details=f"Method not found: {call.method}")
                return
            try:
                message = handler.request_deserializer(call.payload) if handler.request_deserializer else call.payload
            except Exception as exc:
                self._emit_fields(call_id=call_id, code=grpc.StatusCode.INTERNAL.value[0],
                                         details=f"Exception deserializing request: {exc}")
                return
            timeout = call.timeout_us / 1e6
            ctx = PipeContext(metadata, time.monotonic() + timeout if timeout else None)
            timer = None
            if timeout and self._deadlines is None and not self._inline:
                task = asyncio.current_task()
                assert task is not None
                state.task = task
                timer = asyncio.get_running_loop().call_later(timeout, state.expire)
            try:
                response = await handler.unary_unary(message, ctx)
            except grpc.aio.AbortError:
                self._emit_fields(**ctx.status_fields(call_id))
                return
            except asyncio.CancelledError:
                if not state.expired:
                    raise
                self._emit_fields(call_id=call_id, code=grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
                                         details="Deadline Exceeded")
                return
            finally:
                if timer is not None:
                    timer.cancel()
            payload = handler.response_serializer(response) if (handler.response_serializer and response is not None) else (response or b"")
            self._emit_fields(**ctx.result_fields(call_id, payload))
        except asyncio.CancelledError:
            pass  # The client cancelled: it expects no answer.
        except Exception as exc:  # A fault in procgrpc itself: still answer the call.
            _log.error("pipeline call failed", method=call.method, exc_info=True)
            self._emit_fields(call_id=call_id, code=grpc.StatusCode.UNKNOWN.value[0],
                                     details=f"Unexpected {type(exc).__name__}: {exc}")
        finally:
            if not self._inline and self._deadlines is None:
                self._tasks.pop(call_id, None)


def handler(lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any]) -> grpc.GenericRpcHandler:
    """The generic handler serving ``Pipe`` (lab variants by $PGLAB_VARIANT)."""
    if "yield" in FLAGS:
        async def pipe_gen(request_iterator: Any, context: Any) -> Any:
            async for response in _Pipe(lookup, context, request_iterator).serve_yield():
                yield response
        fn: Any = pipe_gen
    else:
        async def pipe(request_iterator: Any, context: Any) -> None:
            await _Pipe(lookup, context).serve()
        fn = pipe

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Pipe": grpc.stream_stream_rpc_method_handler(
            fn,
            request_deserializer=pb.PipeRequest.FromString,
            response_serializer=pb.PipeResponse.SerializeToString,
        ),
    })


def method_lookup(registered: Dict[str, Any], generic: Sequence[Any]) -> Callable[[str, Tuple[Tuple[str, Any], ...]], Any]:
    """Finds the wrapped handler for a method path among what ``add_*_to_server`` registered."""
    cache: Dict[str, Any] = {}

    def lookup(method: str, metadata: Tuple[Tuple[str, Any], ...]) -> Any:
        found = cache.get(method) or registered.get(method)
        if found is None:
            details = _Details(method, metadata)
            for generic_handler in generic:
                found = generic_handler.service(details)
                if found is not None:
                    break
        if found is not None:
            cache[method] = found
        return found

    return lookup
