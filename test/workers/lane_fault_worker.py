"""Serves like testing_worker.py, with one shared-memory lane fault (PROCGRPC_TEST_LANE_FAULT):
the real lane code writes and reads the files, and this worker damages a file on disk in
between, as a crashed writer or a stray process would.

- ``response-truncate`` / ``response-nonce`` / ``response-missing``: each response lane file is
  cut short / given another nonce / removed after it was written (the pool reads it);
- ``request-truncate``: each request lane file is cut short before the worker reads it;
- ``request-stall`` / ``response-stall``: a message of STALL_BYTES or more stops the worker for
  good before it reads the request file / half-way through writing the response file, after it
  created the file PROCGRPC_TEST_LANE_STALL_MARK: the test kills it there, mid-transfer, without
  racing the transfer. Smaller messages pass, so a restarted worker serves them.
"""
import os
import runpy
import struct
import sys
import threading
from typing import Any, Iterable, Optional

from procgrpc import _shm
from procgrpc._services import lane as lane_module
from procgrpc._shm import HEADER_BYTES

fault = os.environ.get("PROCGRPC_TEST_LANE_FAULT", "")
STALL_BYTES = 32 * 1024 * 1024


def _stall() -> None:
    with open(os.environ["PROCGRPC_TEST_LANE_STALL_MARK"], "w"):
        pass
    threading.Event().wait()  # never set: the test kills this process


_write_all = _shm._write_all


def _write_half_then_stall(fd: int, parts: Iterable[Any], position: Optional[int] = None) -> None:
    views = [memoryview(p).cast("B") for p in parts]
    total = sum(v.nbytes for v in views)
    if total < STALL_BYTES:
        _write_all(fd, views, position)
        return
    joined = b"".join(views)
    _write_all(fd, [joined[: total // 2]], position)
    _stall()


def _path(directory: str, name: str) -> str:
    return os.path.join(directory, name)


_respond = lane_module.PipeLane.response_ref
_request = lane_module.PipeLane.request_payload


def response_ref(self: Any, payload: bytes) -> Optional[Any]:
    ref = _respond(self, payload)
    if ref is not None:
        path = _path(self.lane.directory, ref.name)
        if fault == "response-truncate":
            os.truncate(path, HEADER_BYTES + ref.length // 2)
        elif fault == "response-nonce":
            with open(path, "r+b") as f:
                f.seek(8)
                f.write(struct.pack("<Q", ref.nonce ^ 1))
        elif fault == "response-missing":
            os.unlink(path)
    return ref


def request_payload(self: Any, call: Any) -> bytes:
    if fault == "request-stall" and call.HasField("payload_ref") and call.payload_ref.length >= STALL_BYTES:
        _stall()
    if fault == "request-truncate" and call.HasField("payload_ref"):
        os.truncate(_path(self.lane.directory, call.payload_ref.name), HEADER_BYTES + call.payload_ref.length // 2)
    return _request(self, call)


if fault == "response-stall":
    _shm._write_all = _write_half_then_stall
lane_module.PipeLane.response_ref = response_ref  # type: ignore[method-assign]
lane_module.PipeLane.request_payload = request_payload  # type: ignore[method-assign]
sys.stderr.write(f"lane fault: {fault}\n")
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "testing_worker.py"), run_name="__main__")
