"""Recording what the user's ``add_*_to_server`` functions register, and wrapping it.

``run_worker`` hands those functions a :class:`RecordingServer` instead of the grpc server: it
records the service names (for health, reflection and the log), wraps every method handler
once (``_handlers.adapters``) and keeps the wrapped handlers for the pipeline transport.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import grpc

__all__ = ["RecordingServer"]


class RecordingServer:
    """Stands in for the server while ``add_*_to_server`` runs.

    Records service names and wraps every method handler (exception mapping,
    full contexts) before forwarding to the real server; everything else is
    forwarded untouched.
    """

    def __init__(self, server: Any, wrap: Callable[[Any, str], Any]) -> None:
        self._server = server
        self._wrap = wrap
        self.service_names: List[str] = []
        # The wrapped handlers, for the pipeline service to run calls through.
        self.registered: Dict[str, Any] = {}
        self.generic: List["_WrappedGenericHandler"] = []

    def _record(self, name: Optional[str]) -> None:
        if name and name not in self.service_names:
            self.service_names.append(name)

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[Any]) -> None:
        """Record and wrap generic handlers, then register them on the real server."""
        wrapped = []
        for handler in generic_rpc_handlers:
            service_name = getattr(handler, "service_name", None)
            self._record(service_name() if callable(service_name) else None)
            wrapped.append(_WrappedGenericHandler(handler, self._wrap))
        self.generic.extend(wrapped)
        self._server.add_generic_rpc_handlers(tuple(wrapped))

    def add_registered_method_handlers(self, service_name: str, method_handlers: Dict[str, Any]) -> None:
        """Record and wrap pre-registered method handlers, then register them."""
        self._record(service_name)
        wrapped = {name: self._wrap(handler, f"/{service_name}/{name}") for name, handler in method_handlers.items()}
        for name, handler in wrapped.items():
            self.registered[f"/{service_name}/{name}"] = handler
        self._server.add_registered_method_handlers(service_name, wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class _WrappedGenericHandler(grpc.ServiceRpcHandler):
    """A generic handler whose method handlers are wrapped once per method and cached."""

    def __init__(self, inner: Any, wrap: Callable[[Any, str], Any]) -> None:
        self._inner = inner
        self._wrap = wrap
        self._cache: Dict[str, Tuple[Any, Any]] = {}

    def service_name(self) -> str:
        """The inner handler's service name ("" if it has none)."""
        name = getattr(self._inner, "service_name", None)
        return str(name()) if callable(name) else ""

    def service(self, handler_call_details: Any) -> Any:
        """The wrapped method handler for the call, or None."""
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._cache[method] = (handler, wrapped)
        return wrapped
