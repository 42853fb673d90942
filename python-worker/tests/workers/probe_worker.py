"""A worker with a proto-less service (JSON bytes in/out) that probes procgrpc's
exception mapping and servicer-context behaviour from sync and async methods.

Each method exists as <Name>Sync (def) and <Name>Async (async def).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from typing import Any, Dict, List

import grpc

from procgrpc import errors, run_worker

SERVICE = "procgrpc.test.Probe"

_lock = threading.Lock()
_events: List[str] = []


def _note(event: str) -> None:
    with _lock:
        _events.append(event)


def _exception(spec: Dict[str, Any]) -> BaseException:
    module, _, name = spec["exception"].rpartition(".")
    cls = getattr(importlib.import_module(module or "builtins"), name)
    kwargs = {}
    if "retry_after" in spec:
        kwargs["retry_after"] = spec["retry_after"]
    if spec.get("with_details"):
        return cls(spec.get("message", ""), errors.bad_request({"field": "is wrong"}),
                   trailing_metadata=[("x-extra", "1")], **kwargs)
    return cls(spec.get("message", ""), **kwargs)


def _context_report(context: Any) -> Dict[str, Any]:
    return {
        "time_remaining": context.time_remaining(),
        "is_active": context.is_active(),
        "metadata": {k: v for k, v in context.invocation_metadata() if not k.endswith("-bin")},
    }


def _details(spec: Dict[str, Any]) -> List[Any]:
    return [errors.bad_request({"name": "must not be empty"}), errors.error_info("EMPTY_NAME", "probe")]


# ----------------------------------------------------------------- sync methods

def raise_sync(request: bytes, context: Any) -> bytes:
    raise _exception(json.loads(request))


def context_sync(request: bytes, context: Any) -> bytes:
    spec = json.loads(request)
    report = _context_report(context)
    report["add_callback"] = context.add_callback(lambda: _note("callback:" + spec["tag"]))
    if spec.get("trailers"):
        context.set_trailing_metadata([("x-trailer", "t"), ("x-trailer-bin", b"\x01\x02")])
    if spec.get("set_code"):
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("set by set_code")
    if spec.get("abort"):
        context.abort(grpc.StatusCode.ALREADY_EXISTS, "aborted")
        _note("after-abort:" + spec["tag"])  # must never run
    if spec.get("abort_with_details"):
        errors.abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, "bad name", *_details(spec),
                                  trailing_metadata=[("x-why", "details")])
        _note("after-abort:" + spec["tag"])
    if spec.get("sleep_ms"):
        deadline = time.monotonic() + spec["sleep_ms"] / 1000
        while time.monotonic() < deadline and context.is_active():
            time.sleep(0.01)
        if not context.is_active():
            _note("inactive:" + spec["tag"])
    return json.dumps(report).encode()


def events_sync(request: bytes, context: Any) -> bytes:
    with _lock:
        return json.dumps(_events).encode()


def stream_sync(request: bytes, context: Any) -> Any:
    spec = json.loads(request)
    if spec.get("endless"):
        yield from _endless_sync(spec)
        return
    for i in range(spec["count"]):
        yield str(i).encode()
    if spec.get("fail"):
        raise ValueError("stream failed")


def _endless_sync(spec: Dict[str, Any]) -> Any:
    """Large messages until cancelled, noting how the generator ended: it blocks in the
    server's write (flow control) once the client stops reading."""
    payload, i = b"x" * spec["size"], 0
    try:
        while True:
            _note(f"yield:{spec['tag']}:{i}")
            yield payload
            i += 1
    except GeneratorExit:
        _note("closed:" + spec["tag"])
        raise


def collect_sync(request_iterator: Any, context: Any) -> bytes:
    return b"|".join(request_iterator)


# ----------------------------------------------------------------- async methods

async def raise_async(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(0)
    raise _exception(json.loads(request))


async def context_async(request: bytes, context: Any) -> bytes:
    spec = json.loads(request)
    report = _context_report(context)
    report["add_callback"] = context.add_callback(lambda: _note("callback:" + spec["tag"]))
    if spec.get("trailers"):
        context.set_trailing_metadata([("x-trailer", "t"), ("x-trailer-bin", b"\x01\x02")])
    if spec.get("set_code"):
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("set by set_code")
    if spec.get("abort"):
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, "aborted")
        _note("after-abort:" + spec["tag"])
    if spec.get("abort_with_details"):
        await errors.abort_with_details(context, grpc.StatusCode.INVALID_ARGUMENT, "bad name", *_details(spec),
                                        trailing_metadata=[("x-why", "details")])
        _note("after-abort:" + spec["tag"])
    if spec.get("abort_with_status"):
        await context.abort_with_status(errors.build_status(grpc.StatusCode.DATA_LOSS, "lost"))
    if spec.get("sleep_ms"):
        context.add_done_callback(lambda ctx: _note(f"done-callback:{spec['tag']}:done={ctx.done()}"))
        _note("sleeping:" + spec["tag"])
        try:
            await asyncio.sleep(spec["sleep_ms"] / 1000)
        except asyncio.CancelledError:
            _note("cancelled:" + spec["tag"])
            _note(f"state:{spec['tag']}:cancelled={context.cancelled()}")
            raise
    return json.dumps(report).encode()


async def stream_async(request: bytes, context: Any) -> Any:
    spec = json.loads(request)
    if spec.get("endless"):
        payload, i = b"x" * spec["size"], 0
        try:
            while True:
                _note(f"yield:{spec['tag']}:{i}")
                yield payload
                i += 1
        except asyncio.CancelledError:
            _note("cancelled:" + spec["tag"])
            raise
        except GeneratorExit:
            _note("closed:" + spec["tag"])
            raise
    for i in range(spec["count"]):
        yield str(i).encode()
    if spec.get("fail"):
        raise ValueError("stream failed")


async def collect_async(request_iterator: Any, context: Any) -> bytes:
    return b"|".join([m async for m in request_iterator])


def add_probe_to_server(servicer: Any, server: Any) -> None:
    """Registers the probe like generated code does, but only through a generic handler."""
    handlers = {
        "RaiseSync": grpc.unary_unary_rpc_method_handler(raise_sync),
        "RaiseAsync": grpc.unary_unary_rpc_method_handler(raise_async),
        "ContextSync": grpc.unary_unary_rpc_method_handler(context_sync),
        "ContextAsync": grpc.unary_unary_rpc_method_handler(context_async),
        "Events": grpc.unary_unary_rpc_method_handler(events_sync),
        "StreamSync": grpc.unary_stream_rpc_method_handler(stream_sync),
        "StreamAsync": grpc.unary_stream_rpc_method_handler(stream_async),
        "CollectSync": grpc.stream_unary_rpc_method_handler(collect_sync),
        "CollectAsync": grpc.stream_unary_rpc_method_handler(collect_async),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


class Conflict(Exception):
    """A user exception mapped by the worker's exception_mapping."""


if __name__ == "__main__":
    import sys
    # Make `probe_worker.Conflict` importable by name from the request spec.
    sys.modules.setdefault("probe_worker", sys.modules[__name__])
    run_worker((add_probe_to_server, None),
               exception_mapping={Conflict: grpc.StatusCode.ABORTED, KeyError: grpc.StatusCode.FAILED_PRECONDITION})
