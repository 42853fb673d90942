"""A worker whose servicer does what careless or hostile servicer code does: start subprocesses
that inherit stdout/stderr, fork, block the event loop, run forever, and hold calls while the
worker stops. Used by the lifecycle, stopping and deadline tests (TypeScript and pytest).

Besides testing.v1.TestService (from testing_worker) it serves ``procgrpc.test.Hostile``, a
proto-less service: every request and response is a JSON object in UTF-8 bytes. Each method
exists as ``<Name>Sync`` (``def``) and ``<Name>Async`` (``async def``) where both make sense.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# grpc's own fork handlers make a bare fork of a server process crash (SIGSEGV in the child,
# measured: 1 in 3); without them the forked child lives, as the Fork method needs.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import grpc  # noqa: E402

from procgrpc import run_worker  # noqa: E402
from testing_worker import RawService, TestService, add_raw_service, testing_pb2_grpc  # noqa: E402

SERVICE = "procgrpc.test.Hostile"

_lock = threading.Lock()
# How many times each method's body ran (the tests check that expired calls never run).
_runs: Dict[str, int] = {}
_children: List[int] = []
# Calls parked until the test releases them (by tag).
_gates: Dict[str, threading.Event] = {}


def _ran(name: str) -> None:
    with _lock:
        _runs[name] = _runs.get(name, 0) + 1


def _gate(tag: str) -> threading.Event:
    with _lock:
        return _gates.setdefault(tag, threading.Event())


def _json(fn: Callable[[Dict[str, Any], Any], Dict[str, Any]]) -> Callable[[bytes, Any], bytes]:
    def run(request: bytes, context: Any) -> bytes:
        return json.dumps(fn(json.loads(request or b"{}"), context)).encode()
    return run


def _json_async(fn: Callable[[Dict[str, Any], Any], Any]) -> Callable[[bytes, Any], Any]:
    async def run(request: bytes, context: Any) -> bytes:
        return json.dumps(await fn(json.loads(request or b"{}"), context)).encode()
    return run


# -- processes the servicer starts

def spawn_child(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """A subprocess that inherits stdout and stderr and lives for ``seconds``."""
    _ran("SpawnChild")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(%f)" % spec.get("seconds", 300)])
    with _lock:
        _children.append(child.pid)
    return {"pid": child.pid, "worker_pid": os.getpid()}


def fork_child(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """A forked copy of the worker that sleeps for ``seconds`` holding every inherited fd
    (stdout, stderr, the control fd, grpc's sockets)."""
    _ran("Fork")
    pid = os.fork()
    if pid == 0:  # the child: no Python clean-up, no grpc; just hold the fds and sleep
        try:
            time.sleep(spec.get("seconds", 300))
        finally:
            os._exit(0)
    with _lock:
        _children.append(pid)
    return {"pid": pid, "worker_pid": os.getpid()}


# -- handlers that do not cooperate

async def block_loop(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """Blocks the event loop for ``seconds``: an async handler calling blocking code (a sleep),
    or, with ``busy``, computing without ever awaiting."""
    _ran("BlockLoop")
    until = time.monotonic() + spec.get("seconds", 300)
    if spec.get("busy"):
        while time.monotonic() < until:
            pass
    else:
        time.sleep(max(0.0, until - time.monotonic()))
    return {}


def endless(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """A def handler that never returns and ignores cancellation."""
    _ran("Endless")
    while True:
        time.sleep(0.05)


# -- counting, holding and headers (sync and async)

def count_sync(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    _ran("CountSync")
    return {"worker_pid": os.getpid()}


async def count_async(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    _ran("CountAsync")
    return {"worker_pid": os.getpid()}


def env(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """The worker's environment variables named in ``names`` (absent ones left out)."""
    return {"env": {n: os.environ[n] for n in spec.get("names", []) if n in os.environ},
            "pgid": os.getpgrp(), "worker_pid": os.getpid()}


def runs(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    with _lock:
        return {"runs": dict(_runs), "children": list(_children), "worker_pid": os.getpid()}


def hold_sync(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """Holds the call until released by tag, or for ``seconds``; ``ignore_cancel`` keeps holding."""
    _ran("HoldSync")
    gate = _gate(spec.get("tag", ""))
    deadline = time.monotonic() + spec.get("seconds", 300)
    while time.monotonic() < deadline and not gate.is_set():
        if not spec.get("ignore_cancel") and not context.is_active():
            return {"completed": False}
        gate.wait(0.01)
    return {"completed": True}


async def hold_async(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    _ran("HoldAsync")
    gate = _gate(spec.get("tag", ""))
    deadline = time.monotonic() + spec.get("seconds", 300)
    while time.monotonic() < deadline and not gate.is_set():
        await asyncio.sleep(0.01)
    return {"completed": True}


def release(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    _gate(spec["tag"]).set()
    return {}


def headers_sync(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """Sends initial metadata ``times`` times, then holds until released (by ``tag``, if any)."""
    for i in range(spec.get("times", 1)):
        context.send_initial_metadata([("x-header", str(i)), ("x-header-bin", b"\x00\x01")])
    if spec.get("tag"):
        _gate(spec["tag"]).wait(30)
    return {"sent": spec.get("times", 1)}


async def headers_async(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    for i in range(spec.get("times", 1)):
        await context.send_initial_metadata([("x-header", str(i)), ("x-header-bin", b"\x00\x01")])
    if spec.get("tag"):
        gate = _gate(spec["tag"])
        while not gate.is_set():
            await asyncio.sleep(0.01)
    return {"sent": spec.get("times", 1)}


# -- every way of giving a status (codes as grpc.StatusCode or int)

def _code(spec: Dict[str, Any]) -> Any:
    number = spec["code"]
    if spec.get("as") == "int":
        return number
    return next(c for c in grpc.StatusCode if c.value[0] == number)


class _Status(grpc.Status):
    def __init__(self, code: Any, details: str, trailing_metadata: Any) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


_TRAILERS = (("x-trailer", "t"), ("x-trailer-bin", b"\x01\x02"))


def _set_status(spec: Dict[str, Any], context: Any) -> None:
    """The part of every way that only sets things on the context (the same for def and async def)."""
    if spec["way"] in ("set_code", "abort"):
        context.set_trailing_metadata(_TRAILERS)
    if spec["way"] in ("set_code", "set_code_then_raise"):
        context.set_code(_code(spec))
    if spec["way"] == "set_code":
        context.set_details(spec.get("details", ""))


def status_sync(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """Ends the call with ``code`` (``as`` int or enum) by ``way``: set_code, abort,
    abort_with_status, or set_code then raise."""
    _set_status(spec, context)
    way = spec["way"]
    if way == "abort":
        context.abort(_code(spec), spec.get("details", ""))
    elif way == "abort_with_status":
        context.abort_with_status(_Status(_code(spec), spec.get("details", ""), _TRAILERS))
    elif way == "set_code_then_raise":
        raise RuntimeError("raised after set_code")
    return {"returned": True}


async def status_async(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    _set_status(spec, context)
    way = spec["way"]
    if way == "abort":
        await context.abort(_code(spec), spec.get("details", ""))
    elif way == "abort_with_status":
        await context.abort_with_status(_Status(_code(spec), spec.get("details", ""), _TRAILERS))
    elif way == "set_code_then_raise":
        raise RuntimeError("raised after set_code")
    return {"returned": True}


def raise_sync(spec: Dict[str, Any], context: Any) -> Dict[str, Any]:
    """Raises the built-in exception named ``exception`` with ``message``."""
    import builtins
    raise getattr(builtins, spec["exception"])(spec.get("message", ""))


def add_hostile_to_server(servicer: Any, server: Any) -> None:
    handlers = {
        "SpawnChild": grpc.unary_unary_rpc_method_handler(_json(spawn_child)),
        "Fork": grpc.unary_unary_rpc_method_handler(_json(fork_child)),
        "BlockLoop": grpc.unary_unary_rpc_method_handler(_json_async(block_loop)),
        "Endless": grpc.unary_unary_rpc_method_handler(_json(endless)),
        "CountSync": grpc.unary_unary_rpc_method_handler(_json(count_sync)),
        "CountAsync": grpc.unary_unary_rpc_method_handler(_json_async(count_async)),
        "Runs": grpc.unary_unary_rpc_method_handler(_json(runs)),
        "Env": grpc.unary_unary_rpc_method_handler(_json(env)),
        "HoldSync": grpc.unary_unary_rpc_method_handler(_json(hold_sync)),
        "HoldAsync": grpc.unary_unary_rpc_method_handler(_json_async(hold_async)),
        "Release": grpc.unary_unary_rpc_method_handler(_json(release)),
        "HeadersSync": grpc.unary_unary_rpc_method_handler(_json(headers_sync)),
        "HeadersAsync": grpc.unary_unary_rpc_method_handler(_json_async(headers_async)),
        "StatusSync": grpc.unary_unary_rpc_method_handler(_json(status_sync)),
        "StatusAsync": grpc.unary_unary_rpc_method_handler(_json_async(status_async)),
        "RaiseSync": grpc.unary_unary_rpc_method_handler(_json(raise_sync)),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


if __name__ == "__main__":
    run_worker((testing_pb2_grpc.add_TestServiceServicer_to_server, TestService()),
               (add_raw_service, RawService()),
               (add_hostile_to_server, None))
