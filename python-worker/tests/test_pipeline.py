"""The pipeline servicer (procgrpc.internal.v1.PipelineService/Pipe) at the protocol level.

A real worker (test/workers/hostile_worker.py) and a raw client of the pipe, on each carrier (the
gRPC stream, and the socket pair the pool spawns workers with, the default): batching,
cancellation, deadlines, half-close then end, every way of giving a status (compared with the
plain path, which is grpc.aio itself), response headers, and calls that expired before the
worker got to them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Tuple

import grpc
import pytest

from conftest import HOSTILE_WORKER, Worker, eventually, introspect, start_worker
from pipe_client import HOSTILE, PipeClient, SocketPipe, metadata_pairs, pipe_call

FLAVOURS = ["Sync", "Async"]
CODES = [code for code in grpc.StatusCode if code != grpc.StatusCode.OK]


CARRIERS = ["socket-pair", "grpc-stream"]


@pytest.fixture(scope="module")
def socket_pipe(hostile_worker: Worker) -> SocketPipe:
    """The shared worker's socket pair (one pipe for its life; tests get views of it)."""
    assert hostile_worker.pipe is not None
    return SocketPipe(hostile_worker.pipe)


@pytest.fixture(params=CARRIERS)
def pipe(request: Any, hostile_worker: Worker, socket_pipe: SocketPipe) -> Iterator[Any]:
    """A pipe to the worker on each carrier."""
    client = socket_pipe.view() if request.param == "socket-pair" else PipeClient(hostile_worker.channel())
    yield client
    client.close()


def plain(worker: Worker, method: str, spec: Dict[str, Any], timeout: float = 10.0,
          metadata: Tuple[Tuple[str, str], ...] = ()) -> Dict[str, Any]:
    """The same call on its own HTTP/2 stream, as (code, details, payload, trailers, headers)."""
    fn = worker.channel().unary_unary(HOSTILE + method)
    try:
        response, call = fn.with_call(json.dumps(spec).encode(), timeout=timeout, metadata=metadata)
        code, details, payload = 0, "", response
        trailing, initial = call.trailing_metadata(), call.initial_metadata()
    except grpc.RpcError as exc:
        code, details, payload = exc.code().value[0], exc.details(), b""
        trailing, initial = exc.trailing_metadata(), exc.initial_metadata()
    return {"code": code, "details": details, "payload": payload,
            "trailing": _pairs(trailing), "initial": _pairs(initial)}


def _pairs(metadata: Any) -> List[Tuple[str, bytes]]:
    return sorted((k, v if isinstance(v, bytes) else v.encode()) for k, v in (metadata or ()))


def piped(result: Any) -> Dict[str, Any]:
    return {"code": result.code, "details": result.details, "payload": result.payload,
            "trailing": metadata_pairs(result.trailing_metadata), "initial": metadata_pairs(result.initial_metadata)}


def runs(worker: Worker) -> Dict[str, int]:
    """How many times each Hostile method's body ran in the worker."""
    return json.loads(plain(worker, "Runs", {})["payload"])["runs"]  # type: ignore[no-any-return]


def test_one_batch_of_calls_is_answered_once_each_in_fewer_messages(pipe: PipeClient) -> None:
    calls = [pipe_call(i, "CountAsync" if i % 2 else "CountSync", {}) for i in range(1, 61)]
    pipe.send(calls)
    assert pipe.wait(lambda: len(pipe.results) == 60)
    assert all(len(r) == 1 and r[0].code == 0 for r in pipe.results.values())
    # Results that are ready together share a stream message.
    assert len(pipe.messages) < 60


def test_on_the_socket_pair_a_long_batch_is_answered_in_parts_of_16(socket_pipe: SocketPipe) -> None:
    # So that the pool resolves the first calls while the worker still runs the rest.
    pipe = socket_pipe.view()
    pipe.send([pipe_call(i, "CountAsync", {}) for i in range(1, 41)])
    assert pipe.wait(lambda: len(pipe.results) == 40)
    assert all(len(r) == 1 and r[0].code == 0 for r in pipe.results.values())
    sizes = [len(m.results) for m in pipe.messages]
    assert max(sizes) <= 16 and len(sizes) >= 3, sizes


def test_a_cancelled_call_gets_no_answer_and_its_handler_sees_the_cancellation(pipe: PipeClient, hostile_worker: Worker) -> None:
    pipe.send([pipe_call(1, "HoldSync", {"tag": "cancel-me-" + pipe.carrier, "seconds": 30}, metadata=[("x-request-id", "held-1")])])
    assert eventually(lambda: "held-1" in running_request_ids(hostile_worker))
    pipe.send(cancel=[1])
    # The handler saw is_active() turn False and returned; the pipe keeps serving.
    assert eventually(lambda: "held-1" not in running_request_ids(hostile_worker))
    pipe.send([pipe_call(2, "CountSync", {})])
    assert pipe.result(2).code == 0
    assert 1 not in pipe.results


