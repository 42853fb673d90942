"""A worker that stops with calls still running ends them itself, on every transport.

After its drain grace (PROCGRPC_GRACE_SECONDS) the worker answers every call still in servicer
code with UNAVAILABLE "worker is shutting down" and the trailer ``procgrpc-worker-stopping: 1``
(so the pool can tell a stopping worker from a broken one), ends its pipes, and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any, Dict, List, Tuple

import grpc
import pytest
from conftest import HERE, HOSTILE_WORKER, Worker, eventually, introspect, loop_blocked, short_tmpdir, start_worker
from pipe_client import HOSTILE, PipeClient, metadata_pairs, pipe_call

STOPPING = (grpc.StatusCode.UNAVAILABLE.value[0], "worker is shutting down")
MARKER = ("procgrpc-worker-stopping", b"1")


def _plain_async(worker: Worker, method: str, spec: Dict[str, Any], out: List[Tuple[int, str, Any]]) -> threading.Thread:
    def run() -> None:
        fn = worker.channel().unary_unary(HOSTILE + method)
        try:
            fn(json.dumps(spec).encode(), timeout=30)
            out.append((0, "", ()))
        except grpc.RpcError as exc:
            out.append((exc.code().value[0], exc.details(), exc.trailing_metadata()))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _running(worker: Worker, count: int) -> None:
    fn = worker.channel().unary_unary(HOSTILE + "Runs")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        runs = json.loads(fn(b"{}", timeout=5))["runs"]
        if runs.get("HoldSync", 0) + runs.get("HoldAsync", 0) >= count:
            return
        time.sleep(0.02)
    raise AssertionError("the held calls did not start")


@pytest.mark.parametrize("half_closed", [False, True], ids=["open pipe", "half-closed pipe"])
@pytest.mark.parametrize("ignore_cancel", [False, True])
def test_calls_still_running_after_the_grace_get_the_stopping_status_on_both_transports(ignore_cancel: bool,
                                                                                          half_closed: bool) -> None:
    path = os.path.join(short_tmpdir(), "stop.sock")
    worker = start_worker(HOSTILE_WORKER, path, env={"PROCGRPC_GRACE_SECONDS": "0.5"})
    try:
        plain: List[Tuple[int, str, Any]] = []
        threads = [_plain_async(worker, m, {"seconds": 60, "ignore_cancel": ignore_cancel}, plain)
                   for m in ("HoldSync", "HoldAsync")]
        pipe = PipeClient(worker.channel())
        pipe.send([pipe_call(1, "HoldSync", {"seconds": 60, "ignore_cancel": ignore_cancel}),
                   pipe_call(2, "HoldAsync", {"seconds": 60})])
        _running(worker, 4)
        if half_closed:
            pipe.half_close()  # what the pool does first when it stops a worker
        worker.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(20)
        assert len(plain) == 2
        for code, details, trailing in plain:
            assert (code, details) == STOPPING
            assert (MARKER[0], MARKER[1].decode()) in tuple(trailing)
        for call_id in (1, 2):
            result = pipe.result(call_id)
            assert (result.code, result.details) == STOPPING
            assert metadata_pairs(result.trailing_metadata) == [MARKER]
        # The pipe ends normally after its last batch; the worker exits by itself.
        assert pipe.wait_ended() == grpc.StatusCode.OK
        assert worker.wait(timeout=20) == 0
        assert not os.path.exists(path)
        lines = [json.loads(line) for line in worker.stderr_lines() if line.startswith("{")]
        assert any(r["msg"] == "drain grace expired; calls still running were ended" and r["ended"] == 4
                   for r in lines)
    finally:
        worker.stop()


def test_calls_that_finish_within_the_grace_are_answered_normally() -> None:
    path = os.path.join(short_tmpdir(), "stop.sock")
    worker = start_worker(HOSTILE_WORKER, path, env={"PROCGRPC_GRACE_SECONDS": "10"})
    try:
        pipe = PipeClient(worker.channel())
        pipe.send([pipe_call(1, "HoldAsync", {"seconds": 0.3})])
        _running(worker, 1)
        worker.proc.send_signal(signal.SIGTERM)
        assert pipe.result(1).code == 0
        assert pipe.wait_ended() == grpc.StatusCode.OK
        assert worker.wait(timeout=20) == 0
    finally:
        worker.stop()


def test_a_worker_whose_interpreter_hangs_while_exiting_is_ended_by_the_kernel() -> None:
    # A destructor that blocks while the interpreter tears modules down: no Python thread can
    # run any more (the last-resort exit timer included), so only SIGALRM's default action
    # (armed by exit_process, EXIT_BOUND_SECONDS) ends the process.
    path = os.path.join(short_tmpdir(), "exit-hang.sock")
    worker = start_worker(os.path.join(HERE, "workers", "exit_hang_worker.py"), path, env={"PROCGRPC_GRACE_SECONDS": "0.5"})
    try:
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=120) == -signal.SIGALRM
        assert not os.path.exists(path)  # removed before the interpreter began to exit
        assert any("stopping" in line for line in worker.stderr_lines())  # it did stop in order first
    finally:
        worker.stop()


@pytest.mark.parametrize("method", ["Count", "AsyncCount"])
def test_a_server_stream_still_open_after_the_grace_ends_with_the_stopping_status(method: str) -> None:
    from testing.v1 import streaming_pb2
    path = os.path.join(short_tmpdir(), "stream.sock")
    script = os.path.join(os.path.dirname(HOSTILE_WORKER), "streaming_worker.py")
    worker = start_worker(script, path, env={"PROCGRPC_GRACE_SECONDS": "0.5"})
    try:
        request_type = streaming_pb2.CountRequest if method == "Count" else streaming_pb2.AsyncCountRequest
        response_type = streaming_pb2.CountResponse if method == "Count" else streaming_pb2.AsyncCountResponse
        stream = worker.channel().unary_stream(f"/testing.v1.StreamingTestService/{method}",
                                               request_serializer=request_type.SerializeToString,
                                               response_deserializer=response_type.FromString)
        call = stream(request_type(n=100_000, interval_ms=20), timeout=30)
        next(call)  # the stream is open and producing
        worker.proc.send_signal(signal.SIGTERM)
        with pytest.raises(grpc.RpcError) as info:
            for _ in call:
                pass
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNAVAILABLE, "worker is shutting down")
        assert (MARKER[0], MARKER[1].decode()) in tuple(info.value.trailing_metadata() or ())
        assert worker.wait(timeout=20) == 0
    finally:
        worker.stop()


@pytest.mark.parametrize("flavour", ["Sync", "Async"])
def test_on_the_plain_path_a_call_whose_deadline_passed_while_it_waited_never_runs(flavour: str) -> None:
    # One pool thread (def) or one event loop (async def), both busy: the next call waits past
    # its deadline before the worker gets to it.
    path = os.path.join(short_tmpdir(), "late.sock")
    worker = start_worker(HOSTILE_WORKER, path, env={"PROCGRPC_THREADS": "1"})
    try:
        busy_method, busy = ("HoldSync", {"seconds": 1.0}) if flavour == "Sync" else ("BlockLoop", {"seconds": 1.0})
        held = worker.channel().unary_unary(HOSTILE + busy_method).future(json.dumps(busy).encode(), timeout=30)
        if flavour == "Sync":  # the thread is taken once Running (served on the loop) lists HoldSync
            assert eventually(lambda: any(r["method"].endswith("/HoldSync") for r in introspect(worker)["running"]))
        else:  # the loop is taken once it stops answering health checks
            assert eventually(lambda: loop_blocked(worker))
        with pytest.raises(grpc.RpcError) as info:
            worker.channel().unary_unary(HOSTILE + "Count" + flavour)(b"{}", timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        held.result(timeout=30)
        runs = json.loads(worker.channel().unary_unary(HOSTILE + "Runs")(b"{}", timeout=10))["runs"]
        assert runs.get("Count" + flavour, 0) == 0
    finally:
        worker.stop()

