"""Serves testing.v1.ResilienceTestService and testing.v1.TestService for the resilience tests.

Behaviour shared by every worker of a pool (call counters, "first call" claims, ledgers) lives
in files the request names, so that a retry on another worker sees the same state.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402

import testing_worker  # noqa: E402  (shares its Stats.cancelled_tags list)
from procgrpc import errors, run_worker  # noqa: E402
from testing.v1 import resilience_pb2, resilience_pb2_grpc, testing_pb2_grpc  # noqa: E402

WORKER_ID = os.environ.get("PROCGRPC_WORKER_ID", "")


def _bump(path: str) -> int:
    """Increments the counter in `path` under an exclusive lock; returns the new value."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.read(fd, 64)
        value = int(raw or b"0") + 1
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(value).encode())
        return value
    finally:
        os.close(fd)


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _code(number: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


def _work(request, context) -> None:
    if request.ledger_path:
        _append(request.ledger_path, f"start {request.key} {os.getpid()}")
    deadline = time.monotonic() + request.ms / 1000.0
    while time.monotonic() < deadline and context.is_active():
        time.sleep(0.005)


class ResilienceTestService(resilience_pb2_grpc.ResilienceTestServiceServicer):
    def Flaky(self, request, context):
        attempt = _bump(os.path.join(request.state_dir, f"flaky-{request.key}"))
        if request.fail_first < 0 or attempt <= request.fail_first:
            code = _code(request.code) if request.code else grpc.StatusCode.UNAVAILABLE
            if request.HasField("pushback_ms"):
                context.set_trailing_metadata([("grpc-retry-pushback-ms", str(request.pushback_ms))])
            retry_after = request.retry_after_ms / 1000.0 if request.retry_after_ms > 0 else None
            message = f"flaky {request.key}: attempt {attempt} fails"
            if retry_after is not None and code == grpc.StatusCode.UNAVAILABLE:
                raise errors.Unavailable(message, retry_after=retry_after)
            if retry_after is not None and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise errors.ResourceExhausted(message, retry_after=retry_after)
            context.abort(code, message)
        return resilience_pb2.FlakyResponse(attempt=attempt, worker_pid=os.getpid())

    def Lookup(self, request, context):
        _work(request, context)
        return resilience_pb2.LookupResponse(worker_pid=os.getpid(), worker_id=WORKER_ID)

    def Charge(self, request, context):
        _work(request, context)
        return resilience_pb2.ChargeResponse(worker_pid=os.getpid(), worker_id=WORKER_ID)

    def Drop(self, request, context):
        if WORKER_ID == request.sick_worker and os.path.exists(request.sick_flag_path):
            os._exit(3)  # the connection drops mid-call, as in a segfault or OOM kill
        return resilience_pb2.DropResponse(worker_pid=os.getpid(), worker_id=WORKER_ID)

    def Hedge(self, request, context):
        claim = os.path.join(request.state_dir, f"hedge-{request.tag}")
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            first = True
        except FileExistsError:
            first = False
        if first:
            deadline = time.monotonic() + request.slow_ms / 1000.0
            while time.monotonic() < deadline:
                if not context.is_active():
                    with testing_worker._lock:
                        testing_worker.cancelled_tags.append(request.tag)
                    _append(os.path.join(request.state_dir, "cancelled"), f"{request.tag} {os.getpid()}")
                    break
                time.sleep(0.005)
        return resilience_pb2.HedgeResponse(worker_pid=os.getpid(), worker_id=WORKER_ID)

    def Score(self, request, context):
        if request.ms:
            time.sleep(request.ms / 1000.0)
        fixed = bool(request.fixed_flag_path) and os.path.exists(request.fixed_flag_path)
        if request.fail_every and request.id % request.fail_every == 0 and not fixed:
            raise errors.InvalidArgument(f"item {request.id} cannot be scored",
                                         errors.bad_request({"id": "divisible by fail_every"}))
        if request.ledger_path:
            _append(request.ledger_path, str(request.id))
        return resilience_pb2.ScoreResponse(id=request.id, score=request.id * 2)

if __name__ == "__main__":
    run_worker(
        (resilience_pb2_grpc.add_ResilienceTestServiceServicer_to_server, ResilienceTestService()),
        (testing_pb2_grpc.add_TestServiceServicer_to_server, testing_worker.TestService()),
    )
