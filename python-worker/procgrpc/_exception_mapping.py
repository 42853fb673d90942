"""Turning exceptions raised by servicer methods into gRPC statuses.

Every method handler registered through ``run_worker`` is wrapped once, at
registration, by :func:`wrap_handler` (cheaper than a server interceptor,
which runs per call). The wrapper always presents an ``async def`` to grpcio:
sync methods run in the worker thread pool with a :class:`SyncContext`, async
ones on the loop with an :class:`AsyncContext`. Aborts, ``set_code`` statuses
and normal returns pass through untouched; any other exception is mapped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import os
import traceback
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Type

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # type: ignore[import-untyped]

from . import _call_context, errors
from ._context import AsyncContext, SyncContext
from ._introspection import RunningHandlers
from ._logging import get_logger

__all__ = ["DEFAULT_MAPPING", "ExceptionMapper", "wrap_handler"]

_log = get_logger()

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

_ABORT_TYPES: Tuple[Type[BaseException], ...] = (grpc.aio.AbortError,)


class ExceptionMapper:
    """Maps an exception to a status.

    ``RpcStatusError`` carries its own code; other exceptions are looked up in
    the user's entries first, then the built-in table, else UNKNOWN.
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

    def status_for(self, exc: BaseException, method: str, fallback: Any = None) -> Any:
        """Build the ``grpc.Status`` for ``exc`` raised by ``method``.

        ``fallback`` is a code already set with ``context.set_code``; it is used
        instead of UNKNOWN for exceptions nothing maps.
        """
        name = type(exc).__name__
        details: List[Message] = []
        trailing: Tuple[Any, ...] = ()
        if isinstance(exc, errors.RpcStatusError):
            # Raised on purpose with a code: it always wins over the tables.
            code: grpc.StatusCode = exc.code
            message = exc.message
            details.extend(exc.details)
            trailing = exc.trailing_metadata
        else:
            mapped = self.code_for(exc)
            if mapped is not None:
                code = mapped
                message = str(exc)
            else:
                code = fallback if isinstance(fallback, grpc.StatusCode) and fallback != grpc.StatusCode.OK \
                    else grpc.StatusCode.UNKNOWN
                message = f"{name}: {exc}"
        if code == grpc.StatusCode.OK:  # e.g. RpcStatusError(OK, ...): not an error status.
            code = grpc.StatusCode.UNKNOWN
        # One ErrorInfo per status (AIP-193): keep the user's when they sent one.
        if not any(isinstance(d, error_details_pb2.ErrorInfo) for d in details):
            details.insert(0, errors.error_info(name, "python", {"method": method}))
        if self.debug:
            details.append(errors.debug_info(
                traceback.format_exception(type(exc), exc, exc.__traceback__), f"{name}: {exc}"))
        return errors.build_status(code, message, details, trailing)


def _request_id(ctx: Any) -> Optional[str]:
    try:
        for key, value in ctx.invocation_metadata() or ():
            if key == "x-request-id":
                return str(value)
    except Exception:
        pass
    return None


