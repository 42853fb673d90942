"""testing.v1.ConformanceService: answers every way a grpcio servicer can, for the transport conformance suite."""

from __future__ import annotations

import builtins
import json
import os
import sys
import threading
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

import grpc  # noqa: E402
from google.protobuf import any_pb2, duration_pb2  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from procgrpc import run_worker  # noqa: E402
from testing.v1 import conformance_pb2, conformance_pb2_grpc  # noqa: E402

R = conformance_pb2.RespondRequest
_lock = threading.Lock()
_executions: Dict[str, List[int]] = {}  # key -> [executions, cancelled]


def _code(request: Any) -> Any:
    if request.code_form == R.CODE_FORM_INT:
        return request.code  # a plain int, as grpc's interop servicer passes it
    for code in grpc.StatusCode:
        if code.value[0] == request.code:
            return code
    raise ValueError(f"no status code {request.code}")


def _initial(request: Any) -> Tuple[Tuple[str, Any], ...]:
    return tuple(request.initial.items()) + tuple(request.initial_bin.items())


def _trailing(request: Any) -> Tuple[Tuple[str, Any], ...]:
    return tuple(request.trailing.items()) + tuple(request.trailing_bin.items())


def _status(request: Any) -> Any:
    details = []
    if request.rich_details:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason="CONFORMANCE", domain="procgrpc.test", metadata={"k": "v"}))
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000)))
        details = [info, retry]
    status = rpc_status.to_status(status_pb2.Status(code=request.code, message=request.details, details=details))
    return _Status(request.code if request.code_form == R.CODE_FORM_INT else status.code, status.details,
                   _trailing(request) + tuple(status.trailing_metadata))


class _Status(grpc.Status):
    def __init__(self, code: Any, details: str, trailing_metadata: Any) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _answer_sync(request: Any, context: Any) -> Any:
    if _initial(request):
        context.send_initial_metadata(_initial(request))
    if _trailing(request) and request.mode != R.MODE_ABORT_WITH_STATUS:
        context.set_trailing_metadata(_trailing(request))
    if request.mode == R.MODE_ABORT:
        context.abort(_code(request), request.details)
    if request.mode == R.MODE_SET_CODE:
        context.set_code(_code(request))
        context.set_details(request.details)
        return conformance_pb2.RespondResponse()
    if request.mode == R.MODE_ABORT_WITH_STATUS:
        context.abort_with_status(_status(request))
    if request.mode == R.MODE_RAISE:
        raise getattr(builtins, request.exception or "RuntimeError")(request.details)
    return conformance_pb2.RespondResponse(text=request.text, peer=context.peer() if request.report_peer else "",
                                           context=_context_report(context, False) if request.report_context else "")


def _context_report(context: Any, is_async: bool) -> str:
    """The call state a servicer can read, as JSON: the same on every transport."""
    report = {
        "is_active": context.is_active(),
        "code": None if context.code() is None else str(context.code()),
        "details": context.details() or "",
        "has_time_remaining": context.time_remaining() is not None,
        "trailing": [list(kv) for kv in context.trailing_metadata() or ()],
        "add_callback": context.add_callback(lambda: None),
    }
    if is_async:
        done_callbacks: list = []
        context.add_done_callback(done_callbacks.append)
        report.update(cancelled=context.cancelled(), done=context.done(), done_callbacks_now=len(done_callbacks))
    return json.dumps(report, sort_keys=True)


async def _answer_async(request: Any, context: Any) -> Any:
    if _initial(request):
        await context.send_initial_metadata(_initial(request))
    if _trailing(request) and request.mode != R.MODE_ABORT_WITH_STATUS:
        context.set_trailing_metadata(_trailing(request))
    if request.mode == R.MODE_ABORT:
        await context.abort(_code(request), request.details)
    if request.mode == R.MODE_SET_CODE:
        context.set_code(_code(request))
        context.set_details(request.details)
        return conformance_pb2.RespondResponse()
    if request.mode == R.MODE_ABORT_WITH_STATUS:
        await context.abort_with_status(_status(request))
    if request.mode == R.MODE_RAISE:
        raise getattr(builtins, request.exception or "RuntimeError")(request.details)
    return conformance_pb2.RespondResponse(text=request.text,
                                           context=_context_report(context, True) if request.report_context else "")


class Conformance(conformance_pb2_grpc.ConformanceServiceServicer):
    def Respond(self, request: Any, context: Any) -> Any:
        return _answer_sync(request, context)

    async def RespondAsync(self, request: Any, context: Any) -> Any:
        return await _answer_async(request, context)

    def Record(self, request: Any, context: Any) -> Any:
        with _lock:
            entry = _executions.setdefault(request.key, [0, 0])
            entry[0] += 1
            count = entry[0]
        if request.block:
            cancelled = threading.Event()
            context.add_callback(cancelled.set)
            while context.is_active() and not cancelled.wait(0.01):
                pass
            with _lock:
                _executions[request.key][1] += 1
        return conformance_pb2.RecordResponse(executions=count, padding=b"p" * request.pad_bytes)

    def Executions(self, request: Any, context: Any) -> Any:
        with _lock:
            executions, cancelled = _executions.get(request.key, [0, 0])
        return conformance_pb2.ExecutionsResponse(executions=executions, cancelled=cancelled)

    def ServerStream(self, request: Any, context: Any) -> Any:
        if _initial(request):
            context.send_initial_metadata(_initial(request))
        for i in range(request.count):
            yield conformance_pb2.RespondResponse(text=request.text, index=i)
        rest = R()
        rest.CopyFrom(request)
        rest.ClearField("initial")
        rest.ClearField("initial_bin")
        answer = _answer_sync(rest, context)
        if request.mode == R.MODE_UNSPECIFIED:
            yield answer

    def ClientStream(self, request_iterator: Any, context: Any) -> Any:
        last = R()
        for request in request_iterator:
            last = request
        return _answer_sync(last, context)

    async def BidiStream(self, request_iterator: Any, context: Any) -> Any:
        # Echoes each request; the first one that asks for a mode ends the call that way at once.
        index = 0
        async for request in request_iterator:
            if request.mode != R.MODE_UNSPECIFIED:
                await _answer_async(request, context)
                return
            yield conformance_pb2.RespondResponse(text=request.text, index=index)
            index += 1


if __name__ == "__main__":
    run_worker((conformance_pb2_grpc.add_ConformanceServiceServicer_to_server, Conformance()))
