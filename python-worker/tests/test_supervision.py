"""What the Node pool's supervision relies on: set_serving and the Running introspection."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import procgrpc
from conftest import TESTING_WORKER, Worker, eventually, introspect, short_tmpdir, start_worker

from testing.v1 import testing_pb2, testing_pb2_grpc  # noqa: E402

SERVICE = "testing.v1.TestService"


@pytest.fixture()
def worker() -> Iterator[Worker]:
    directory = short_tmpdir()
    w = start_worker(TESTING_WORKER, os.path.join(directory, "sup.sock"), env={"PROCGRPC_MAX_CONCURRENCY": "4"})
    yield w
    w.stop()
    os.rmdir(directory)


def _health(worker: Worker, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(worker.channel())
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status  # type: ignore[no-any-return]


def _running(worker: Worker) -> Dict[str, Any]:
    return introspect(worker)


def _stub(worker: Worker) -> testing_pb2_grpc.TestServiceStub:
    return testing_pb2_grpc.TestServiceStub(worker.channel())


def test_set_serving_flips_health_for_the_server_and_every_service(worker: Worker) -> None:
    stub = _stub(worker)
    assert stub.SetServing(testing_pb2.SetServingRequest(serving=False), timeout=5).worker_pid == worker.proc.pid
    assert _health(worker) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert _health(worker, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    # A NOT_SERVING worker still answers calls: keeping traffic away is the pool's job.
    assert stub.Echo(testing_pb2.EchoRequest(text="still here"), timeout=5).text == "still here"
    stub.SetServing(testing_pb2.SetServingRequest(serving=True), timeout=5)
    assert _health(worker) == health_pb2.HealthCheckResponse.SERVING
    assert _health(worker, SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_set_serving_outside_a_worker_raises_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="only inside a running procgrpc worker"):
        procgrpc.set_serving(False)


def test_running_lists_a_handler_that_ignores_cancellation_until_it_returns(worker: Worker) -> None:
    stub = _stub(worker)
    assert _running(worker)["running"] == []
    md = (("x-request-id", "runaway-1"),)
    future = stub.Sleep.future(testing_pb2.SleepRequest(ms=3000, ignore_cancel=True), timeout=1.0, metadata=md)
    assert eventually(lambda: _running(worker)["running"])
    with pytest.raises(grpc.RpcError) as info:
        future.result()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The call is over for grpc, but its thread still runs: Running says so.
    listed = _running(worker)["running"]
    assert [(r["requestId"], r["method"]) for r in listed] == [("runaway-1", "/testing.v1.TestService/Sleep")]
    assert listed[0]["seconds"] >= 0.2
    assert eventually(lambda: not _running(worker)["running"])


def test_running_reports_each_calls_own_call_id_even_when_request_ids_repeat(worker: Worker) -> None:
    stub = _stub(worker)
    calls = [(("x-request-id", "shared"), ("procgrpc-call-id", "attempt-1")),
             (("x-request-id", "shared"), ("procgrpc-call-id", "attempt-2")),
             (("x-request-id", "no-call-id"),)]
    futures = [stub.Sleep.future(testing_pb2.SleepRequest(ms=1500), timeout=10, metadata=md) for md in calls]
    assert eventually(lambda: len(_running(worker)["running"]) == 3)
    listed = sorted((r["callId"], r["requestId"], r["method"]) for r in _running(worker)["running"])
    assert listed == [("", "no-call-id", "/testing.v1.TestService/Sleep"),
                      ("attempt-1", "shared", "/testing.v1.TestService/Sleep"),
                      ("attempt-2", "shared", "/testing.v1.TestService/Sleep")]
    assert all(f.result().completed for f in futures)


def test_running_forgets_a_handler_that_honours_cancellation(worker: Worker) -> None:
    md = (("x-request-id", "polite-1"),)
    with pytest.raises(grpc.RpcError):
        _stub(worker).Sleep(testing_pb2.SleepRequest(ms=5000), timeout=0.2, metadata=md)
    assert eventually(lambda: _running(worker)["running"] == [])
    assert _running(worker)["pid"] == worker.proc.pid


def test_health_checks_are_answered_with_every_servicer_slot_busy(worker: Worker) -> None:
    # PROCGRPC_MAX_CONCURRENCY=4: four calls fill the servicer limit; health must still answer.
    futures = [_stub(worker).Sleep.future(testing_pb2.SleepRequest(ms=3000), timeout=30) for _ in range(4)]
    assert eventually(lambda: len(_running(worker)["running"]) == 4)
    assert _health(worker) == health_pb2.HealthCheckResponse.SERVING
    assert all(f.result().completed for f in futures)
