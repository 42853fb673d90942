"""The bookkeeping of one call inside servicer code, in one place for every kind of handler.

Each handler adapter (``_handlers.adapters``) runs the servicer method inside a
:class:`CallScope` (``async with``): on entry the call is counted in flight, listed as running
(unless a thread does that itself) and made current for logs and tracing (a call whose deadline
passed, or whose method is switched off, is refused first); on exit all of that
is undone and the servicer's context terminates (``is_active()`` False, callbacks run); an
exception that is not grpc's own abort ends the call with its mapped status.
"""

from __future__ import annotations

import concurrent.futures
import traceback
from types import TracebackType
from typing import Any, Callable, Optional, Tuple, Type

import grpc

from .. import _call_info, errors
from .._process.log import get_logger
from .._status.codes import WORKER_STOPPING_CODE, WORKER_STOPPING_DETAILS, WORKER_STOPPING_TRAILER
from .._status.mapping import ExceptionMapper
from .._status.wire import checked_metadata, exact_details
from .contexts import ForwardingContext
from .in_flight import CALL_ID_KEY, InFlight
from .switched_off import refusal

__all__ = ["MethodCalls", "CallScope", "ABORT_TYPES"]

_log = get_logger()

#: grpc's own "the call was ended with a status" exception: passes through untouched.
ABORT_TYPES: Tuple[Type[BaseException], ...] = (grpc.aio.AbortError,)


class _DeadlinePassed(Exception):
    """Raised in a pool thread instead of running a method whose deadline has passed."""


class MethodCalls:
    """Per-method constants shared by every call of one wrapped handler."""

    __slots__ = ("method", "mapper", "executor", "in_flight")

    def __init__(self, method: str, mapper: ExceptionMapper, executor: concurrent.futures.Executor,
                 in_flight: InFlight) -> None:
        self.method = method
        self.mapper = mapper
        self.executor = executor
        self.in_flight = in_flight


