"""Servicer contexts that give ``def`` and ``async def`` methods the full grpc API.

grpcio's asyncio server hands sync methods a thin ``_SyncServicerContext``
that lacks ``is_active`` and ``abort_with_status``, whose ``abort`` does not
raise (the method keeps running) and whose ``add_callback`` callbacks only run
when the method returns normally (never on cancellation). Its async context
has no ``is_active``/``add_callback``. procgrpc wraps every method and passes
one of these contexts instead, so code written for ``grpc.server`` works
unchanged. Everything both kinds share is forwarded by one base,
:class:`ForwardingContext`; the two subclasses differ only where blocking differs
(``send_initial_metadata``, ``abort``) and in what each API has (``cancel``; ``read``/``write``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, List, NoReturn, Optional, Tuple

import grpc

from .._process.log import get_logger
from .._status.codes import status_code
from .._status.wire import checked_metadata, exact_details

__all__ = ["ForwardingContext", "SyncContext", "AsyncContext", "as_code"]

_log = get_logger()


def as_code(code: Any) -> Any:
    """An int code as its ``grpc.StatusCode``; anything else as given.

    grpc.aio takes ints but converts only 0..15 (its range check ends at DATA_LOSS), so an
    ``int`` 16 would arrive as UNKNOWN instead of UNAUTHENTICATED; procgrpc converts ints itself,
    the same way on every transport (``_status.codes.status_code``)."""
    return status_code(code) if isinstance(code, int) else code


_ABORT_OK_DETAILS = "the servicer called abort() with StatusCode.OK"


def abort_code(code: Any, details: str) -> Tuple[Any, str]:
    """The status an ``abort(code, details)`` sends. ``abort`` with OK is a servicer bug: grpc's
    sync server answers UNKNOWN for it, while grpc.aio marks the status sent, fails an internal
    assertion and never answers (the call hangs until its deadline). Every transport answers
    UNKNOWN, with details that say what happened."""
    code = as_code(code)
    if code == grpc.StatusCode.OK:
        _log.error("abort() called with StatusCode.OK; answering UNKNOWN")
        return grpc.StatusCode.UNKNOWN, _ABORT_OK_DETAILS
    return code, details or ""


class ForwardingContext:
    """What both contexts share: call state (``is_active``, ``add_callback``), and everything
    forwarded as it is to the context grpc (or the pipeline) made for the call."""

    __slots__ = ("_ctx", "_active", "_callbacks")

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self._active = True
        # add_callback may come from a pool thread while the loop terminates the call. No lock
        # (one costs more than the rest of this object): each callback leaves this list by one
        # atomic step, terminate's ``pop`` (it runs) or add_callback's ``remove`` (it does not).
        self._callbacks: List[Callable[[], None]] = []

    def terminate(self) -> None:
        """The call is over: ``is_active()`` turns False and ``add_callback`` callbacks run (once)."""
        if not self._active:
            return
        self._active = False
        callbacks = self._callbacks
        while callbacks:
            try:
                callback = callbacks.pop(0)
            except IndexError:
                return  # taken back by an add_callback that saw the call end
            try:
                callback()
            except Exception:
                _log.error("RPC termination callback raised", exc_info=True)

    # -- call state
    def is_active(self) -> bool:
        """False once the call was cancelled, timed out or finished."""
        return self._active

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run ``callback()`` when the call terminates (including by cancellation)."""
        if not self._active:
            return False
        self._callbacks.append(callback)
        if self._active:
            return True  # terminate has not begun: it will pop and run it
        # The call ended meanwhile: the callback runs unless it is taken back here first.
        try:
            self._callbacks.remove(callback)
        except ValueError:
            return True  # terminate took it: it runs
        return False

    def time_remaining(self) -> Optional[float]:
        """Seconds until the deadline, or None without one."""
        return self._ctx.time_remaining()  # type: ignore[no-any-return]

    # -- metadata and status
    def invocation_metadata(self) -> Any:
        """Metadata the client sent."""
        return self._ctx.invocation_metadata()

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        """Set trailing metadata sent with the status (checked: ``_status.wire``)."""
        self._ctx.set_trailing_metadata(checked_metadata(trailing_metadata, "trailing metadata"))

    def _abort_trailers(self, trailing_metadata: Any) -> Any:
        # As grpc.aio: an abort without trailers of its own keeps those set_trailing_metadata set
        # (exact_details may add an entry, and grpc.aio then sends only the entries it is given).
        given = trailing_metadata if trailing_metadata else (self._ctx.trailing_metadata() or ())
        return checked_metadata(given, "trailing metadata")

    def trailing_metadata(self) -> Any:
        """Trailing metadata set so far."""
        return self._ctx.trailing_metadata()

    def set_code(self, code: Any) -> None:
        """Set the status code sent when the method returns (a ``grpc.StatusCode`` or an int)."""
        self._ctx.set_code(as_code(code))

    def code(self) -> Any:
        """Status code set so far."""
        return self._ctx.code()

    def set_details(self, details: str) -> None:
        """Set the status message sent when the method returns."""
        self._ctx.set_details(details if details is not None else "")

    def details(self) -> Any:
        """Status message set so far."""
        return self._ctx.details()

    # -- peer and compression
    def peer(self) -> Any:
        """The client's address."""
        return self._ctx.peer()

    def peer_identities(self) -> Any:
        """Authenticated peer identities, if any."""
        return self._ctx.peer_identities()

    def peer_identity_key(self) -> Any:
        """Key of the peer identity property, if any."""
        return self._ctx.peer_identity_key()

    def auth_context(self) -> Any:
        """The auth context of the call."""
        return self._ctx.auth_context()

    def set_compression(self, compression: Any) -> None:
        """Set the response compression algorithm."""
        self._ctx.set_compression(compression)

    def disable_next_message_compression(self) -> None:
        """Do not compress the next response message."""
        self._ctx.disable_next_message_compression()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class SyncContext(ForwardingContext, grpc.ServicerContext):  # type: ignore[misc]  # time_remaining may be None
    """``grpc.ServicerContext`` for ``def`` methods running in the worker thread pool."""

    __slots__ = ("_loop",)

    def __init__(self, ctx: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(ctx)
        self._loop = loop

    def cancel(self) -> bool:
        """End the call with CANCELLED."""
        try:
            self.abort(grpc.StatusCode.CANCELLED, "cancelled by the server")
        except Exception:
            pass
        return True

    def send_initial_metadata(self, initial_metadata: Any) -> None:
        """Send initial metadata now (blocks until sent)."""
        asyncio.run_coroutine_threadsafe(
            self._ctx.send_initial_metadata(checked_metadata(initial_metadata, "initial metadata")), self._loop).result()

    def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        """Send the status now and raise, ending the method (as in ``grpc.server``)."""
        code, details = abort_code(code, details)
        trailing = exact_details(code, details, self._abort_trailers(trailing_metadata))
        future = asyncio.run_coroutine_threadsafe(self._ctx.abort(code, details, trailing), self._loop)
        exc = future.exception()
        # Re-raise grpc's own AbortError object: the server checks its identity.
        raise exc if exc is not None else grpc.RpcError("RPC aborted")

    def abort_with_status(self, status: Any) -> NoReturn:
        """Abort with a ``grpc.Status`` (e.g. from ``grpc_status.rpc_status.to_status``)."""
        self.abort(status.code, status.details, status.trailing_metadata)


class AsyncContext(ForwardingContext, grpc.aio.ServicerContext[Any, Any]):  # type: ignore[misc]  # time_remaining may be None
    """``grpc.aio.ServicerContext`` (all of it, ``cancelled``/``done``/``add_done_callback``
    included, on every transport) plus ``is_active`` and ``add_callback``."""

    __slots__ = ()

    def cancelled(self) -> bool:
        """True once the call was cancelled: by the client, or because its deadline passed.

        grpc.aio's own ``cancelled()`` stays False inside the handler when the client cancels;
        the asyncio task it cancels knows (``Task.cancelling()``, Python 3.11+), so that is
        asked too. On Python 3.10 the plain path reports what grpc.aio reports."""
        if self._ctx.cancelled():
            return True
        try:
            task = asyncio.current_task()
        except RuntimeError:  # not on the event loop
            return False
        cancelling = getattr(task, "cancelling", None)
        return bool(cancelling is not None and cancelling() > 0)

    def done(self) -> bool:
        """True once the call is over (answered, aborted or cancelled)."""
        return not self._active or bool(self._ctx.done())

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Run ``callback(context)`` when the call is over (at once when it already is)."""
        if not self.add_callback(lambda: callback(self)):
            callback(self)

    async def read(self) -> Any:
        """Read the next request message (``grpc.aio.EOF`` at the end)."""
        return await self._ctx.read()

    async def write(self, message: Any) -> None:
        """Write one response message."""
        await self._ctx.write(message)

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        """Send initial metadata now."""
        await self._ctx.send_initial_metadata(checked_metadata(initial_metadata, "initial metadata"))

    async def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        """Send the status now and raise, ending the method."""
        code, details = abort_code(code, details)
        trailing = exact_details(code, details, self._abort_trailers(trailing_metadata))
        await self._ctx.abort(code, details, trailing)
        raise AssertionError("grpc abort returned")  # unreachable: abort always raises

    async def abort_with_status(self, status: Any) -> NoReturn:
        """Abort with a ``grpc.Status`` (e.g. from ``grpc_status.rpc_status.to_status``)."""
        await self.abort(status.code, status.details or "", status.trailing_metadata)
