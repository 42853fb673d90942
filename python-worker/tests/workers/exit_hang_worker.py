"""A worker whose process cannot finish exiting: an object held by this module blocks in its
``__del__``, which the interpreter calls while it tears the module down, after it has begun
finalizing (when Python threads, the worker's last-resort exit timer among them, can no longer
run). It stands for anything that hangs there, e.g. a library's shutdown in a destructor."""

from __future__ import annotations

import threading
from typing import Any

import grpc

from procgrpc import run_worker

SERVICE = "procgrpc.test.ExitHang"


class _BlocksAtTeardown:
    def __del__(self) -> None:
        threading.Event().wait()  # never set: blocks for good, as a hung shutdown does


HELD = _BlocksAtTeardown()


def _ping(request: bytes, context: Any) -> bytes:
    return b"pong"


def add_exit_hang_to_server(servicer: Any, server: Any) -> None:
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Ping": grpc.unary_unary_rpc_method_handler(_ping),
    }),))


if __name__ == "__main__":
    run_worker((add_exit_hang_to_server, None))