def running(worker: Worker) -> List[Dict[str, Any]]:
    """The handlers running in the worker."""
    return introspect(worker)["running"]  # type: ignore[no-any-return]


def running_request_ids(worker: Worker) -> List[str]:
    return [r["requestId"] for r in running(worker)]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_running_reports_the_call_id_of_pipe_calls(hostile_worker: Worker, pipe: PipeClient, flavour: str) -> None:
    tag = "call-id-" + flavour + "-" + pipe.carrier
    pipe.send([pipe_call(i, "Hold" + flavour, {"tag": tag, "seconds": 30},
                         metadata=[("x-request-id", tag), ("procgrpc-call-id", f"{flavour}-{i}")])
               for i in (1, 2)])
    assert eventually(lambda: len([r for r in running(hostile_worker) if r["requestId"] == tag]) == 2)
    ids = sorted(r["callId"] for r in running(hostile_worker) if r["requestId"] == tag)
    assert ids == [f"{flavour}-1", f"{flavour}-2"]
    pipe.send([pipe_call(3, "Release", {"tag": tag})])
    assert pipe.wait(lambda: 1 in pipe.results and 2 in pipe.results)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_request_id_and_attempt_id_fields_reach_the_handler_as_metadata(hostile_worker: Worker, pipe: PipeClient,
                                                                            flavour: str) -> None:
    tag = "id-fields-" + flavour + "-" + pipe.carrier
    call = pipe_call(1, "Hold" + flavour, {"tag": tag, "seconds": 30})
    call.request_id, call.attempt_id = "fields-" + tag, "attempt-" + flavour
    pipe.send([call])
    assert eventually(lambda: any(r["requestId"] == "fields-" + tag for r in running(hostile_worker)))
    assert [r["callId"] for r in running(hostile_worker) if r["requestId"] == "fields-" + tag] == ["attempt-" + flavour]
    pipe.send([pipe_call(2, "Release", {"tag": tag})])
    assert pipe.result(1).code == 0


def test_many_calls_that_finish_at_once_and_some_that_wait_share_one_pipe(hostile_worker: Worker, pipe: PipeClient) -> None:
    """Handlers that do not suspend (answered in their first step on Python >= 3.12) and handlers
    that do, in one batch: each answered once, the waiting ones still cancelled by their deadline."""
    calls = [pipe_call(i, "StatusAsync", {"way": "set_code", "code": 5, "as": "enum", "details": "d"}) for i in range(1, 51)]
    calls += [pipe_call(100 + i, "HoldAsync", {"tag": "never-mixed", "seconds": 30}, timeout_s=0.2 + i / 100) for i in range(5)]
    pipe.send(calls)
    assert all(pipe.result(i).code == grpc.StatusCode.NOT_FOUND.value[0] for i in range(1, 51))
    assert all(pipe.result(100 + i).code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0] for i in range(5))
    assert len(pipe.results) == 55 and all(len(answers) == 1 for answers in pipe.results.values())


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_deadline_that_passes_answers_deadline_exceeded(pipe: PipeClient, flavour: str) -> None:
    pipe.send([pipe_call(1, "Hold" + flavour, {"tag": "never-" + flavour + "-" + pipe.carrier, "seconds": 30}, timeout_s=0.2)])
    result = pipe.result(1)
    assert (result.code, result.details) == (grpc.StatusCode.DEADLINE_EXCEEDED.value[0], "Deadline Exceeded")


def test_after_a_half_close_every_running_call_is_answered_and_the_stream_ends(hostile_worker: Worker) -> None:
    # Results finishing while the last batch is being written used to leave the writer waiting
    # for a wake-up nobody sent: the stream never ended. Many rounds make that interleaving likely.
    for round_ in range(40):
        pipe = PipeClient(hostile_worker.channel())
        try:
            _half_close_round(pipe, round_)
        finally:
            pipe.close()


def test_after_a_half_close_of_the_socket_pair_every_running_call_is_answered_and_it_ends(tmpdir_short: str) -> None:
    # A socket pair carries one pipe: a worker per round.
    for round_ in range(6):
        worker = start_worker(HOSTILE_WORKER, os.path.join(tmpdir_short, f"h{round_}.sock"), pipe=True)
        try:
            assert worker.ready is not None and worker.ready.get("pipe") == "socket"
            assert worker.pipe is not None
            _half_close_round(SocketPipe(worker.pipe).view(), round_)
        finally:
            worker.stop()


