"""testing.v1.TestService worker used by procgrpc's integration tests (TS and pytest)."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import threading
import time

# The generated stubs live in <repo>/gen/python (made by scripts/setup.mjs).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

import grpc  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from procgrpc import current_call, errors, get_logger, run_worker, set_serving  # noqa: E402
from testing.v1 import testing_pb2, testing_pb2_grpc  # noqa: E402

_lock = threading.Lock()
calls = 0
cancelled_tags: list = []
leaked: list = []  # Leak keeps its buffers here for the life of the process.


def _count() -> None:
    global calls
    with _lock:
        calls += 1


def _resolve_exception(name: str) -> type:
    if "." in name:
        module, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    import builtins
    return getattr(builtins, name)


class TestService(testing_pb2_grpc.TestServiceServicer):
    def Echo(self, request, context):
        _count()
        remaining = context.time_remaining()
        metadata = {k: v for k, v in context.invocation_metadata() if not k.endswith("-bin")}
        return testing_pb2.EchoResponse(
            text=request.text,
            payload=request.payload,
            worker_pid=os.getpid(),
            time_remaining_seconds=remaining if remaining is not None else -1,
            metadata=metadata,
        )

    async def AsyncEcho(self, request, context):
        _count()
        await asyncio.sleep(0)
        return testing_pb2.AsyncEchoResponse(
            text=request.text, worker_pid=os.getpid(), ran_async=asyncio.current_task() is not None)

    def Sleep(self, request, context):
        _count()
        recorded = threading.Event()

        def record() -> None:
            # Once per call, whether the callback or the polling loop sees it first.
            with _lock:
                if recorded.is_set():
                    return
                recorded.set()
                cancelled_tags.append(request.tag)

        completed = [False]
        context.add_callback(lambda: None if completed[0] else record())
        deadline = time.monotonic() + request.ms / 1000.0
        while time.monotonic() < deadline:
            if not context.is_active():
                record()
                if not request.ignore_cancel:
                    return testing_pb2.SleepResponse(completed=False, worker_pid=os.getpid())
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        completed[0] = True
        return testing_pb2.SleepResponse(completed=True, worker_pid=os.getpid())

    def Fail(self, request, context):
        _count()
        trailers = list(request.trailers.items()) + list(request.binary_trailers.items())
        mode = request.mode
        code = _code(request.code)
        if mode in (testing_pb2.FailRequest.MODE_UNSPECIFIED, testing_pb2.FailRequest.MODE_ABORT):
            if trailers:
                context.set_trailing_metadata(trailers)
            context.abort(code, request.details)
        if mode == testing_pb2.FailRequest.MODE_SET_CODE:
            if trailers:
                context.set_trailing_metadata(trailers)
            context.set_code(code)
            context.set_details(request.details)
            return testing_pb2.FailResponse()
        if mode == testing_pb2.FailRequest.MODE_RAISE:
            raise _resolve_exception(request.exception or "RuntimeError")(request.details)
        if mode == testing_pb2.FailRequest.MODE_ABORT_WITH_STATUS:
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.ErrorInfo(reason="TEST", domain="procgrpc.test"))
            status = rpc_status.to_status(status_pb2.Status(code=request.code, message=request.details,
                                                            details=[detail]))
            merged = _Status(status.code, status.details, tuple(trailers) + tuple(status.trailing_metadata))
            context.abort_with_status(merged)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown mode {mode}")

    def RichFail(self, request, context):
        _count()
        built = [_RICH_DETAILS[d](context) for d in request.details if d in _RICH_DETAILS]
        if request.way == testing_pb2.RichFailRequest.WAY_ABORT_WITH_DETAILS:
            errors.abort_with_details(context, _code(request.code), request.message, *built)
        cls = getattr(errors, request.exception or "Internal")
        if request.retry_after:
            raise cls(request.message, *built, retry_after=request.retry_after)
        raise cls(request.message, *built)

    def SetServing(self, request, context):
        _count()
        set_serving(request.serving)
        return testing_pb2.SetServingResponse(worker_pid=os.getpid())

    def Leak(self, request, context):
        _count()
        # bytes(n) is calloc'd and may stay untouched; writing every page makes it resident.
        buf = bytearray(request.mb * 1024 * 1024)
        for i in range(0, len(buf), 4096):
            buf[i] = 1
        with _lock:
            leaked.append(buf)
            total = sum(len(b) for b in leaked) // (1024 * 1024)
        return testing_pb2.LeakResponse(worker_pid=os.getpid(), leaked_mb=total)

    def Chatter(self, request, context):
        _count()
        line = "x" * 99 + "\n"
        remaining = request.stderr_bytes
        while remaining > 0:
            # Lines of 100 bytes; the last one is shorter but still ends with a newline.
            sys.stderr.write(line if remaining >= len(line) else "x" * (remaining - 1) + "\n")
            remaining -= len(line)
        sys.stderr.flush()
        if request.log_message:
            get_logger().info(request.log_message)
        if request.fail_code:
            context.abort(_code(request.fail_code), f"chatter failed as asked ({request.fail_code})")
        call = current_call()
        return testing_pb2.ChatterResponse(
            worker_pid=os.getpid(),
            request_id=(call.request_id or "") if call else "",
            trace_id=(call.trace_id or "") if call else "",
            parent_span_id=(call.parent_span_id or "") if call else "")

    def Stats(self, request, context):
        _count()
        with _lock:
            return testing_pb2.StatsResponse(worker_pid=os.getpid(), calls=calls, cancelled_tags=list(cancelled_tags))


def _request_id(context) -> str:
    return dict(context.invocation_metadata()).get("x-request-id", "")


def _unknown_detail(context):
    # Packs a message outside google.rpc: clients must keep it raw rather than drop it.
    return testing_pb2.EchoRequest(text="opaque", payload=b"\x00\x01")


_D = testing_pb2.RichFailRequest
_RICH_DETAILS = {
    _D.DETAIL_ERROR_INFO: lambda c: errors.error_info("OUT_OF_STOCK", "shop.example", {"sku": "apple"}),
    _D.DETAIL_RETRY_INFO: lambda c: errors.retry_info(1.5),
    _D.DETAIL_DEBUG_INFO: lambda c: errors.debug_info(["frame one", "frame two"], "explicit debug detail"),
    _D.DETAIL_QUOTA_FAILURE: lambda c: errors.quota_failure({"project:demo": "daily limit reached"}),
    _D.DETAIL_PRECONDITION_FAILURE: lambda c: errors.precondition_failure([("TOS", "user:7", "terms not accepted")]),
    _D.DETAIL_BAD_REQUEST: lambda c: errors.bad_request({"quantity": "must be positive"}),
    _D.DETAIL_REQUEST_INFO: lambda c: errors.request_info(_request_id(c), "served by pid %d" % os.getpid()),
    _D.DETAIL_RESOURCE_INFO: lambda c: errors.resource_info("sku", "apple", "catalog", "not in stock"),
    _D.DETAIL_HELP: lambda c: errors.help({"stock levels": "https://example.invalid/stock"}),
    _D.DETAIL_LOCALIZED_MESSAGE: lambda c: errors.localized_message("fr-FR", "rupture de stock"),
    _D.DETAIL_UNKNOWN: _unknown_detail,
}


class RawService:
    """testing.v1.RawService, served with a pass-through serializer (see add_raw_service)."""

    def Corrupt(self, request, context):
        _count()
        return request.raw


def add_raw_service(servicer, server) -> None:
    # response_serializer=None sends the returned bytes as they are: the generated
    # add_RawServiceServicer_to_server would serialize a CorruptResponse instead.
    handler = grpc.method_handlers_generic_handler("testing.v1.RawService", {
        "Corrupt": grpc.unary_unary_rpc_method_handler(
            servicer.Corrupt, request_deserializer=testing_pb2.CorruptRequest.FromString, response_serializer=None),
    })
    server.add_generic_rpc_handlers((handler,))


class _Status(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _code(number: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


if __name__ == "__main__":
    run_worker((testing_pb2_grpc.add_TestServiceServicer_to_server, TestService()),
               (add_raw_service, RawService()))
