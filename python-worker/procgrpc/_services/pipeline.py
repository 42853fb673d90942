"""``procgrpc.internal.v1.PipelineService/Pipe``: many unary calls on one bidirectional stream.

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
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

import grpc

from . import _pipeline_pb2 as pb
from .._process.log import get_logger
from .pipe_context import PipeContext

__all__ = ["SERVICE_NAME", "handler", "method_lookup"]

SERVICE_NAME = "procgrpc.internal.v1.PipelineService"

_log = get_logger()


class _Details(NamedTuple):
    """The ``grpc.HandlerCallDetails`` a generic handler looks a method up with."""

    method: str
    invocation_metadata: Tuple[Tuple[str, Any], ...]


class _Pipe:
    """One pipeline stream: runs each call as a task and writes the results that are ready as
    one batch per stream message, so that under load many calls share each message's cost."""

    def __init__(self, lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any], context: Any) -> None:
        self._lookup = lookup
        self._context = context
        self._tasks: Dict[int, "asyncio.Task[None]"] = {}
        self._results: List[Any] = []
        self._ready = asyncio.Event()
        self._reading = True

    async def serve(self) -> None:
        writer = asyncio.ensure_future(self._write_loop())
        try:
            while True:
                batch = await self._context.read()
                if batch is grpc.aio.EOF:
                    break
                for call_id in batch.cancel:
                    task = self._tasks.get(call_id)
                    if task is not None:
                        task.cancel()
                for call in batch.calls:
                    self._tasks[call.call_id] = asyncio.ensure_future(self._run(call))
            # The pool half-closed the stream: answer what is still running, then end.
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        finally:
            for task in list(self._tasks.values()):
                task.cancel()
            self._reading = False
            self._ready.set()
            try:
                await writer
            except asyncio.CancelledError:
                pass

    def _emit(self, result: Any) -> None:
        self._results.append(result)
        self._ready.set()

    async def _write_loop(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._results:
                batch, self._results = self._results, []
                await self._context.write(pb.PipeResponse(results=batch))
            elif not self._reading:
                return

    async def _run(self, call: Any) -> None:
        call_id = call.call_id
        metadata = tuple((e.key, e.value if e.key.endswith("-bin") else e.value.decode("utf-8", "replace"))
                         for e in call.metadata)
        try:
            handler = self._lookup(call.method, metadata)
            if handler is None or handler.request_streaming or handler.response_streaming:
                self._emit(pb.PipeResult(call_id=call_id, code=grpc.StatusCode.UNIMPLEMENTED.value[0],
                                         details=f"Method not found: {call.method}"))
                return
            try:
                message = handler.request_deserializer(call.payload) if handler.request_deserializer else call.payload
            except Exception as exc:
                self._emit(pb.PipeResult(call_id=call_id, code=grpc.StatusCode.INTERNAL.value[0],
                                         details=f"Exception deserializing request: {exc}"))
                return
            timeout = call.timeout_us / 1e6
            ctx = PipeContext(metadata, time.monotonic() + timeout if timeout else None)
            # The deadline cancels this task, as grpc cancels a call whose deadline passes.
            expired: List[bool] = []
            timer = None
            if timeout:
                task = asyncio.current_task()
                assert task is not None

                def expire() -> None:
                    expired.append(True)
                    task.cancel()
                timer = asyncio.get_running_loop().call_later(timeout, expire)
            try:
                response = await handler.unary_unary(message, ctx)
            except grpc.aio.AbortError:
                self._emit(ctx.status_result(call_id))
                return
            except asyncio.CancelledError:
                if not expired:
                    raise
                self._emit(pb.PipeResult(call_id=call_id, code=grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
                                         details="Deadline Exceeded"))
                return
            finally:
                if timer is not None:
                    timer.cancel()
            payload = handler.response_serializer(response) if (handler.response_serializer and response is not None) else (response or b"")
            self._emit(ctx.result(call_id, payload))
        except asyncio.CancelledError:
            pass  # The client cancelled: it expects no answer.
        except Exception as exc:  # A fault in procgrpc itself: still answer the call.
            _log.error("pipeline call failed", method=call.method, exc_info=True)
            self._emit(pb.PipeResult(call_id=call_id, code=grpc.StatusCode.UNKNOWN.value[0],
                                     details=f"Unexpected {type(exc).__name__}: {exc}"))
        finally:
            self._tasks.pop(call_id, None)


def handler(lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any]) -> grpc.GenericRpcHandler:
    """The generic handler serving ``Pipe``; ``lookup(method, metadata)`` finds wrapped handlers.
    The pool half-closes a worker's pipe when the worker stops taking calls; the pipe answers
    what is still running and ends."""
    async def pipe(request_iterator: Any, context: Any) -> None:
        await _Pipe(lookup, context).serve()

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
