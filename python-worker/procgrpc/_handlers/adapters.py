"""Handler adapters: every servicer method, ``def`` or ``async def``, as grpc.aio wants it.

Every method handler registered through ``run_worker`` is wrapped once, at registration, by
:func:`wrap_handler` (cheaper than a server interceptor, which runs per call). The wrapper
always presents an ``async def`` to grpcio: sync methods run in the worker thread pool with a
:class:`SyncContext`, async ones on the loop with an :class:`AsyncContext`, each inside a
:class:`CallScope` that does the bookkeeping and maps exceptions. Aborts, ``set_code``
statuses and normal returns pass through untouched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
from typing import Any, AsyncIterator, Callable, Iterator, Optional

import grpc

from .._status.mapping import ExceptionMapper
from .contexts import AsyncContext, SyncContext
from .cancel_hooks import open_call
from .in_flight import InFlight
from .scope import CallScope, MethodCalls

__all__ = ["wrap_handler"]


def _unary_response(calls: MethodCalls, fn: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):
        async def run_async(request: Any, ctx: Any) -> Any:
            actx = AsyncContext(ctx)
            # ``async with CallScope`` spelt out: a call that is neither refused nor fails then
            # costs two plain calls instead of two more coroutines (the pipelined path's hot loop).
            scope = CallScope(calls, ctx, actx, track_running=True)
            refused = scope.enter()
            if refused is not None:
                await ctx.abort(*refused)
            try:
                response = await fn(request, actx)
            except BaseException as exc:
                await scope.end(exc)
                raise
            scope.returned()
            return response
        return run_async

    async def run_sync(request: Any, ctx: Any) -> Any:
        loop = asyncio.get_running_loop()
        sctx = SyncContext(ctx, loop)
        if request_streaming:
            request = _SyncRequests(ctx, loop)
        async with CallScope(calls, ctx, sctx) as scope:
            # The thread runs in a copy of this context: the call's request id and trace follow it.
            return await loop.run_in_executor(calls.executor, contextvars.copy_context().run,
                                              scope.run_tracked, fn, request, sctx)
    return run_sync


_END = object()


def _next_or_end(iterator: Iterator[Any]) -> Any:
    return next(iterator, _END)


def _stream_response(calls: MethodCalls, fn: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn) or inspect.iscoroutinefunction(fn):
        is_gen = inspect.isasyncgenfunction(fn)

        async def run_async(request: Any, ctx: Any) -> AsyncIterator[Any]:
            actx = AsyncContext(ctx)
            cancel_hooks = open_call()
            async with CallScope(calls, ctx, actx, track_running=True):
                if is_gen:
                    responses = fn(request, actx)
                    try:
                        async for item in responses:
                            yield item
                    except GeneratorExit:
                        # grpc.aio cancelled the call while it was writing our last item, so the
                        # CancelledError went to grpc.aio, and the servicer sits at its ``yield``.
                        # Give it the CancelledError asyncio would have given it at an ``await``.
                        cancel_hooks.run()
                        await _cancel_at_yield(responses)
                        raise
                    except asyncio.CancelledError:
                        cancel_hooks.run()
                        raise
                    finally:
                        await responses.aclose()
                else:
                    try:
                        await fn(request, actx)  # reader/writer API: writes via context.write
                    except asyncio.CancelledError:  # no yield here, so no GeneratorExit either
                        cancel_hooks.run()
                        raise
        return run_async

    async def run_sync(request: Any, ctx: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        sctx = SyncContext(ctx, loop)
        if request_streaming:
            request = _SyncRequests(ctx, loop)
        cancel_hooks = open_call()
        async with CallScope(calls, ctx, sctx, track_running=True):
            # One context copy for the whole stream, so each next() sees the call's request id and trace.
            run = contextvars.copy_context().run
            iterator = iter(await loop.run_in_executor(calls.executor, run, fn, request, sctx))
            try:
                while True:
                    item = await loop.run_in_executor(calls.executor, run, _next_or_end, iterator)
                    if item is _END:
                        break
                    yield item
            except (GeneratorExit, asyncio.CancelledError):
                # Cancelled: close the servicer's generator now (GeneratorExit at its ``yield``, its
                # ``finally`` runs) in a servicer thread, not whenever the event loop drops it.
                cancel_hooks.run()
                try:
                    calls.executor.submit(run, _close_quietly, iterator)
                except RuntimeError:
                    pass  # the server is stopping (the pool is shut): the generator is closed when dropped
                raise
    return run_sync


def _close_quietly(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except ValueError:
            pass  # still inside next() in another thread: it is closed when that returns and drops it


async def _cancel_at_yield(responses: AsyncIterator[Any]) -> None:
    athrow = getattr(responses, "athrow", None)
    if athrow is None:
        return
    try:
        await athrow(asyncio.CancelledError())
    except (asyncio.CancelledError, StopAsyncIteration, Exception):  # noqa: BLE001
        pass  # the call is over: whatever the servicer ended with has nowhere to go


class _SyncRequests:
    """A blocking iterator over a streaming request, for ``def`` methods in the thread pool."""

    __slots__ = ("_ctx", "_loop")

    def __init__(self, ctx: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._loop = loop

    def __iter__(self) -> "_SyncRequests":
        return self

    def __next__(self) -> Any:
        message = asyncio.run_coroutine_threadsafe(self._ctx.read(), self._loop).result()
        if message is grpc.aio.EOF:
            raise StopIteration
        return message


def wrap_handler(handler: Any, method: str, mapper: ExceptionMapper,
                 executor: concurrent.futures.Executor, in_flight: Optional[InFlight] = None) -> Any:
    """Return a new ``grpc.RpcMethodHandler`` with exception mapping, full contexts and
    in-flight counting."""
    if handler is None:
        return None
    calls = MethodCalls(method, mapper, executor, in_flight if in_flight is not None else InFlight())
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        fn, make, factory = handler.stream_stream, _stream_response, grpc.stream_stream_rpc_method_handler
    elif handler.response_streaming:
        fn, make, factory = handler.unary_stream, _stream_response, grpc.unary_stream_rpc_method_handler
    elif handler.request_streaming:
        fn, make, factory = handler.stream_unary, _unary_response, grpc.stream_unary_rpc_method_handler
    else:
        fn, make, factory = handler.unary_unary, _unary_response, grpc.unary_unary_rpc_method_handler
    if getattr(fn, "_procgrpc_wrapped", False):
        return handler  # Registered through both the generic and the registered path.
    wrapper = make(calls, fn, bool(handler.request_streaming))
    setattr(wrapper, "_procgrpc_wrapped", True)
    return factory(wrapper, request_deserializer=des, response_serializer=ser)
