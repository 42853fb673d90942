"""Cleanups that run when a stream call is cancelled, registered from code that runs in the
call's task but cannot see the call (a response serializer, for instance).

The adapter of a stream method opens the call's list (:func:`open_call`) in the call's task and
runs it when the call is cancelled; :func:`when_cancelled` adds to the list of the call running
in the current task (a no-op outside one)."""

from __future__ import annotations

import contextvars
from typing import Callable, List, Optional

from .._process.log import get_logger

__all__ = ["CancelHooks", "open_call", "when_cancelled"]

_log = get_logger()


class CancelHooks:
    """The cleanups of one call."""

    __slots__ = ("_hooks",)

    def __init__(self) -> None:
        self._hooks: List[Callable[[], None]] = []

    def add(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def run(self) -> None:
        """The call was cancelled: run each cleanup once."""
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                _log.error("stream cancellation cleanup raised", exc_info=True)


_current: contextvars.ContextVar[Optional[CancelHooks]] = contextvars.ContextVar("procgrpc_cancel_hooks", default=None)


def open_call() -> CancelHooks:
    """The cleanups of the call running in this task (made now)."""
    hooks = CancelHooks()
    _current.set(hooks)
    return hooks


def when_cancelled(hook: Callable[[], None]) -> bool:
    """Run ``hook`` if the call running in this task is cancelled; False outside a stream call."""
    hooks = _current.get()
    if hooks is None:
        return False
    hooks.add(hook)
    return True
