"""Exception mapping, rich details and context behaviour for sync and async servicer methods."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conftest import Worker, eventually
from pipe_client import PipeClient
from procgrpc._services import _pipeline_pb2 as pipeline_pb2
from procgrpc._status.codes import SERVER_FAILURES

from testing.v1 import testing_pb2, testing_pb2_grpc  # noqa: E402

SERVICE = "procgrpc.test.Probe"
FLAVOURS = ["Sync", "Async"]

BUILTINS: List[Tuple[str, grpc.StatusCode]] = [
    ("ValueError", grpc.StatusCode.INVALID_ARGUMENT),
    ("UnicodeDecodeError", None),  # placeholder, replaced below (needs args)
    ("LookupError", grpc.StatusCode.NOT_FOUND),
    ("IndexError", grpc.StatusCode.NOT_FOUND),
    ("PermissionError", grpc.StatusCode.PERMISSION_DENIED),
    ("NotImplementedError", grpc.StatusCode.UNIMPLEMENTED),
    ("TimeoutError", grpc.StatusCode.DEADLINE_EXCEEDED),
    ("ConnectionError", grpc.StatusCode.UNAVAILABLE),
    ("ConnectionRefusedError", grpc.StatusCode.UNAVAILABLE),
    ("MemoryError", grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("OSError", grpc.StatusCode.UNKNOWN),
    ("RuntimeError", grpc.StatusCode.UNKNOWN),
]
BUILTINS = [b for b in BUILTINS if b[1] is not None]

ERROR_CLASSES: List[Tuple[str, grpc.StatusCode]] = [
    ("InvalidArgument", grpc.StatusCode.INVALID_ARGUMENT),
    ("NotFound", grpc.StatusCode.NOT_FOUND),
    ("AlreadyExists", grpc.StatusCode.ALREADY_EXISTS),
    ("PermissionDenied", grpc.StatusCode.PERMISSION_DENIED),
    ("Unauthenticated", grpc.StatusCode.UNAUTHENTICATED),
    ("ResourceExhausted", grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("FailedPrecondition", grpc.StatusCode.FAILED_PRECONDITION),
    ("Aborted", grpc.StatusCode.ABORTED),
    ("OutOfRange", grpc.StatusCode.OUT_OF_RANGE),
    ("Unimplemented", grpc.StatusCode.UNIMPLEMENTED),
    ("Internal", grpc.StatusCode.INTERNAL),
    ("Unavailable", grpc.StatusCode.UNAVAILABLE),
    ("DataLoss", grpc.StatusCode.DATA_LOSS),
    ("DeadlineExceeded", grpc.StatusCode.DEADLINE_EXCEEDED),
    ("Cancelled", grpc.StatusCode.CANCELLED),
    ("Unknown", grpc.StatusCode.UNKNOWN),
]


def call(worker: Worker, method: str, spec: Dict[str, Any], timeout: float = 5,
         metadata: Optional[List[Tuple[str, str]]] = None) -> Any:
    fn = worker.channel().unary_unary(f"/{SERVICE}/{method}")
    return fn(json.dumps(spec).encode(), timeout=timeout, metadata=metadata)


def fail(worker: Worker, method: str, spec: Dict[str, Any], **kw: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(worker, method, spec, **kw)
    return info.value


def details_of(err: grpc.RpcError) -> List[Any]:
    status = rpc_status.from_call(err)
    assert status is not None, "grpc-status-details-bin missing"
    out = []
    for packed in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.DebugInfo, error_details_pb2.RetryInfo,
                    error_details_pb2.BadRequest):
            if packed.Is(cls.DESCRIPTOR):
                msg = cls()
                packed.Unpack(msg)
                out.append(msg)
    return out


def assert_no_traceback(err: grpc.RpcError) -> None:
    blob = (err.details() or "") + repr(err.trailing_metadata())
    assert "Traceback" not in blob and ".py" not in blob
    assert not any(isinstance(d, error_details_pb2.DebugInfo) for d in details_of(err))


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("exc_name,code", BUILTINS)
def test_builtin_exceptions_map(probe_worker: Worker, flavour: str, exc_name: str, code: grpc.StatusCode) -> None:
    err = fail(probe_worker, "Raise" + flavour, {"exception": exc_name, "message": "it broke"},
               metadata=[("x-request-id", "req-map-1")])
    assert err.code() == code
    # A server-side failure shows its class and the request id, never its text (16.15).
    expected = f"{exc_name} (request id req-map-1; details in the worker log)" if code in SERVER_FAILURES else "it broke"
    assert err.details() == expected
    info = [d for d in details_of(err) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert len(info) == 1 and info[0].reason == exc_name and info[0].domain == "python"
    assert info[0].metadata["method"] == f"/{SERVICE}/Raise{flavour}"
    assert_no_traceback(err)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("cls_name,code", ERROR_CLASSES)
def test_error_classes_map(probe_worker: Worker, flavour: str, cls_name: str, code: grpc.StatusCode) -> None:
    err = fail(probe_worker, "Raise" + flavour,
               {"exception": "procgrpc.errors." + cls_name, "message": "nope", "with_details": True})
    assert err.code() == code and err.details() == "nope"
    assert ("x-extra", "1") in list(err.trailing_metadata())
    found = details_of(err)
    assert any(isinstance(d, error_details_pb2.BadRequest) and d.field_violations[0].field == "field" for d in found)
    assert any(isinstance(d, error_details_pb2.ErrorInfo) and d.reason == cls_name for d in found)
    assert_no_traceback(err)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("cls_name", ["Unavailable", "ResourceExhausted"])
def test_retry_after_adds_retry_info(probe_worker: Worker, flavour: str, cls_name: str) -> None:
    err = fail(probe_worker, "Raise" + flavour,
               {"exception": "procgrpc.errors." + cls_name, "message": "later", "retry_after": 1.5})
    retry = [d for d in details_of(err) if isinstance(d, error_details_pb2.RetryInfo)]
    assert len(retry) == 1 and retry[0].retry_delay.seconds == 1 and retry[0].retry_delay.nanos == 500_000_000


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_user_mapping_is_checked_first(probe_worker: Worker, flavour: str) -> None:
    err = fail(probe_worker, "Raise" + flavour, {"exception": "probe_worker.Conflict", "message": "clash"})
    assert err.code() == grpc.StatusCode.ABORTED and err.details() == "clash"
    # KeyError is a LookupError (NOT_FOUND built in) but the user's entry wins.
    err = fail(probe_worker, "Raise" + flavour, {"exception": "KeyError", "message": "k"})
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_debug_mode_adds_debug_info(probe_debug_worker: Worker, flavour: str) -> None:
    err = fail(probe_debug_worker, "Raise" + flavour, {"exception": "RuntimeError", "message": "dbg"})
    # Debug mode shows everything: the text too.
    assert err.details() == "RuntimeError: dbg"
    debug = [d for d in details_of(err) if isinstance(d, error_details_pb2.DebugInfo)]
    assert len(debug) == 1 and any("probe_worker.py" in e for e in debug[0].stack_entries)
    err = fail(probe_debug_worker, "Raise" + flavour, {"exception": "TimeoutError", "message": "db at 10.0.0.7"})
    assert (err.code(), err.details()) == (grpc.StatusCode.DEADLINE_EXCEEDED, "db at 10.0.0.7")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_text_of_a_server_side_failure_never_reaches_the_caller_but_the_log(probe_worker: Worker, flavour: str) -> None:
    secret = "/srv/secret/models/weights-v7.bin"
    err = fail(probe_worker, "Raise" + flavour, {"exception": "FileNotFoundError", "message": secret},
               metadata=[("x-request-id", "req-secret-" + flavour)])
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == f"FileNotFoundError (request id req-secret-{flavour}; details in the worker log)"
    assert secret not in err.details() + repr(err.trailing_metadata())
    # Without a request id the class alone.
    err = fail(probe_worker, "Raise" + flavour, {"exception": "ConnectionError", "message": "db-7.internal:5432"})
    assert (err.code(), err.details()) == (grpc.StatusCode.UNAVAILABLE, "ConnectionError (details in the worker log)")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in probe_worker.stderr_lines() if line.startswith("{")]
        hit = [r for r in records if r.get("request_id") == "req-secret-" + flavour]
        if hit:
            assert hit[0]["level"] == "error" and hit[0]["error"] == secret
            assert secret in hit[0]["traceback"]
            return
        time.sleep(0.05)
    raise AssertionError("error record not found")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_client_errors_and_deliberate_statuses_keep_their_message(probe_worker: Worker, flavour: str) -> None:
    err = fail(probe_worker, "Raise" + flavour, {"exception": "ValueError", "message": "quantity must be > 0"})
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "quantity must be > 0")
    err = fail(probe_worker, "Raise" + flavour, {"exception": "procgrpc.errors.Internal", "message": "cache rebuild failed"})
    assert (err.code(), err.details()) == (grpc.StatusCode.INTERNAL, "cache rebuild failed")
    err = fail(probe_worker, "Raise" + flavour, {"exception": "procgrpc.errors.Unavailable", "message": "warming up"})
    assert (err.code(), err.details()) == (grpc.StatusCode.UNAVAILABLE, "warming up")


def test_errors_are_logged_with_method_request_id_and_traceback(probe_worker: Worker) -> None:
    fail(probe_worker, "RaiseSync", {"exception": "RuntimeError", "message": "logged"},
         metadata=[("x-request-id", "req-123")])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in probe_worker.stderr_lines() if line.startswith("{")]
        hit = [r for r in records if r.get("request_id") == "req-123"]
        if hit:
            assert hit[0]["level"] == "error" and hit[0]["method"] == f"/{SERVICE}/RaiseSync"
            assert "RuntimeError: logged" in hit[0]["traceback"]
            return
        time.sleep(0.05)
    raise AssertionError("error record not found")


# ---------------------------------------------------------------- context methods

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_context_basics(probe_worker: Worker, flavour: str) -> None:
    report = json.loads(call(probe_worker, "Context" + flavour, {"tag": "basic-" + flavour}, timeout=5,
                             metadata=[("x-request-id", "r-9")]))
    assert 0 < report["time_remaining"] <= 5.5
    assert report["is_active"] is True and report["add_callback"] is True
    assert report["metadata"]["x-request-id"] == "r-9"
    report = json.loads(call(probe_worker, "Context" + flavour, {"tag": "nodl"}, timeout=None))
    assert report["time_remaining"] is None
    events = json.loads(call(probe_worker, "Events", {}))
    assert "callback:basic-" + flavour in events


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_abort_passes_through_with_trailers_and_stops_the_method(probe_worker: Worker, flavour: str) -> None:
    tag = "abort-" + flavour
    err = fail(probe_worker, "Context" + flavour, {"tag": tag, "abort": True, "trailers": True})
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and err.details() == "aborted"
    md = dict(err.trailing_metadata())
    assert md["x-trailer"] == "t" and md["x-trailer-bin"] == b"\x01\x02"
    assert "grpc-status-details-bin" not in md  # aborts are not rewritten by the mapper
    # add_callback also fires on abort: after the status went out, so the client may ask first.
    assert eventually(lambda: "callback:" + tag in json.loads(call(probe_worker, "Events", {})))
    assert "after-abort:" + tag not in json.loads(call(probe_worker, "Events", {}))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_set_code_passes_through(probe_worker: Worker, flavour: str) -> None:
    err = fail(probe_worker, "Context" + flavour, {"tag": "sc", "set_code": True, "trailers": True})
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and err.details() == "set by set_code"
    assert dict(err.trailing_metadata())["x-trailer"] == "t"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_abort_with_details(probe_worker: Worker, flavour: str) -> None:
    tag = "awd-" + flavour
    err = fail(probe_worker, "Context" + flavour, {"tag": tag, "abort_with_details": True})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details() == "bad name"
    assert dict(err.trailing_metadata())["x-why"] == "details"
    found = details_of(err)
    assert any(isinstance(d, error_details_pb2.BadRequest) for d in found)
    assert [d.reason for d in found if isinstance(d, error_details_pb2.ErrorInfo)] == ["EMPTY_NAME"]
    assert "after-abort:" + tag not in json.loads(call(probe_worker, "Events", {}))


def test_async_abort_with_status(probe_worker: Worker) -> None:
    err = fail(probe_worker, "ContextAsync", {"tag": "aws", "abort_with_status": True})
    assert err.code() == grpc.StatusCode.DATA_LOSS and err.details() == "lost"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_cancellation_is_visible(probe_worker: Worker, flavour: str) -> None:
    tag = "cancel-" + flavour
    err = fail(probe_worker, "Context" + flavour, {"tag": tag, "sleep_ms": 3000}, timeout=0.3)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    want = {"callback:" + tag, ("inactive:" if flavour == "Sync" else "cancelled:") + tag}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if want <= set(json.loads(call(probe_worker, "Events", {}))):
            return
        time.sleep(0.05)
    raise AssertionError(f"missing {want}")


@pytest.mark.parametrize("transport", ["plain", "pipe"])
def test_an_async_servicer_reads_the_cancellation_from_its_context(probe_worker: Worker, transport: str) -> None:
    """``context.cancelled()``, ``done()`` and ``add_done_callback`` work as in grpc.aio, on the
    plain path and on the pipe."""
    tag = "ctx-cancel-" + transport
    request = json.dumps({"tag": tag, "sleep_ms": 30000}).encode()

    def events() -> set:
        return set(json.loads(call(probe_worker, "Events", {})))

    if transport == "plain":
        held = probe_worker.channel().unary_unary(f"/{SERVICE}/ContextAsync").future(request, timeout=60)
        assert eventually(lambda: "sleeping:" + tag in events())
        held.cancel()
    else:
        pipe = PipeClient(probe_worker.channel())
        pipe.send([pipeline_pb2.PipeCall(call_id=1, method=f"/{SERVICE}/ContextAsync", payload=request, timeout_us=60_000_000)])
        assert eventually(lambda: "sleeping:" + tag in events())
        pipe.send(cancel=[1])
    # Python 3.10 has no Task.cancelling(): the plain path then says what grpc.aio says (False).
    plain_310 = transport == "plain" and sys.version_info < (3, 11)
    want = {f"state:{tag}:cancelled={not plain_310}", f"done-callback:{tag}:done=True"}
    assert eventually(lambda: want <= events()), sorted(e for e in events() if tag in e)


# ---------------------------------------------------------------- streaming

@pytest.mark.parametrize("flavour", FLAVOURS)
def test_server_streaming(probe_worker: Worker, flavour: str) -> None:
    fn = probe_worker.channel().unary_stream(f"/{SERVICE}/Stream{flavour}")
    assert list(fn(json.dumps({"count": 3}).encode(), timeout=5)) == [b"0", b"1", b"2"]
    stream = fn(json.dumps({"count": 2, "fail": True}).encode(), timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        list(stream)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details() == "stream failed"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_stream_cancelled_while_the_server_writes_reaches_the_servicer(probe_worker: Worker, flavour: str) -> None:
    """The client stops reading, so the server blocks writing (flow control) with the servicer at
    its ``yield``; a cancel then still reaches the servicer: ``CancelledError`` at that ``yield``
    for ``async def`` (as at an ``await``), the generator closed for ``def``."""
    tag = "cancel-in-write-" + flavour
    fn = probe_worker.channel().unary_stream(f"/{SERVICE}/Stream{flavour}")
    stream = fn(json.dumps({"endless": True, "size": 1 << 20, "tag": tag}).encode(), timeout=60)
    assert len(next(stream)) == 1 << 20

    def events() -> set:
        return set(json.loads(call(probe_worker, "Events", {})))

    # Past the flow-control window: the server is blocked in a write.
    assert eventually(lambda: f"yield:{tag}:3" in events(), 30), "the servicer never got ahead of the client"
    stream.cancel()
    want = ("cancelled:" if flavour == "Async" else "closed:") + tag
    assert eventually(lambda: want in events(), 30), f"missing {want}: {sorted(e for e in events() if tag in e)[-3:]}"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_client_streaming(probe_worker: Worker, flavour: str) -> None:
    fn = probe_worker.channel().stream_unary(f"/{SERVICE}/Collect{flavour}")
    assert fn(iter([b"a", b"b", b"c"]), timeout=5) == b"a|b|c"


# ---------------------------------------------------------------- the TS test worker

def test_testing_worker_fail_modes(testing_worker: Worker) -> None:
    stub = testing_pb2_grpc.TestServiceStub(testing_worker.channel())
    base = dict(code=grpc.StatusCode.NOT_FOUND.value[0], details="gone", trailers={"k": "v"},
                binary_trailers={"b-bin": b"\x00\xff"})
    for mode in (testing_pb2.FailRequest.MODE_ABORT, testing_pb2.FailRequest.MODE_SET_CODE,
                 testing_pb2.FailRequest.MODE_ABORT_WITH_STATUS):
        with pytest.raises(grpc.RpcError) as info:
            stub.Fail(testing_pb2.FailRequest(mode=mode, **base), timeout=5)
        err = info.value
        md = dict(err.trailing_metadata())
        assert err.code() == grpc.StatusCode.NOT_FOUND and err.details() == "gone"
        assert md["k"] == "v" and md["b-bin"] == b"\x00\xff"
        if mode == testing_pb2.FailRequest.MODE_ABORT_WITH_STATUS:
            assert [(d.reason, d.domain) for d in details_of(err)] == [("TEST", "procgrpc.test")]
    with pytest.raises(grpc.RpcError) as info:
        stub.Fail(testing_pb2.FailRequest(mode=testing_pb2.FailRequest.MODE_RAISE, details="bad",
                                          exception="procgrpc.errors.NotFound"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.Fail(testing_pb2.FailRequest(mode=testing_pb2.FailRequest.MODE_SET_CODE, code=0), timeout=5) \
        == testing_pb2.FailResponse()


def test_testing_worker_sleep_cancel_and_stats(testing_worker: Worker) -> None:
    stub = testing_pb2_grpc.TestServiceStub(testing_worker.channel())
    with pytest.raises(grpc.RpcError):
        stub.Sleep(testing_pb2.SleepRequest(ms=3000, tag="t-cancel"), timeout=0.2)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        stats = stub.Stats(testing_pb2.StatsRequest(), timeout=5)
        if "t-cancel" in stats.cancelled_tags:
            assert list(stats.cancelled_tags).count("t-cancel") == 1
            assert stats.worker_pid == testing_worker.proc.pid and stats.calls >= 2
            break
        time.sleep(0.05)
    else:
        raise AssertionError("cancellation not recorded")
    echo = stub.Echo(testing_pb2.EchoRequest(text="x", payload=b"\x01"), timeout=2, metadata=[("a", "b")])
    assert echo.metadata["a"] == "b" and 0 < echo.time_remaining_seconds <= 2.5 and echo.payload == b"\x01"
    assert stub.Echo(testing_pb2.EchoRequest()).time_remaining_seconds == -1
    assert stub.AsyncEcho(testing_pb2.AsyncEchoRequest(text="y"), timeout=5).ran_async


def test_detail_builders_build_each_google_rpc_type() -> None:
    from procgrpc import errors

    built = [
        errors.error_info("R", "d", {"k": "v"}),
        errors.retry_info(1.25),
        errors.bad_request({"f": "bad"}),
        errors.debug_info(["frame"], "boom"),
        errors.quota_failure({"s": "over"}),
        errors.precondition_failure([("TOS", "user", "not accepted")]),
        errors.resource_info("user", "42", "team", "gone"),
        errors.request_info("req-1", "shard 3"),
        errors.help({"docs": "https://example.invalid"}),
        errors.localized_message("fr-FR", "introuvable"),
    ]
    names = [type(m).DESCRIPTOR.full_name for m in built]
    assert names == ["google.rpc." + n for n in (
        "ErrorInfo", "RetryInfo", "BadRequest", "DebugInfo", "QuotaFailure", "PreconditionFailure",
        "ResourceInfo", "RequestInfo", "Help", "LocalizedMessage")]
    assert built[1].retry_delay.seconds == 1 and built[1].retry_delay.nanos == 250_000_000
    assert built[7].request_id == "req-1" and built[7].serving_data == "shard 3"
    status = errors.build_status(grpc.StatusCode.NOT_FOUND, "m", built)
    from google.rpc import status_pb2
    packed = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    assert [d.type_url.rsplit("/", 1)[1] for d in packed.details] == names