class CallScope:
    """One call from its entry into servicer code to its exit.

    ``ctx`` is the context grpc (or the pipeline) made for the call; ``facade`` the context the
    servicer gets. With ``track_running`` the scope lists the handler as running for its whole
    life; without it, a thread lists it with :meth:`run_tracked` while it runs the method.
    """

    __slots__ = ("_calls", "ctx", "facade", "request_id", "call_id", "_track", "_traced", "_token", "_handle",
                 "_ended")

    def __init__(self, calls: MethodCalls, ctx: Any, facade: ForwardingContext, track_running: bool = False) -> None:
        self._calls = calls
        self.ctx = ctx
        self.facade = facade
        self._track = track_running
        self._token: Optional[int] = None
        self._handle: Optional[_call_info.Handle] = None
        self._ended: Optional[BaseException] = None
        request_id: Optional[str] = None
        call_id: Optional[str] = None
        traced: Optional[Tuple[Tuple[str, Any], ...]] = None
        # The pipeline's context knows the ids of a call that has no other metadata (so no
        # traceparent either): its metadata is not built just to be scanned.
        identity = getattr(ctx, "procgrpc_call_identity", None)
        known = identity() if identity is not None else None
        if known is not None:
            self.request_id, self.call_id = known
            self._traced = None
            return
        # One pass over the metadata for everything procgrpc reads from it.
        try:
            metadata = tuple(ctx.invocation_metadata() or ())
        except Exception:
            metadata = ()
        for key, value in metadata:
            if key == "x-request-id":
                request_id = str(value)
            elif key == CALL_ID_KEY:
                call_id = str(value)
            elif key == "traceparent":
                traced = metadata
        self.request_id = request_id
        self.call_id = call_id
        self._traced = traced

    def enter(self) -> Optional[Tuple[Any, str, Tuple[Tuple[str, Any], ...]]]:
        """Enter servicer code: count the call, list it, make it current; None then. A call
        refused before its code runs is not entered: its status (code, details, trailers) is
        returned, for the caller to abort the call with."""
        remaining = self.ctx.time_remaining()
        if remaining is not None and remaining <= 0:
            # Its deadline passed before the worker got to it (queued, or sent too late): the
            # caller was told DEADLINE_EXCEEDED, so its side effects must not happen.
            return grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", ()
        calls = self._calls
        switched_off = calls.in_flight.switched_off.target_for(calls.method)
        if switched_off is not None:
            # A kill switch (also for clients calling this worker's socket directly): refused
            # before servicer code runs, on every transport, as the pool refuses it.
            status = refusal(calls.method, switched_off)
            return status.code, status.details, tuple(status.trailing_metadata)
        calls.in_flight.enter()
        calls.in_flight.scopes.add(self)
        if self._track:
            self._token = calls.in_flight.running.started(calls.method, self.request_id, self.call_id)
        self._handle = _call_info.enter(calls.method, self.request_id, self._traced)
        return None

    async def end(self, exc: Optional[BaseException]) -> None:
        """Leave servicer code, which returned (``exc`` None) or raised ``exc``: an exception
        that is not grpc's abort ends the call with its mapped status (this raises AbortError)."""
        if exc is None:
            self.returned()
            return
        try:
            if isinstance(exc, Exception) and not isinstance(exc, ABORT_TYPES):
                await self.fail(exc)
        finally:
            self.leave()

    def returned(self) -> None:
        """Leave servicer code, which returned normally (no await: nothing can fail here)."""
        try:
            self._carry_set_details()
        finally:
            self.leave()

    def leave(self) -> None:
        """Undo :meth:`enter`; the servicer's context terminates."""
        if self._handle is not None:
            _call_info.leave(self._handle)
        if self._token is not None:
            self._calls.in_flight.running.finished(self._token)
        # Also on CancelledError (client cancel, deadline, server stop): a thread may keep
        # running, but it now sees is_active() == False.
        self._calls.in_flight.scopes.discard(self)
        self._calls.in_flight.leave()
        self.facade.terminate()

    async def __aenter__(self) -> "CallScope":
        refused = self.enter()
        if refused is not None:
            await self.ctx.abort(*refused)
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> bool:
        await self.end(exc)
        return False

    def _carry_set_details(self) -> None:
        """A method that returned after ``set_code``/``set_details``: its status message travels
        exactly on every transport (``_status.wire.exact_details``)."""
        try:
            code = self.ctx.code()
            if code is None or code == grpc.StatusCode.OK or code == 0:
                return
            details = self.ctx.details() or ""
            trailing = tuple(self.ctx.trailing_metadata() or ())
            carried = exact_details(code, details, trailing)
            if len(carried) != len(trailing):
                self.ctx.set_trailing_metadata(carried)
        except Exception:
            pass  # the status goes as grpc has it

    def run_tracked(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (in a pool thread) listed as running while it runs.

        Registered in the thread itself: a call cancelled before a thread picked it up never
        runs, and one that ignores cancellation stays listed until it returns. A call whose
        deadline passed while it waited for a thread does not run at all."""
        remaining = self.ctx.time_remaining()
        if remaining is not None and remaining <= 0:
            raise _DeadlinePassed()
        calls = self._calls
        token = calls.in_flight.running.started(calls.method, self.request_id, self.call_id)
        try:
            return fn(*args)
        finally:
            calls.in_flight.running.finished(token)

    async def end_stopping(self) -> None:
        """The worker's drain grace is over: end the call now with the stopping status. The
        handler may go on (a thread cannot be stopped), but the caller has its answer."""
        try:
            await self.ctx.abort(WORKER_STOPPING_CODE, WORKER_STOPPING_DETAILS, (WORKER_STOPPING_TRAILER,))
        except grpc.aio.AbortError as exc:
            self._ended = exc  # grpc checks that this very object ends the call
        except Exception:
            pass  # The call got its status in the meantime.
        self.facade.terminate()

    async def fail(self, exc: BaseException) -> None:
        """Log ``exc`` and end the call with its mapped status (raises grpc's AbortError)."""
        if isinstance(exc, _DeadlinePassed):
            await self.ctx.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if self._ended is not None:
            raise self._ended  # ended by the stopping worker; the exception came after
        calls, ctx = self._calls, self.ctx
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, errors.RpcStatusError):
            # A deliberate status: not a crash, so no error-level noise.
            _log.log("debug", "servicer raised " + type(exc).__name__, method=calls.method,
                     request_id=self.request_id, code=exc.code.name, error=str(exc), traceback=text)
        else:
            _log.error("servicer raised " + type(exc).__name__, method=calls.method,
                       request_id=self.request_id, error=str(exc), traceback=text)
        try:
            fallback = ctx.code()
        except Exception:
            fallback = None
        status = calls.mapper.status_for(exc, calls.method, fallback, self.request_id)
        # Merge trailers the method set before failing (minus any stale details).
        try:
            before = tuple(m for m in (ctx.trailing_metadata() or ())
                           if m[0] != "grpc-status-details-bin")
        except Exception:
            before = ()
        try:
            trailing = checked_metadata(before + tuple(status.trailing_metadata), "trailing metadata")
        except errors.Internal as invalid:
            _log.error("servicer metadata refused", method=calls.method, request_id=self.request_id, error=invalid.message)
            await ctx.abort(grpc.StatusCode.INTERNAL, invalid.message)
        await ctx.abort(status.code, status.details, exact_details(status.code, status.details, trailing))
