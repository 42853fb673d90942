"""Workers on TCP (docs/scaling.md): TLS, mTLS, the plaintext rule, bearer tokens, the health-only port,
and no parent-death exit for a standalone worker. Real processes, real TCP on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from certs import make_ca, make_leaf
from conftest import TESTING_WORKER

from testing.v1 import testing_pb2, testing_pb2_grpc  # noqa: E402

TOKEN = "s3cret-token-for-tests"


class TcpWorker:
    """A worker started by hand (no pool: no control fd, no socket unless given), ready when it logs `ready`."""

    def __init__(self, args: List[str], env: Dict[str, str], wait_ready: bool = True) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROCGRPC_")}
        full_env.update(env)
        self.proc = subprocess.Popen([sys.executable, TESTING_WORKER, *args], env=full_env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: List[str] = []
        self._ready = threading.Event()
        self.ready: Optional[Dict[str, Any]] = None
        threading.Thread(target=self._read, daemon=True).start()
        if wait_ready and not self._ready.wait(15):
            self.stop()
            raise AssertionError("worker not ready:\n" + "\n".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("{") and json.loads(line).get("msg") == "ready":
                self.ready = json.loads(line)
                self._ready.set()

    @property
    def port(self) -> int:
        assert self.ready is not None
        return int(str(self.ready["listen"]).rpartition(":")[2])

    def exit_code(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        self.proc.wait(timeout=15)
        time.sleep(0.05)
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def pki() -> Iterator[Dict[str, Any]]:
    directory = tempfile.mkdtemp(prefix="pg-pki-")
    ca = make_ca(directory, "ca")
    other = make_ca(directory, "other-ca")
    server = make_leaf(directory, "server", ca, ["IP:127.0.0.1", "DNS:localhost"], "serverAuth")
    client = make_leaf(directory, "client", ca, ["DNS:client"], "clientAuth")
    token_file = os.path.join(directory, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    yield {"dir": directory, "ca": ca, "other": other, "server": server, "client": client, "token_file": token_file}
    shutil.rmtree(directory, ignore_errors=True)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _tls_env(pki: Dict[str, Any], **extra: str) -> Dict[str, str]:
    return {"PROCGRPC_TLS_CERT": pki["server"]["cert"], "PROCGRPC_TLS_KEY": pki["server"]["key"], **extra}


def _secure(pki: Dict[str, Any], port: int, ca: str = "ca", client: bool = False) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(pki[ca]["cert"]),
        private_key=_read(pki["client"]["key"]) if client else None,
        certificate_chain=_read(pki["client"]["cert"]) if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", creds)


def _echo(channel: grpc.Channel, metadata: Optional[List[Any]] = None) -> testing_pb2.EchoResponse:
    stub = testing_pb2_grpc.TestServiceStub(channel)
    return stub.Echo(testing_pb2.EchoRequest(text="over tcp"), timeout=5, metadata=metadata)


def _health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status  # type: ignore[no-any-return]


def test_plaintext_on_loopback_serves_tcp_only_without_a_socket() -> None:
    worker = TcpWorker(["--listen", "127.0.0.1:0"], {})
    try:
        assert worker.ready is not None and worker.ready["security"] == "plaintext" and worker.ready["socket"] is None
        with grpc.insecure_channel(f"127.0.0.1:{worker.port}") as ch:
            assert _echo(ch).text == "over tcp"
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
    finally:
        worker.stop()
    assert worker.exit_code() == 0


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "10.99.0.1:50051"])
def test_plaintext_on_a_non_loopback_address_is_refused(address: str) -> None:
    worker = TcpWorker(["--listen", address], {}, wait_ready=False)
    assert worker.exit_code() == 2
    out = worker.output()
    assert "refusing to serve plaintext gRPC on " + address in out
    assert "PROCGRPC_ALLOW_PLAINTEXT=1" in out and "PROCGRPC_TLS_CERT" in out


@pytest.mark.parametrize("opt_in", [["--allow-plaintext"], []])
def test_plaintext_on_a_wildcard_address_with_opt_in(opt_in: List[str]) -> None:
    env = {} if opt_in else {"PROCGRPC_ALLOW_PLAINTEXT": "1"}
    worker = TcpWorker(["--listen", "0.0.0.0:0", *opt_in], env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{worker.port}") as ch:
            assert _echo(ch).text == "over tcp"
        # No authentication at all on a reachable port is worth a warning line.
        assert any("has no authentication" in line for line in worker.lines)
    finally:
        worker.stop()


def test_tls_serves_with_the_right_ca_and_fails_unavailable_with_another(pki: Dict[str, Any]) -> None:
    worker = TcpWorker(["--listen", "127.0.0.1:0"], _tls_env(pki))
    try:
        assert worker.ready is not None and worker.ready["security"] == "tls"
        with _secure(pki, worker.port) as ch:
            assert _echo(ch).text == "over tcp"
        with _secure(pki, worker.port, ca="other") as ch:
            with pytest.raises(grpc.RpcError) as info:
                _echo(ch)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # A plaintext client gets nothing from a TLS port either.
        with grpc.insecure_channel(f"127.0.0.1:{worker.port}") as ch:
            with pytest.raises(grpc.RpcError) as info:
                _echo(ch)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        worker.stop()


def test_mtls_requires_a_client_certificate(pki: Dict[str, Any]) -> None:
    worker = TcpWorker(["--listen", "127.0.0.1:0"], _tls_env(pki, PROCGRPC_TLS_CLIENT_CA=pki["ca"]["cert"]))
    try:
        assert worker.ready is not None and worker.ready["security"] == "mtls"
        with _secure(pki, worker.port, client=True) as ch:
            assert _echo(ch).text == "over tcp"
        with _secure(pki, worker.port) as ch:
            with pytest.raises(grpc.RpcError) as info:
                _echo(ch)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        worker.stop()


@pytest.mark.parametrize("source", ["env", "file"])
def test_bearer_token_is_required_except_for_health(pki: Dict[str, Any], source: str) -> None:
    token_env = {"PROCGRPC_TOKEN": TOKEN} if source == "env" else {"PROCGRPC_TOKEN_FILE": pki["token_file"]}
    worker = TcpWorker(["--listen", "127.0.0.1:0"], _tls_env(pki, **token_env))
    try:
        assert worker.ready is not None and worker.ready["token"] is True
        with _secure(pki, worker.port) as ch:
            assert _echo(ch, [("authorization", f"Bearer {TOKEN}")]).text == "over tcp"
            for metadata, message in [(None, "missing bearer token"), ([("authorization", "Bearer nope")], "invalid bearer token"),
                                      ([("authorization", f"Basic {TOKEN}")], "invalid bearer token"),
                                      ([("authorization", f"Bearer {TOKEN}x")], "invalid bearer token")]:
                with pytest.raises(grpc.RpcError) as info:
                    _echo(ch, metadata)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert message in (info.value.details() or "")
            # Health is exempt: probes and client-side health checking carry no token.
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
            # The servicer never ran for refused calls.
            stats = testing_pb2_grpc.TestServiceStub(ch).Stats(
                testing_pb2.StatsRequest(), timeout=5, metadata=[("authorization", f"Bearer {TOKEN}")])
            assert stats.calls == 2  # the good Echo and this Stats
    finally:
        worker.stop()


def test_without_a_token_an_unknown_method_is_refused_like_an_existing_one(pki: Dict[str, Any]) -> None:
    worker = TcpWorker(["--listen", "127.0.0.1:0"], _tls_env(pki, PROCGRPC_TOKEN=TOKEN))
    try:
        with _secure(pki, worker.port) as ch:
            seen = {}
            for method in ("/testing.v1.TestService/Echo", "/testing.v1.TestService/NoSuchMethod", "/no.such.Service/X"):
                with pytest.raises(grpc.RpcError) as info:
                    ch.unary_unary(method)(b"", timeout=5)
                seen[method] = (info.value.code(), info.value.details())
            # Nothing tells an existing method from an unknown one.
            assert set(seen.values()) == {(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token: send metadata "
                                           "'authorization: Bearer <token>' (RemotePool option `token`)")}
            # With the token, an unknown method is UNIMPLEMENTED as usual.
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary("/testing.v1.TestService/NoSuchMethod")(b"", timeout=5, metadata=[("authorization", f"Bearer {TOKEN}")])
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        worker.stop()


def test_token_refuses_streaming_calls_too(pki: Dict[str, Any]) -> None:
    script = os.path.join(os.path.dirname(TESTING_WORKER), "streaming_worker.py")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROCGRPC_")}
    proc = subprocess.Popen([sys.executable, script, "--listen", "127.0.0.1:0"], env={**full_env, "PROCGRPC_TOKEN": TOKEN},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        port = 0
        for raw in proc.stderr:
            rec = json.loads(raw) if raw.startswith(b"{") else {}
            if rec.get("msg") == "ready":
                port = int(rec["listen"].rpartition(":")[2])
                break
        from testing.v1 import streaming_pb2, streaming_pb2_grpc
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = streaming_pb2_grpc.StreamingTestServiceStub(ch)
            with pytest.raises(grpc.RpcError) as info:
                list(stub.Count(streaming_pb2.CountRequest(n=3), timeout=5))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            got = list(stub.Count(streaming_pb2.CountRequest(n=3), timeout=5, metadata=[("authorization", f"Bearer {TOKEN}")]))
            assert len(got) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_health_only_port_is_plaintext_and_serves_nothing_else(pki: Dict[str, Any]) -> None:
    worker = TcpWorker(["--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"], _tls_env(pki, PROCGRPC_TOKEN=TOKEN))
    try:
        assert worker.ready is not None
        health_port = int(str(worker.ready["health_listen"]).rpartition(":")[2])
        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as info:
                _echo(ch, [("authorization", f"Bearer {TOKEN}")])
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        worker.stop()
    assert worker.exit_code() == 0


@pytest.mark.parametrize("env, message", [
    ({"PROCGRPC_TLS_CERT": "__cert__"}, "needs both PROCGRPC_TLS_CERT and PROCGRPC_TLS_KEY"),
    ({"PROCGRPC_TLS_CERT": "/nonexistent/cert.pem", "PROCGRPC_TLS_KEY": "/nonexistent/key.pem"}, "PROCGRPC_TLS_CERT: cannot read /nonexistent/cert.pem"),
    ({"PROCGRPC_TLS_CLIENT_CA": "__ca__"}, "PROCGRPC_TLS_CLIENT_CA (mTLS) needs PROCGRPC_TLS_CERT"),
    ({"PROCGRPC_TOKEN": "  "}, "the bearer token is empty"),
    ({"PROCGRPC_TOKEN": TOKEN, "PROCGRPC_TOKEN_FILE": "__token__"}, "PROCGRPC_TOKEN or PROCGRPC_TOKEN_FILE, not both"),
    ({"PROCGRPC_LISTEN": "127.0.0.1"}, "must be HOST:PORT"),
    ({"PROCGRPC_LISTEN": "127.0.0.1:http"}, "port must be a number"),
    ({"PROCGRPC_HEALTH_LISTEN": "127.0.0.1:0", "PROCGRPC_LISTEN": ""}, "needs --listen / PROCGRPC_LISTEN too"),
])
def test_bad_tcp_configuration_exits_2_with_a_clear_message(pki: Dict[str, Any], env: Dict[str, str], message: str) -> None:
    subs = {"__cert__": pki["server"]["cert"], "__ca__": pki["ca"]["cert"], "__token__": pki["token_file"]}
    full = {"PROCGRPC_LISTEN": "127.0.0.1:0", **{k: subs.get(v, v) for k, v in env.items()}}
    worker = TcpWorker([], full, wait_ready=False)
    assert worker.exit_code() == 2
    assert message in worker.output()


def test_port_in_use_exits_1_naming_the_address() -> None:
    first = TcpWorker(["--listen", "127.0.0.1:0"], {})
    second: Optional[TcpWorker] = None
    try:
        second = TcpWorker(["--listen", f"127.0.0.1:{first.port}"], {}, wait_ready=False)
        assert second.exit_code() == 1
        assert "could not listen on TCP" in second.output()
    finally:
        first.stop()
        if second is not None:
            second.stop()  # had it started after all (port sharing), it must not outlive the test


def test_a_standalone_tcp_worker_outlives_the_process_that_started_it() -> None:
    # A remote worker has no pool parent: its launcher exiting (a shell, an init script) must not stop it.
    log = tempfile.NamedTemporaryFile(prefix="pg-standalone-", suffix=".log", delete=False)
    log.close()
    launcher = (
        "import subprocess, sys, os\n"
        f"p = subprocess.Popen([sys.executable, {TESTING_WORKER!r}, '--listen', '127.0.0.1:0'],"
        f" stderr=open({log.name!r}, 'wb'), stdout=subprocess.DEVNULL, start_new_session=True,"
        " env={k: v for k, v in os.environ.items() if not k.startswith('PROCGRPC_')})\n"
        "print(p.pid, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", launcher], capture_output=True, timeout=20)
    pid = int(out.stdout.decode())
    try:
        _serve_after_launcher_exit(pid, log.name)
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        os.unlink(log.name)


def _serve_after_launcher_exit(pid: int, log_path: str) -> None:
    port = 0
    deadline = time.monotonic() + 15
    while not port and time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            for line in f:
                if line.startswith(b"{") and json.loads(line).get("msg") == "ready":
                    port = int(json.loads(line)["listen"].rpartition(":")[2])
        time.sleep(0.05)
    assert port, "standalone worker never became ready"
    time.sleep(1.5)  # longer than the parent-death poll (0.5 s) of a pool worker
    os.kill(pid, 0)  # still alive
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        assert _echo(ch).worker_pid == pid
