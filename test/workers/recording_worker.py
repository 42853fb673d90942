"""StreamingTestService for the CLI and pushable tests, beside streaming_worker.py's methods:

- The ``async def`` methods record a cancellation as the file
  ``$PROCGRPC_TEST_STATE_DIR/cancelled-<x-request-id>`` when asyncio cancels them. grpc.aio cancels
  a servicer only while it is still running (a cancelled call's request stream otherwise just
  ends), so AsyncChat and AsyncUpload hold on a message "hold" (AsyncUpload: data b"hold"): they
  write ``holding-<x-request-id>`` and wait until cancelled. AsyncChat fails on "fail".
- Upload, for a tagged upload, reads one chunk and then stops reading until the file
  ``$PROCGRPC_TEST_STATE_DIR/<tag>`` exists (a stuck consumer, for backpressure); StreamStats
  reports in ``produced`` the chunks it has read per tag.
"""

from __future__ import annotations

import asyncio
import os
import runpy
import time
from typing import Any

_streaming = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "streaming_worker.py"))
grpc: Any = _streaming["grpc"]
streaming_pb2: Any = _streaming["streaming_pb2"]
_produced: dict = _streaming["produced"]
_lock: Any = _streaming["_lock"]
_STATE_DIR = os.environ.get("PROCGRPC_TEST_STATE_DIR", "")


def _mark(name: str, context: Any) -> None:
    request_id = dict(context.invocation_metadata()).get("x-request-id", "")
    if _STATE_DIR and request_id:
        with open(os.path.join(_STATE_DIR, f"{name}-{request_id}"), "w"):
            pass


async def _hold(context: Any) -> None:
    _mark("holding", context)
    await asyncio.sleep(3600)


class RecordingService(_streaming["StreamingService"]):  # type: ignore[misc]
    async def AsyncCount(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method name)
        try:
            for i in range(request.n):
                if request.fail_after and i == request.fail_after:
                    await context.abort(_streaming["_code"](request.fail_code), f"failed after {i} messages")
                yield streaming_pb2.AsyncCountResponse(index=i)
                await asyncio.sleep(request.interval_ms / 1000)
        except asyncio.CancelledError:
            _mark("cancelled", context)
            raise

    async def AsyncChat(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        try:
            async for message in request_iterator:
                if message.text == "fail":
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "told to fail")
                if message.text == "hold":
                    await _hold(context)
                yield streaming_pb2.AsyncChatResponse(text=message.text[::-1])
        except asyncio.CancelledError:
            _mark("cancelled", context)
            raise

    async def AsyncUpload(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        total, chunks = 0, 0
        try:
            async for chunk in request_iterator:
                total += len(chunk.data)
                chunks += 1
                if chunk.data == b"hold":
                    await _hold(context)
        except asyncio.CancelledError:
            _mark("cancelled", context)
            raise
        return streaming_pb2.AsyncUploadResponse(bytes=total, chunks=chunks)

    def Upload(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        total, chunks = 0, 0
        for chunk in request_iterator:
            total += len(chunk.data)
            chunks += 1
            if chunk.tag:
                with _lock:
                    _produced[chunk.tag] = chunks
                gate = os.path.join(_STATE_DIR, chunk.tag)
                while chunks == 1 and not os.path.exists(gate) and context.is_active():
                    time.sleep(0.01)
        return streaming_pb2.UploadResponse(bytes=total, chunks=chunks)


if __name__ == "__main__":
    _streaming["run_worker"](
        (_streaming["streaming_pb2_grpc"].add_StreamingTestServiceServicer_to_server, RecordingService()),
        (_streaming["testing_pb2_grpc"].add_TestServiceServicer_to_server, _streaming["_testing"]["TestService"]()),
    )
