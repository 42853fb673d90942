"""What procgrpc knows about the call being served, for log correlation and tracing.

The lowest layer of the package (it imports nothing of procgrpc): the log writer
(``_process.log``) reads it, the handler adapters (``_handlers``) set it for the whole call: on
the event loop for ``async def`` methods, and in the worker thread for ``def`` methods (the
thread runs in a copy of the call's ``contextvars`` context). Every ``procgrpc.get_logger()`` line
written during the call then carries ``request_id`` and, when the caller sent a W3C
``traceparent`` and the ``opentelemetry-api`` package is installed, ``trace_id`` and
``parent_span_id``. The extracted OpenTelemetry context is also made current, so spans the
servicer starts with an OpenTelemetry SDK continue the Node caller's trace.
"""

from __future__ import annotations

import contextvars
from typing import Any, Dict, NamedTuple, Optional, Tuple

__all__ = ["CallInfo", "current_call", "enter", "leave"]

# Optional: tracing works only when the user installs opentelemetry-api. Imported on the first
# call that carries a traceparent, not at start: it costs ~15 ms of every worker's cold start.
_otel: Optional[Tuple[Any, Any, Any]] = None
_otel_missing = False


def _opentelemetry() -> Optional[Tuple[Any, Any, Any]]:
    """(context, propagate, trace) modules of opentelemetry-api, or None when not installed."""
    global _otel, _otel_missing
    if _otel is None and not _otel_missing:
        try:
            import opentelemetry.context as otel_context
            import opentelemetry.propagate as otel_propagate
            import opentelemetry.trace as otel_trace
            _otel = (otel_context, otel_propagate, otel_trace)
        except ImportError:
            _otel_missing = True
    return _otel


class CallInfo(NamedTuple):
    """The call being served: its method, request id and (when traced) the caller's trace."""

    method: str
    request_id: Optional[str]
    trace_id: Optional[str]
    parent_span_id: Optional[str]

    def log_fields(self) -> Dict[str, Any]:
        """Fields added to every log line written during the call."""
        fields: Dict[str, Any] = {"request_id": self.request_id}
        if self.trace_id:
            fields["trace_id"] = self.trace_id
            fields["parent_span_id"] = self.parent_span_id
        return fields


_new_tuple = tuple.__new__

_current: "contextvars.ContextVar[Optional[CallInfo]]" = contextvars.ContextVar("procgrpc_call", default=None)


def current_call() -> Optional[CallInfo]:
    """The call being served by this thread or task, or None outside a call."""
    return _current.get()


Handle = Tuple["contextvars.Token[Optional[CallInfo]]", Any]


def enter(method: str, request_id: Optional[str], traced_metadata: Optional[Tuple[Tuple[str, Any], ...]]) -> Handle:
    """Make the call current; ``traced_metadata`` is the call's metadata when it carries a
    ``traceparent`` (else None). Returns what ``leave`` needs."""
    if traced_metadata is None:
        # Every untraced call, so the cheapest way: the tuple's own constructor, not the
        # NamedTuple's ``__new__`` written in Python.
        return _current.set(_new_tuple(CallInfo, (method, request_id, None, None))), None
    trace_id = parent_span_id = None
    otel_token = None
    otel = _opentelemetry() if traced_metadata is not None else None
    if otel is not None and traced_metadata is not None:
        otel_context, otel_propagate, otel_trace = otel
        carrier = {k: v for k, v in traced_metadata if isinstance(v, str)}
        extracted = otel_propagate.extract(carrier)
        span_context = otel_trace.get_current_span(extracted).get_span_context()
        if span_context.is_valid:
            trace_id = format(span_context.trace_id, "032x")
            parent_span_id = format(span_context.span_id, "016x")
            otel_token = otel_context.attach(extracted)
    token = _current.set(CallInfo(method, request_id, trace_id, parent_span_id))
    return token, otel_token


def leave(handle: Handle) -> None:
    """Undo ``enter``."""
    token, otel_token = handle
    try:
        if otel_token is not None and _otel is not None:
            _otel[0].detach(otel_token)
        _current.reset(token)
    except ValueError:
        # A streaming generator finalised from another context: nothing of ours to undo there.
        pass