class InFlight:
    """Counts calls inside servicer code, so that a stopping worker can drain them while it
    still answers health checks (NOT_SERVING) instead of refusing every new RPC at once."""

    __slots__ = ("count", "_idle", "running")

    def __init__(self) -> None:
        self.count = 0
        self._idle: Optional[asyncio.Event] = None
        # Unlike ``count``, a handler stays here until its code returns, even after the call
        # was cancelled: the pool's hang watchdog asks for it (procgrpc.internal.v1.Worker).
        self.running = RunningHandlers()

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight or ``timeout`` seconds pass; True when idle."""
        if self.count == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


class _Call:
    """Per-method constants shared by every call of one wrapped handler."""

    __slots__ = ("method", "mapper", "executor", "in_flight")

    def __init__(self, method: str, mapper: ExceptionMapper, executor: concurrent.futures.Executor,
                 in_flight: InFlight) -> None:
        self.method = method
        self.mapper = mapper
        self.executor = executor
        self.in_flight = in_flight

    async def fail(self, ctx: Any, exc: BaseException) -> None:
        """Log ``exc`` and end the call with its mapped status (raises grpc's AbortError)."""
        request_id = _request_id(ctx)
        if isinstance(exc, errors.RpcStatusError):
            # A deliberate status: not a crash, so no error-level noise.
            _log.log("debug", "servicer raised " + type(exc).__name__, method=self.method,
                     request_id=request_id, code=exc.code.name, error=str(exc),
                     traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        else:
            _log.error("servicer raised " + type(exc).__name__, method=self.method,
                       request_id=request_id, error=str(exc),
                       traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        try:
            fallback = ctx.code()
        except Exception:
            fallback = None
        status = self.mapper.status_for(exc, self.method, fallback)
        # Merge trailers the method set before failing (minus any stale details).
        try:
            before = tuple(m for m in (ctx.trailing_metadata() or ())
                           if m[0] != "grpc-status-details-bin")
        except Exception:
            before = ()
        await ctx.abort(status.code, status.details, before + tuple(status.trailing_metadata))


def _unary_response(call: _Call, fn: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):
        async def run_async(request: Any, ctx: Any) -> Any:
            actx = AsyncContext(ctx)
            call.in_flight.enter()
            token = call.in_flight.running.started(call.method, _request_id(ctx))
            current = _call_context.enter(call.method, ctx)
            try:
                return await fn(request, actx)
            except _ABORT_TYPES:
                raise
            except Exception as exc:
                await call.fail(ctx, exc)
            finally:
                _call_context.leave(current)
                call.in_flight.running.finished(token)
                call.in_flight.leave()
                actx._state.terminate()
        return run_async

    async def run_sync(request: Any, ctx: Any) -> Any:
        loop = asyncio.get_running_loop()
        sctx = SyncContext(ctx, loop)
        if request_streaming:
            request = _SyncRequests(ctx, loop)
        call.in_flight.enter()
        running, request_id = call.in_flight.running, _request_id(ctx)

        def tracked() -> Any:
            # Registered in the thread itself: a call cancelled before a thread picked it
            # up never runs, and one that ignores cancellation stays listed until it returns.
            token = running.started(call.method, request_id)
            try:
                return fn(request, sctx)
            finally:
                running.finished(token)
        current = _call_context.enter(call.method, ctx)
        try:
            # The thread runs in a copy of this context: the call's request id and trace follow it.
            return await loop.run_in_executor(call.executor, contextvars.copy_context().run, tracked)
        except _ABORT_TYPES:
            raise
        except Exception as exc:
            await call.fail(ctx, exc)
        finally:
            _call_context.leave(current)
            # Also runs on CancelledError (client cancel, deadline, server stop):
            # the thread keeps running but now sees is_active() == False.
            call.in_flight.leave()
            sctx._state.terminate()
    return run_sync


_END = object()


def _next_or_end(iterator: Iterator[Any]) -> Any:
    return next(iterator, _END)


def _stream_response(call: _Call, fn: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn) or inspect.iscoroutinefunction(fn):
        is_gen = inspect.isasyncgenfunction(fn)

        async def run_async(request: Any, ctx: Any) -> AsyncIterator[Any]:
            actx = AsyncContext(ctx)
            call.in_flight.enter()
            current = _call_context.enter(call.method, ctx)
            try:
                if is_gen:
                    async for item in fn(request, actx):
                        yield item
                else:
                    await fn(request, actx)  # reader/writer API: writes via context.write
            except _ABORT_TYPES:
                raise
            except Exception as exc:
                await call.fail(ctx, exc)
            finally:
                _call_context.leave(current)
                call.in_flight.leave()
                actx._state.terminate()
        return run_async

    async def run_sync(request: Any, ctx: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        sctx = SyncContext(ctx, loop)
        if request_streaming:
            request = _SyncRequests(ctx, loop)
        call.in_flight.enter()
        current = _call_context.enter(call.method, ctx)
        # One context copy for the whole stream, so each next() sees the call's request id and trace.
        run = contextvars.copy_context().run
        try:
            iterator = iter(await loop.run_in_executor(call.executor, run, fn, request, sctx))
            while True:
                item = await loop.run_in_executor(call.executor, run, _next_or_end, iterator)
                if item is _END:
                    break
                yield item
        except _ABORT_TYPES:
            raise
        except Exception as exc:
            await call.fail(ctx, exc)
        finally:
            _call_context.leave(current)
            call.in_flight.leave()
            sctx._state.terminate()
    return run_sync


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
    call = _Call(method, mapper, executor, in_flight if in_flight is not None else InFlight())
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
    wrapper = make(call, fn, bool(handler.request_streaming))
    setattr(wrapper, "_procgrpc_wrapped", True)
    return factory(wrapper, request_deserializer=des, response_serializer=ser)
