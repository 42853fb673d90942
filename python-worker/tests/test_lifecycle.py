"""Start-up, socket guard, health, reflection, shutdown and parent death on real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import List

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import (HOSTILE_WORKER, TESTING_WORKER, Worker, alive, eventually, group_members, introspect, loop_blocked, short_tmpdir,
                      start_worker)

from testing.v1 import testing_pb2, testing_pb2_grpc  # noqa: E402

SERVICE = "testing.v1.TestService"


def _health(worker: Worker, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(worker.channel())
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status  # type: ignore[no-any-return]


def _reflection_services(worker: Worker) -> list:
    stub = reflection_pb2_grpc.ServerReflectionStub(worker.channel())
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    return [s.name for r in responses for s in r.list_services_response.service]


def _logs(worker: Worker) -> list:
    return [json.loads(line) for line in worker.stderr_lines() if line.startswith("{")]


def test_ready_line_health_and_reflection(testing_worker: Worker) -> None:
    ready = testing_worker.ready
    assert ready == {"event": "ready", "pid": testing_worker.proc.pid,
                     "socket": testing_worker.socket_path, "services": [SERVICE, "testing.v1.RawService"]}
    assert _health(testing_worker) == health_pb2.HealthCheckResponse.SERVING
    assert _health(testing_worker, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    names = set(_reflection_services(testing_worker))
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    echo = testing_pb2_grpc.TestServiceStub(testing_worker.channel()).Echo(
        testing_pb2.EchoRequest(text="hi"), timeout=5)
    assert echo.worker_pid == testing_worker.proc.pid


def test_live_socket_is_refused_and_first_worker_keeps_serving(testing_worker: Worker) -> None:
    second = start_worker(TESTING_WORKER, testing_worker.socket_path, wait_ready=False)
    try:
        assert second.wait(timeout=10) == 3
        logs = _logs(second)
        assert any(r["level"] == "error" and testing_worker.socket_path in r["msg"] for r in logs)
    finally:
        second.stop()
    assert os.path.exists(testing_worker.socket_path)
    assert _health(testing_worker) == health_pb2.HealthCheckResponse.SERVING


def test_stale_socket_is_removed() -> None:
    directory = short_tmpdir()
    path = os.path.join(directory, "stale.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)  # bound, never listening, then closed: a stale socket file
    sock.close()
    worker = start_worker(TESTING_WORKER, path)
    try:
        assert _health(worker) == health_pb2.HealthCheckResponse.SERVING
    finally:
        worker.stop()
    assert any(r["msg"] == "removed stale socket file" for r in _logs(worker))
    os.rmdir(directory)


def test_non_socket_file_is_refused_and_kept() -> None:
    directory = short_tmpdir()
    path = os.path.join(directory, "not-a-socket")
    with open(path, "w") as f:
        f.write("precious")
    worker = start_worker(TESTING_WORKER, path, wait_ready=False)
    try:
        assert worker.wait(timeout=10) == 3
        assert "not a socket" in "\n".join(worker.stderr_lines())
    finally:
        worker.stop()
    with open(path) as f:
        assert f.read() == "precious"
    os.unlink(path)
    os.rmdir(directory)


def test_too_long_path_is_refused_with_its_length() -> None:
    path = "/tmp/" + "x" * 120 + ".sock"
    worker = start_worker(TESTING_WORKER, path, wait_ready=False)
    try:
        assert worker.wait(timeout=10) == 2
        err = "\n".join(worker.stderr_lines())
        assert path in err and str(len(path)) in err and "too long" in err
    finally:
        worker.stop()


def test_the_portable_path_uses_the_macos_socket_path_limit() -> None:
    path = "/tmp/" + "y" * 95 + ".sock"  # 105 bytes: fine on Linux, over macOS's 103
    worker = start_worker(TESTING_WORKER, path, wait_ready=False, env={"PROCGRPC_PORTABLE": "1"})
    try:
        assert worker.wait(timeout=10) == 2
        err = "\n".join(worker.stderr_lines())
        assert "is 105 bytes, the limit for a Unix socket address is 103" in err
    finally:
        worker.stop()


def test_missing_socket_configuration_fails_clearly() -> None:
    env = dict(os.environ)
    env.pop("PROCGRPC_SOCKET", None)
    proc = subprocess.run([sys.executable, TESTING_WORKER], env=env, capture_output=True, timeout=15)
    assert proc.returncode == 2
    assert b"--socket" in proc.stderr and proc.stdout == b""


def test_socket_flag_wins_and_user_args_survive() -> None:
    directory = short_tmpdir()
    path = os.path.join(directory, "flag.sock")
    worker = start_worker(TESTING_WORKER, "/nonexistent/dir/x.sock", args=["--socket", path, "--user-flag", "1"])
    try:
        assert worker.ready is not None and worker.ready["socket"] == path
    finally:
        worker.stop()
    os.rmdir(directory)


def test_sigterm_drains_reports_not_serving_and_cleans_up() -> None:
    directory = short_tmpdir()
    path = os.path.join(directory, "term.sock")
    worker = start_worker(TESTING_WORKER, path, env={"PROCGRPC_SOCKET_DIR_OWNED": "1", "PROCGRPC_GRACE_SECONDS": "20"})
    try:
        health = health_pb2_grpc.HealthStub(worker.channel())
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        stub = testing_pb2_grpc.TestServiceStub(worker.channel())
        # Long enough to still be draining when the fresh connection below asks (on a loaded machine too).
        in_flight = stub.Sleep.future(testing_pb2.SleepRequest(ms=2000, tag="drain"), timeout=30)
        assert eventually(lambda: len(introspect(worker)["running"]) == 1)
        worker.proc.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # While it drains the worker still answers on new connections, with NOT_SERVING.
        with grpc.insecure_channel("unix:" + path) as fresh:
            answer = health_pb2_grpc.HealthStub(fresh).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert in_flight.result(timeout=30).completed  # the in-flight call finishes within the grace
        assert worker.wait(timeout=30) == 0
        assert worker.proc.stdout is not None and worker.proc.stdout.read() == b""
        logs = _logs(worker)
        assert {"starting", "ready", "stopping", "stopped"} <= {r["msg"] for r in logs}
        assert all(r["worker_id"] == "w-test" and r["pid"] == worker.proc.pid and isinstance(r["time"], int)
                   for r in logs)
        assert not os.path.exists(path)
        # The parent lives, so the directory stays: the pool restarts workers in it.
        assert os.path.exists(directory)
    finally:
        worker.stop()
    os.rmdir(directory)


# What the servicer is doing when the parent dies: none of it may keep the worker alive.
SERVICER_STATES = {
    "runaway def handler": ("HoldSync", {"seconds": 60, "ignore_cancel": True}),
    "endless def handler": ("Endless", {}),
    "loop blocked by a sleep": ("BlockLoop", {"seconds": 60}),
    "loop blocked by a busy loop": ("BlockLoop", {"seconds": 60, "busy": True}),
    "servicer subprocess": ("SpawnChild", {"seconds": 300}),
}


@pytest.mark.parametrize("portable", [False, True], ids=["linux", "portable"])
@pytest.mark.parametrize("state", list(SERVICER_STATES))
def test_parent_death_takes_the_worker_its_group_socket_and_directory(state: str, portable: bool) -> None:
    directory = short_tmpdir()
    path = os.path.join(directory, "orphan.sock")
    env = {"PROCGRPC_SOCKET_DIR_OWNED": "1"}
    if portable:
        env["PROCGRPC_PORTABLE"] = "1"  # no PR_SET_PDEATHSIG: control fd EOF and getppid polling only
    worker = start_worker(HOSTILE_WORKER, path, env=env, own_group=True)
    pgid = worker.proc.pid
    try:
        method, spec = SERVICER_STATES[state]
        child: List[int] = []
        fn = worker.channel().unary_unary("/procgrpc.test.Hostile/" + method)
        if method == "SpawnChild":
            child.append(json.loads(fn(json.dumps(spec).encode(), timeout=10))["pid"])
            assert alive(child[0])
        else:
            held = fn.future(json.dumps(spec).encode(), timeout=60)  # kept: a dropped future cancels its call
            runs = worker.channel().unary_unary("/procgrpc.test.Hostile/Runs")
            if method != "BlockLoop":  # a blocked loop answers nothing, not even Runs
                assert eventually(lambda: json.loads(runs(b"{}", timeout=5))["runs"].get(method, 0) >= 1)
            else:
                assert eventually(lambda: loop_blocked(worker))
        assert worker.control is not None
        started = time.monotonic()
        worker.control.close()  # what the kernel does when the Node process dies
        worker.control = None
        assert eventually(lambda: not alive(worker.proc.pid) or worker.proc.poll() is not None)
        took = time.monotonic() - started
        assert eventually(lambda: group_members(pgid) == []), f"left in the group: {group_members(pgid)}"
        assert all(not alive(pid) for pid in child)
        assert not os.path.exists(path)
        # The parent is gone: the last worker out removes the pool's private directory.
        assert not os.path.exists(directory)
        print(f"{state} ({'portable' if portable else 'linux'}): gone {took:.2f} s after the parent")
        if method != "SpawnChild":
            held.cancel()
    finally:
        worker.stop()
        for pid in group_members(pgid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("portable", [False, True], ids=["linux", "portable"])
def test_parent_death_without_control_fd_exits(portable: bool) -> None:
    directory = short_tmpdir()
    path = os.path.join(directory, "noctl.sock")
    # An intermediate parent starts the worker (no control fd), waits until it serves, and dies.
    launcher = (
        "import os, socket, subprocess, sys, time\n"
        f"env = dict(os.environ, PROCGRPC_SOCKET={path!r})\n"
        + ("env['PROCGRPC_PORTABLE'] = '1'\n" if portable else "")
        + f"p = subprocess.Popen([sys.executable, {TESTING_WORKER!r}], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)\n"
        "print(p.pid, flush=True)\n"
        "deadline = time.monotonic() + 60\n"
        "while time.monotonic() < deadline:\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        f"        s.connect({path!r}); break\n"
        "    except OSError:\n"
        "        time.sleep(0.05)\n"
        "    finally:\n"
        "        s.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, timeout=90)
    pid = int(out.stdout.strip())
    if not eventually(lambda: not alive(pid)):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("orphaned worker kept running")
    assert eventually(lambda: not os.path.exists(path))
    os.rmdir(directory)


def test_logging_to_stderr_only_and_in_json() -> None:
    directory = short_tmpdir()
    worker = start_worker(TESTING_WORKER, os.path.join(directory, "log.sock"), env={"PROCGRPC_LOG_LEVEL": "debug"})
    worker.stop()
    lines = worker.stderr_lines()
    assert lines and all(json.loads(line)["level"] in ("debug", "info", "warn", "error") for line in lines)
    start = next(json.loads(line) for line in lines if json.loads(line)["msg"] == "starting")
    assert start["python"] and start["grpcio"] == grpc.__version__
    os.rmdir(directory)


def test_concurrent_sync_calls_use_the_thread_pool(testing_worker: Worker) -> None:
    stub = testing_pb2_grpc.TestServiceStub(testing_worker.channel())
    started = time.monotonic()
    futures = [stub.Sleep.future(testing_pb2.SleepRequest(ms=300), timeout=10) for _ in range(6)]
    assert all(f.result().completed for f in futures)
    assert time.monotonic() - started < 1.5


_ = threading  # keep import for debugging hangs