def _half_close_round(pipe: Any, round_: int) -> None:
    """30 calls, some finishing as the pipe half-closes: each answered once, then the pipe ends."""
    calls = [pipe_call(i, ("HoldAsync", "CountAsync", "CountSync")[i % 3],
                       {"tag": "none", "seconds": 0.001 * (i % 7)}) for i in range(1, 31)]
    pipe.send(calls)
    pipe.half_close()
    assert pipe.wait_ended() == grpc.StatusCode.OK, f"round {round_}: the pipe did not end"
    assert sorted(pipe.results) == list(range(1, 31))
    assert all(len(r) == 1 for r in pipe.results.values())


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("way", ["set_code", "abort", "abort_with_status", "set_code_then_raise"])
@pytest.mark.parametrize("form", ["enum", "int"])
def test_every_status_form_answers_as_on_the_plain_path(hostile_worker: Worker, pipe: PipeClient,
                                                          flavour: str, way: str, form: str) -> None:
    for n, code in enumerate(CODES, start=1):
        spec = {"way": way, "code": code.value[0], "as": form, "details": f"set {code.name} ✓ 𝄞 "}
        pipe.send([pipe_call(n, "Status" + flavour, spec)])
        got, want = piped(pipe.result(n)), plain(hostile_worker, "Status" + flavour, spec)
        assert got == want, f"{way}({form} {code.name})"
        assert got["code"] == code.value[0]
        if way != "set_code_then_raise":
            assert got["details"] == spec["details"]
            assert ("x-trailer", b"t") in got["trailing"] and ("x-trailer-bin", b"\x01\x02") in got["trailing"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_initial_metadata_sent_before_the_result_arrives_at_once(hostile_worker: Worker, pipe: PipeClient,
                                                                  flavour: str) -> None:
    tag = "headers-" + flavour + "-" + pipe.carrier
    pipe.send([pipe_call(1, "Headers" + flavour, {"times": 1, "tag": tag})])
    # The handler is still parked after sending its headers: they are here before its result.
    assert pipe.wait(lambda: 1 in pipe.headers)
    assert 1 not in pipe.results
    assert metadata_pairs(pipe.headers[1][0].metadata) == [("x-header", b"0"), ("x-header-bin", b"\x00\x01")]
    pipe.send([pipe_call(2, "Release", {"tag": tag})])
    result = pipe.result(1)
    assert result.code == 0
    assert pipe.events.index(("header", 1)) < pipe.events.index(("result", 1))
    assert len(pipe.headers[1]) == 1
    # Readers that predate PipeHeader still find the headers in the result.
    assert metadata_pairs(result.initial_metadata) == [("x-header", b"0"), ("x-header-bin", b"\x00\x01")]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_without_explicit_headers_initial_metadata_travels_in_the_result(pipe: PipeClient, flavour: str) -> None:
    pipe.send([pipe_call(1, "Count" + flavour, {})])
    assert pipe.result(1).code == 0
    assert pipe.headers == {}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_second_send_initial_metadata_fails_as_in_grpc_aio(hostile_worker: Worker, pipe: PipeClient,
                                                              flavour: str) -> None:
    spec = {"times": 2}
    pipe.send([pipe_call(1, "Headers" + flavour, spec)])
    got, want = piped(pipe.result(1)), plain(hostile_worker, "Headers" + flavour, spec)
    assert got["code"] == want["code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert got["details"] == want["details"]
    assert got["initial"] == want["initial"] == [("x-header", b"0"), ("x-header-bin", b"\x00\x01")]
    assert len(pipe.headers[1]) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_call_whose_deadline_passed_before_the_worker_got_to_it_never_runs(hostile_worker: Worker,
                                                                              pipe: PipeClient, flavour: str) -> None:
    before = runs(hostile_worker).get("Count" + flavour, 0)
    # 1 µs left when sent: expired by the time the worker starts it.
    pipe.send([pipe_call(i, "Count" + flavour, {}, timeout_s=1e-6) for i in range(1, 21)])
    assert pipe.wait(lambda: len(pipe.results) == 20)
    assert {(r[0].code, r[0].details) for r in pipe.results.values()} == {
        (grpc.StatusCode.DEADLINE_EXCEEDED.value[0], "Deadline Exceeded")}
    assert runs(hostile_worker).get("Count" + flavour, 0) == before


def test_an_unknown_method_is_unimplemented(pipe: PipeClient) -> None:
    pipe.send([pipe_call(1, "NoSuchMethod", {})])
    result = pipe.result(1)
    assert (result.code, result.details) == (grpc.StatusCode.UNIMPLEMENTED.value[0],
                                              "Method not found: /procgrpc.test.Hostile/NoSuchMethod")
