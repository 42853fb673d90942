"""Kill switches enforced by the worker itself (``procgrpc.internal.v1.KillSwitch``).

A real worker (test/workers/hostile_worker.py) started as the pool starts it, with a control
token and the switches in force at spawn: refused calls never run servicer code, on the plain
path and on the pipe, with the pool's UNAVAILABLE + ErrorInfo ``SWITCHED_OFF``; only the token
may change the set; a stale generation cannot undo a change; calls already running finish;
internal services are never switched off.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import HOSTILE_WORKER, Worker, eventually, start_worker
from pipe_client import HOSTILE, PipeClient, pipe_call

TOKEN = "test-control-token-0123456789"
SET = "/procgrpc.internal.v1.KillSwitch/Set"
COUNT_SYNC = HOSTILE + "CountSync"


@pytest.fixture()
def worker(tmpdir_short: str) -> Iterator[Worker]:
    w = start_worker(HOSTILE_WORKER, os.path.join(tmpdir_short, "ks.sock"), env={
        "PROCGRPC_CONTROL_TOKEN": TOKEN,
        "PROCGRPC_SWITCHED_OFF": f"{COUNT_SYNC},testing.v1.TestService",
        "PROCGRPC_SWITCHED_OFF_GENERATION": "3",
    })
    yield w
    w.stop()


def call(worker: Worker, method: str, spec: Optional[Dict[str, Any]] = None) -> Tuple[grpc.StatusCode, str, Any]:
    """A plain unary call with a JSON request (an empty, valid proto message for TestService):
    (code, details, decoded response or trailers)."""
    fn = worker.channel().unary_unary(method)
    proto = method.startswith("/testing.")
    try:
        response = fn(b"" if proto else json.dumps(spec or {}).encode(), timeout=10)
        return grpc.StatusCode.OK, "", None if proto else json.loads(response)
    except grpc.RpcError as exc:
        return exc.code(), exc.details(), exc.trailing_metadata()


def error_info(trailing: Any) -> Dict[str, Any]:
    """The ErrorInfo in grpc-status-details-bin, as a dict."""
    raw = dict(trailing or ()).get("grpc-status-details-bin")
    assert raw is not None, "no grpc-status-details-bin"
    status = status_pb2.Status.FromString(raw)
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return {"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)}
    raise AssertionError("no ErrorInfo")


def runs(worker: Worker) -> Dict[str, int]:
    code, _details, body = call(worker, HOSTILE + "Runs")
    assert code == grpc.StatusCode.OK
    return body["runs"]  # type: ignore[no-any-return]


def set_switches(worker: Worker, targets: List[str], generation: int,
                 token: Optional[str] = TOKEN) -> Dict[str, Any]:
    request = struct_pb2.Struct()
    request.update({"targets": targets, "generation": generation})
    fn = worker.channel().unary_unary(SET, request_serializer=struct_pb2.Struct.SerializeToString,
                                      response_deserializer=struct_pb2.Struct.FromString)
    metadata = () if token is None else (("procgrpc-control-token", token),)
    response = fn(request, timeout=10, metadata=metadata)
    return {"targets": list(response["targets"]), "generation": int(response["generation"])}


def test_switched_off_methods_and_services_are_refused_on_the_plain_path_without_running(worker: Worker) -> None:
    code, details, trailing = call(worker, COUNT_SYNC)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert details.startswith(f"{COUNT_SYNC} is switched off")
    assert error_info(trailing) == {"reason": "SWITCHED_OFF", "domain": "procgrpc",
                                    "metadata": {"method": COUNT_SYNC, "target": COUNT_SYNC}}
    code, details, trailing = call(worker, "/testing.v1.TestService/Echo")
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "(service testing.v1.TestService)" in details
    assert error_info(trailing)["metadata"] == {"method": "/testing.v1.TestService/Echo", "target": "testing.v1.TestService"}
    assert "CountSync" not in runs(worker)
    assert call(worker, HOSTILE + "CountAsync")[0] == grpc.StatusCode.OK


def test_the_pipe_refuses_the_same_way(worker: Worker) -> None:
    pipe = PipeClient(worker.channel())
    try:
        pipe.send([pipe_call(1, "CountSync", {}), pipe_call(2, "CountAsync", {})])
        refused, served = pipe.result(1), pipe.result(2)
        assert refused.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert refused.details.startswith(f"{COUNT_SYNC} is switched off")
        assert error_info([(e.key, e.value) for e in refused.trailing_metadata])["reason"] == "SWITCHED_OFF"
        assert served.code == 0
    finally:
        pipe.close()
    assert "CountSync" not in runs(worker)


def test_only_the_pools_token_changes_the_switches_and_a_stale_set_changes_nothing(worker: Worker) -> None:
    for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED), ("wrong", grpc.StatusCode.UNAUTHENTICATED)):
        with pytest.raises(grpc.RpcError) as refused:
            set_switches(worker, [], 99, token=token)
        assert refused.value.code() == code
    assert call(worker, COUNT_SYNC)[0] == grpc.StatusCode.UNAVAILABLE  # unchanged

    assert set_switches(worker, [HOSTILE + "CountAsync"], 4) == {"targets": [HOSTILE + "CountAsync"], "generation": 4}
    assert call(worker, COUNT_SYNC)[0] == grpc.StatusCode.OK
    assert call(worker, "/testing.v1.TestService/Echo")[0] == grpc.StatusCode.OK
    assert call(worker, HOSTILE + "CountAsync")[0] == grpc.StatusCode.UNAVAILABLE
    # An older set (a push overtaken by a newer one) is ignored; the answer is the set in force.
    assert set_switches(worker, [], 2) == {"targets": [HOSTILE + "CountAsync"], "generation": 4}
    with pytest.raises(grpc.RpcError) as bad:
        set_switches(worker, ["not a target"], 5)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set_switches(worker, [], 5) == {"targets": [], "generation": 5}
    assert call(worker, HOSTILE + "CountAsync")[0] == grpc.StatusCode.OK


def test_a_call_already_running_finishes_and_internal_services_cannot_be_switched_off(worker: Worker) -> None:
    channel = worker.channel()
    held = channel.unary_unary(HOSTILE + "HoldSync").future(json.dumps({"tag": "ks-held", "seconds": 60}).encode(), timeout=30)
    assert eventually(lambda: runs(worker).get("HoldSync", 0) == 1)
    internal = ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                "procgrpc.internal.v1.PipelineService", "procgrpc.internal.v1.Worker", "procgrpc.internal.v1.KillSwitch"]
    set_switches(worker, [HOSTILE + "HoldSync"] + internal, 10)
    assert call(worker, HOSTILE + "Release", {"tag": "ks-held"})[0] == grpc.StatusCode.OK
    assert json.loads(held.result(timeout=30)) == {"completed": True}
    assert call(worker, HOSTILE + "HoldSync", {"seconds": 0})[0] == grpc.StatusCode.UNAVAILABLE
    # Health, the pipe, introspection and the kill switch service itself still answer.
    assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING
    pipe = PipeClient(channel)
    try:
        pipe.send([pipe_call(1, "CountAsync", {})])
        assert pipe.result(1).code == 0
    finally:
        pipe.close()
    assert set_switches(worker, [], 11)["targets"] == []


def test_a_worker_without_a_control_token_lets_nobody_set_switches(tmpdir_short: str) -> None:
    w = start_worker(HOSTILE_WORKER, os.path.join(tmpdir_short, "ks-none.sock"))
    try:
        for token in (None, TOKEN):
            with pytest.raises(grpc.RpcError) as refused:
                set_switches(w, [COUNT_SYNC], 1, token=token)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert call(w, COUNT_SYNC)[0] == grpc.StatusCode.OK
    finally:
        w.stop()


def test_the_token_is_not_left_in_the_servicers_environment(worker: Worker) -> None:
    code, _details, body = call(worker, HOSTILE + "Env", {"names": ["PROCGRPC_CONTROL_TOKEN", "PROCGRPC_WORKER_ID"]})
    assert code == grpc.StatusCode.OK
    assert body["env"] == {"PROCGRPC_WORKER_ID": "w-test"}
