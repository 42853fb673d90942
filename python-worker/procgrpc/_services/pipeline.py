"""``procgrpc.internal.v1.PipelineService/Pipe``: many unary calls on one bidirectional stream.

The pool's ``transport: "pipelined"`` mode sends each unary call as one ``PipeRequest`` on a
long-lived stream per worker, which saves the per-call HTTP/2 stream set-up that dominates the
cost of small calls. Each call runs through the very same wrapped handler as a normal call
(exception mapping, full ``def``/``async def`` contexts, in-flight counting), with a
:class:`PipeContext` standing in for grpc's servicer context, so servicers behave identically:
``abort``, ``set_code``, ``set_details``, ``set_trailing_metadata``, ``abort_with_status``,
``time_remaining``, ``is_active``, ``add_callback`` and ``invocation_metadata`` all work.
Every call is answered exactly once unless the client cancelled it first. Calls and
results travel in batches (one stream message per event-loop turn on either side); initial
metadata a servicer sends explicitly goes out at once as a ``PipeHeader``, before its result.
After the pool half-closes the stream the worker answers what is running and ends it; a
stopping worker answers what is left with the stopping status and ends it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import grpc

from . import _pipeline_pb2 as pb
from .._process.log import get_logger
from .._status.codes import WORKER_STOPPING_CODE, WORKER_STOPPING_DETAILS, WORKER_STOPPING_TRAILER
from .._shm import LaneError
from .lane import PipeLane, lane_error_answer, lane_from_environment, read_request
from .pipe_context import CallSlot, Outbox, PipeContext, invocation_metadata
from .pipe_deadlines import Deadlines

__all__ = ["SERVICE_NAME", "PipeRegistry", "handler", "method_lookup"]

SERVICE_NAME = "procgrpc.internal.v1.PipelineService"

_log = get_logger()

#: Answers per part of a long batch on a carrier that writes synchronously (``write_now``): the
#: pool resolves the first part's calls while the worker runs the rest (measured at c=64 on the
#: socket pair: one part per batch 28k calls/s, parts of 16 41-45k, of 8 34k).
_PART_RESULTS = 16


if sys.version_info >= (3, 12):
    def _start(coro: Any, loop: asyncio.AbstractEventLoop) -> "asyncio.Task[None]":
        """Run the call's first step now, as the read loop's caller (an eager task): a handler
        that does not suspend is answered without a trip through the event loop. The task is
        current while it runs and has its own copy of the context, as any task."""
        return asyncio.Task(coro, loop=loop, eager_start=True)
else:
    def _start(coro: Any, loop: asyncio.AbstractEventLoop) -> "asyncio.Task[None]":
        """A task for the call (eager tasks need Python 3.12). Made directly, as ``create_task``
        makes it, without the two Python layers of ``ensure_future`` around it."""
        return asyncio.Task(coro, loop=loop)


class _Details(NamedTuple):
    """The ``grpc.HandlerCallDetails`` a generic handler looks a method up with."""

    method: str
    invocation_metadata: Tuple[Tuple[str, Any], ...]


class PipeRegistry:
    """The open pipes of a server, so that a stopping worker can end them."""

    def __init__(self) -> None:
        self._pipes: Set["_Pipe"] = set()

    def add(self, pipe: "_Pipe") -> None:
        self._pipes.add(pipe)

    def discard(self, pipe: "_Pipe") -> None:
        self._pipes.discard(pipe)

    def __len__(self) -> int:
        return len(self._pipes)

    async def wait_half_closed(self, timeout: float) -> bool:
        """Wait until the pool has half-closed every pipe (or it ended), reading and running the
        calls that were still on their way, for at most ``timeout`` seconds; True when all did.

        A stopping pool half-closes its pipes before it signals the worker, but the calls it sent
        just before may not have been read yet: stopping the reads at once would end the stream
        under them, and the pool would see a broken pipe instead of answers."""
        return await _all_set([p.reads_done for p in self._pipes], timeout)

    async def stop_all(self, timeout: float) -> bool:
        """Stop reading every pipe, answer its unanswered calls as stopping, flush and end it.
        True when every pipe ended within ``timeout`` seconds."""
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.stop()
        return await _all_set([p.ended for p in pipes], timeout)


async def _all_set(events: List[asyncio.Event], timeout: float) -> bool:
    """Wait until every event is set, for at most ``timeout`` seconds; True when all were."""
    if not events:
        return True
    _done, pending = await asyncio.wait([asyncio.ensure_future(e.wait()) for e in events], timeout=timeout)
    for waiter in pending:
        waiter.cancel()
    return not pending


class _Pipe:
    """One pipeline stream: runs each call as a task and writes the headers and results that are
    ready as one batch per stream message, so that under load many calls share each message's
    cost. After the pool half-closes the stream (EOF), every call still running is answered and
    the stream ends; a stopping worker (:meth:`stop`) ends it sooner."""

    def __init__(self, lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any], context: Any,
                 registry: PipeRegistry, lane: Optional[PipeLane] = None) -> None:
        self._lookup = lookup
        #: Handlers this pipe has found, by method: most calls skip ``lookup`` and its metadata.
        self._handlers: Dict[str, Any] = {}
        self._lane = lane
        self._context = context
        #: A carrier that writes synchronously (the socket pair) lets a long batch's answers go
        #: out in parts, so the pool works on the first while the worker runs the rest.
        self._write_now: Optional[Callable[[Any], None]] = getattr(context, "write_now", None)
        self._registry = registry
        self._calls: Dict[int, Tuple[CallSlot, "asyncio.Task[None]"]] = {}
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._flush_scheduled = False
        # On a synchronous carrier the answers of a turn go out from a callback at its end; the
        # gRPC stream's writes are awaited, by the writer task.
        self._outbox = Outbox(self._wake.set if self._write_now is None else self._schedule_flush)
        self._deadlines = Deadlines(self._expire)
        self._reading = True
        self._stopping = False
        self._reader: Optional["asyncio.Task[None]"] = None
        self._stop_requested = asyncio.Event()
        #: Set once the stream is over (normally or not).
        self.ended = asyncio.Event()
        #: Set once no more calls will be read: the pool half-closed the stream, or it ended.
        self.reads_done = asyncio.Event()

    async def serve(self) -> None:
        """Run the stream until the pool half-closes it (or the worker stops) and all is answered."""
        self._registry.add(self)
        writer = asyncio.ensure_future(self._write_loop())
        self._reader = asyncio.ensure_future(self._read_loop())
        finished = False
        try:
            try:
                await self._reader
            except asyncio.CancelledError:
                if not self._stopping:
                    raise  # the RPC itself was cancelled (the pool went away, the server stops)
            if not self._stopping and self._calls:
                # Half-closed by the pool: answer what is still running, then end (sooner if the
                # worker stops meanwhile: a handler that ignores cancellation may never return).
                calls_done: "asyncio.Future[Any]" = asyncio.ensure_future(
                    asyncio.gather(*(task for _slot, task in self._calls.values()), return_exceptions=True))
                stop: "asyncio.Future[Any]" = asyncio.ensure_future(self._stop_requested.wait())
                try:
                    await asyncio.wait([calls_done, stop], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
            if self._stopping:
                self._end_unanswered()
            finished = True
        finally:
            self._registry.discard(self)
            self._reader.cancel()
            for _slot, task in list(self._calls.values()):
                task.cancel()
            self._deadlines.clear()
            self._reading = False
            self._wake.set()
            try:
                if finished:
                    await writer  # the last headers and results go out before the stream ends
                else:
                    writer.cancel()
            finally:
                self.reads_done.set()
                self.ended.set()

    def stop(self) -> None:
        """The worker is stopping: read no more calls; calls not answered yet are answered as
        stopping (``_status.codes.WORKER_STOPPING_*``), then the stream ends."""
        self._stopping = True
        self._stop_requested.set()
        if self._reader is not None:
            self._reader.cancel()

    def _end_unanswered(self) -> None:
        for slot, task in list(self._calls.values()):
            slot.status(WORKER_STOPPING_CODE, WORKER_STOPPING_DETAILS, (WORKER_STOPPING_TRAILER,))
            task.cancel()

    async def _read_loop(self) -> None:
        while True:
            batch = await self._context.read()
            if batch is grpc.aio.EOF:
                self.reads_done.set()
                return
            for call_id in batch.cancel:
                entry = self._calls.get(call_id)
                if entry is not None:
                    entry[0].give_up()  # the caller expects no answer
                    entry[1].cancel()
            received = time.monotonic()
            timed: List[Tuple[int, float]] = []
            for call in batch.calls:
                slot = CallSlot(call.call_id, self._outbox)
                deadline = received + call.timeout_us / 1e6 if call.timeout_us else None
                task = _start(self._run(call, slot, deadline), self._loop)
                if task.done():
                    continue  # answered in its first step: no bookkeeping, no deadline timer
                self._calls[call.call_id] = (slot, task)
                if deadline is not None:
                    timed.append((call.call_id, deadline))
            if timed:
                # After the batch's first steps (scheduled before this): without eager tasks
                # (Python < 3.12) most calls are answered there and never need their deadline.
                self._loop.call_soon(self._add_deadlines, timed)

    def _add_deadlines(self, timed: List[Tuple[int, float]]) -> None:
        """Keep the deadlines of the calls of a batch that are still running."""
        if not self._reading:
            return  # the pipe is over: its deadlines were cleared
        calls, deadlines = self._calls, self._deadlines
        for call_id, deadline in timed:
            if call_id in calls:
                deadlines.add(call_id, deadline)

    def _expire(self, call_id: int) -> None:
        """A call's deadline passed: cancel it; it answers DEADLINE_EXCEEDED, as grpc does."""
        entry = self._calls.get(call_id)
        if entry is not None:
            entry[0].expired = True
            entry[1].cancel()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send what is in the outbox now (synchronous carrier)."""
        self._flush_scheduled = False
        if self._outbox and self._write_now is not None:
            self._write_now(self._outbox.take())

    async def _write_loop(self) -> None:
        if self._write_now is not None:
            # Answers went out as they came (``_flush``); the last ones go once reading is over.
            while self._reading:
                self._wake.clear()
                await self._wake.wait()
            self._flush()
            await self._context.drain()
            return
        while True:
            if not self._outbox:
                if not self._reading:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._context.write(self._outbox.take())

    async def _run(self, call: Any, slot: CallSlot, deadline: Optional[float]) -> None:
        try:
            try:
                payload = read_request(self._lane, call)  # first: a lane file is consumed whatever happens
            except LaneError as exc:
                details, trailer = lane_error_answer(exc)
                slot.status(grpc.StatusCode.INTERNAL, details, trailer)
                return
            handler = self._handlers.get(call.method)
            if handler is None:
                handler = self._lookup(call.method, invocation_metadata(call))
                if handler is not None:
                    self._handlers[call.method] = handler
            if handler is None or handler.request_streaming or handler.response_streaming:
                slot.status(grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {call.method}")
                return
            try:
                message = handler.request_deserializer(payload) if handler.request_deserializer else payload
            except Exception as exc:
                slot.status(grpc.StatusCode.INTERNAL, f"Exception deserializing request: {exc}")
                return
            # The deadline cancels this task (``_expire``), as grpc cancels a call whose deadline passes.
            ctx = PipeContext(slot, call, deadline)
            try:
                response = await handler.unary_unary(message, ctx)
            except grpc.aio.AbortError:
                ctx.answer_status()  # already answered by abort, unless the servicer raised it itself
                return
            except asyncio.CancelledError:
                if not slot.expired:
                    raise
                slot.status(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
                return
            ctx.answer(handler.response_serializer(response) if (handler.response_serializer and response is not None)
                       else (response or b""), self._lane)
        except asyncio.CancelledError:
            # The caller cancelled (no answer expected), or the worker stopped (answered); or the
            # deadline passed before the task first ran (a busy loop): answered like one that ran.
            if slot.expired:
                slot.status(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        except Exception as exc:  # A fault outside the servicer (e.g. the response does not serialize).
            _log.error("pipeline call failed", method=call.method, exc_info=True)
            slot.status(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")
        finally:
            if self._calls.pop(call.call_id, None) is not None:
                self._deadlines.discard(call.call_id)
            if self._write_now is not None and self._outbox.size() >= _PART_RESULTS:
                self._flush()


def handler(lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any], registry: PipeRegistry) -> grpc.GenericRpcHandler:
    """The generic handler serving ``Pipe``; ``lookup(method, metadata)`` finds wrapped handlers.
    The pool half-closes a worker's pipe when the worker stops taking calls; the pipe answers
    what is still running and ends."""
    async def pipe(request_iterator: Any, context: Any) -> None:
        await _Pipe(lookup, context, registry, lane_from_environment()).serve()

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Pipe": grpc.stream_stream_rpc_method_handler(
            pipe,
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
