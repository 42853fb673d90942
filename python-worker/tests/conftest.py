"""Helpers to run real worker processes on real Unix sockets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GEN = os.path.join(REPO, "gen", "python")
TESTING_WORKER = os.path.join(REPO, "test", "workers", "testing_worker.py")
PROBE_WORKER = os.path.join(HERE, "workers", "probe_worker.py")
# Servicer code that misbehaves on purpose (subprocesses, forks, blocked loop, held calls).
HOSTILE_WORKER = os.path.join(REPO, "test", "workers", "hostile_worker.py")

if GEN not in sys.path:
    sys.path.insert(0, GEN)


class Worker:
    """A worker subprocess with its control socket, stderr and socket path."""

    def __init__(self, proc: subprocess.Popen, control: Optional[socket.socket], socket_path: str,
                 ready: Optional[Dict[str, Any]], pipe: Optional[socket.socket] = None) -> None:
        self.proc = proc
        self.control = control
        #: Our end of the socket pair the worker serves its pipeline on (``start_worker(pipe=True)``).
        self.pipe = pipe
        self.socket_path = socket_path
        self.ready = ready
        self._channel: Optional[grpc.Channel] = None
        # Drain stderr continuously: a full pipe would block the worker's logging.
        self._stderr = bytearray()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):  # type: ignore[union-attr]
            self._stderr += chunk

    @property
    def target(self) -> str:
        return "unix:" + self.socket_path

    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target)
        return self._channel

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr_lines(self) -> List[str]:
        """Stderr so far (all of it once the process exited)."""
        if self.proc.poll() is not None:
            self._drain.join(timeout=5)
        return bytes(self._stderr).decode(errors="replace").splitlines()

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.control is not None:
            self.control.close()
        if self.pipe is not None:
            self.pipe.close()
        self._drain.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def group_members(pgid: int) -> List[int]:
    """Live processes of process group ``pgid`` (from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def eventually(check: Any, timeout: float = 20.0, step: float = 0.02) -> bool:
    """Poll ``check()`` until true or ``timeout`` (a bound on failure only, never an expectation)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return bool(check())
        time.sleep(step)
    return True


def introspect(worker: Worker) -> Dict[str, Any]:
    """procgrpc.internal.v1.Worker/Running: {"pid", "running": [{callId, requestId, method, seconds}]}."""
    from google.protobuf import empty_pb2, json_format, struct_pb2
    fn = worker.channel().unary_unary("/procgrpc.internal.v1.Worker/Running",
                                      request_serializer=empty_pb2.Empty.SerializeToString,
                                      response_deserializer=struct_pb2.Struct.FromString)
    return json_format.MessageToDict(fn(empty_pb2.Empty(), timeout=5))  # type: ignore[no-any-return]


def loop_blocked(worker: Worker) -> bool:
    """True once the worker's event loop stopped answering (a health check times out)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    try:
        health_pb2_grpc.HealthStub(worker.channel()).Check(health_pb2.HealthCheckRequest(), timeout=0.3)
        return False
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def short_tmpdir() -> str:
    # Under /tmp so socket paths stay far below the 107-byte limit.
    return tempfile.mkdtemp(prefix="pg-", dir="/tmp")


def start_worker(script: str, socket_path: str, env: Optional[Dict[str, str]] = None,
                 control: bool = True, wait_ready: bool = True, args: Optional[List[str]] = None,
                 timeout: float = 15.0, own_group: bool = False, pipe: bool = False) -> Worker:
    """Start ``script`` like the Node pool does (control socketpair on fd 3; with ``own_group``
    in its own process group, as the pool spawns it, with PROCGRPC_PROCESS_GROUP=1; with ``pipe``
    a second socket pair for the pipeline, ``PROCGRPC_PIPE_FD``)."""
    full_env = dict(os.environ)
    full_env.pop("PROCGRPC_DEBUG", None)
    full_env.update({"PROCGRPC_SOCKET": socket_path, "PROCGRPC_WORKER_ID": "w-test", "PROCGRPC_GRACE_SECONDS": "2"})
    if own_group:
        full_env["PROCGRPC_PROCESS_GROUP"] = "1"
    full_env.update(env or {})
    ours: Optional[socket.socket] = None
    pass_fds: List[int] = []
    theirs: Optional[socket.socket] = None
    if control:
        ours, theirs = socket.socketpair()
        pass_fds = [theirs.fileno()]
        full_env["PROCGRPC_CONTROL_FD"] = str(theirs.fileno())
    our_pipe: Optional[socket.socket] = None
    their_pipe: Optional[socket.socket] = None
    if pipe:
        our_pipe, their_pipe = socket.socketpair()
        pass_fds.append(their_pipe.fileno())
        full_env["PROCGRPC_PIPE_FD"] = str(their_pipe.fileno())
    proc = subprocess.Popen([sys.executable, script] + (args or []), env=full_env, pass_fds=pass_fds,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=own_group)
    if theirs is not None:
        theirs.close()
    if their_pipe is not None:
        their_pipe.close()
    ready = None
    if control and wait_ready:
        assert ours is not None
        ready = read_ready(ours, proc, timeout)
    return Worker(proc, ours, socket_path, ready, our_pipe)


def read_ready(sock: socket.socket, proc: subprocess.Popen, timeout: float) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            raise AssertionError("worker did not report ready in time: " + proc.stderr.read().decode())  # type: ignore[union-attr]
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            proc.wait(timeout=5)
            raise AssertionError(f"worker exited ({proc.returncode}) before ready: "
                                 + proc.stderr.read().decode())  # type: ignore[union-attr]
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    assert rest == b"", "exactly one line expected"
    return json.loads(line)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tmpdir_short() -> Iterator[str]:
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def testing_worker(tmpdir_short: str) -> Iterator[Worker]:
    worker = start_worker(TESTING_WORKER, os.path.join(tmpdir_short, "testing.sock"))
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def hostile_worker(tmpdir_short: str) -> Iterator[Worker]:
    worker = start_worker(HOSTILE_WORKER, os.path.join(tmpdir_short, "hostile.sock"), pipe=True)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def probe_worker(tmpdir_short: str) -> Iterator[Worker]:
    worker = start_worker(PROBE_WORKER, os.path.join(tmpdir_short, "probe.sock"))
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def probe_debug_worker(tmpdir_short: str) -> Iterator[Worker]:
    worker = start_worker(PROBE_WORKER, os.path.join(tmpdir_short, "probe-debug.sock"), env={"PROCGRPC_DEBUG": "1"})
    yield worker
    worker.stop()


@pytest.fixture
def lane_dir() -> Iterator[str]:
    """A private (0700) directory for lane files, on /dev/shm when there is one; emptied and removed after."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = tempfile.mkdtemp(prefix="procgrpc-lane-test-", dir=base)
    try:
        yield d
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)
