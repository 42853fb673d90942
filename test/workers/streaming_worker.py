"""testing.v1.StreamingTestService (plus TestService) for procgrpc's streaming tests."""

from __future__ import annotations

import asyncio
import os
import runpy
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

import grpc  # noqa: E402

from procgrpc import run_worker  # noqa: E402
from testing.v1 import streaming_pb2, streaming_pb2_grpc, testing_pb2_grpc  # noqa: E402

_testing = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "testing_worker.py"))

_lock = threading.Lock()
cancelled_tags: list = []
finished_tags: list = []
produced: dict = {}


def _record(bucket: list, tag: str) -> None:
    if tag:
        with _lock:
            if tag not in bucket:
                bucket.append(tag)


class StreamingService(streaming_pb2_grpc.StreamingTestServiceServicer):
    def Count(self, request, context):
        tag = request.tag
        if request.fail_first:
            path = os.path.join(request.state_dir, tag)
            with _lock:
                seen = int(open(path).read()) if os.path.exists(path) else 0
                with open(path, "w") as f:
                    f.write(str(seen + 1))
            if seen < request.fail_first:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"not ready yet (call {seen + 1} for {tag})")
        context.add_callback(lambda: _record(cancelled_tags, tag) if not context.is_active() else None)
        payload = b"x" * request.payload_size
        try:
            for i in range(request.n):
                if request.fail_after and i == request.fail_after:
                    context.set_trailing_metadata((("failed-at", str(i)),))
                    context.abort(_code(request.fail_code), f"failed after {i} messages")
                if not context.is_active():
                    _record(cancelled_tags, tag)
                    return
                if tag:
                    with _lock:
                        produced[tag] = i + 1
                yield streaming_pb2.CountResponse(index=i, payload=payload, worker_pid=os.getpid())
                if request.interval_ms:
                    time.sleep(request.interval_ms / 1000)
            context.set_trailing_metadata((("total", str(request.n)),))
        finally:
            _record(finished_tags, tag)

    async def AsyncCount(self, request, context):
        tag = request.tag
        try:
            for i in range(request.n):
                if request.fail_after and i == request.fail_after:
                    await context.abort(_code(request.fail_code), f"failed after {i} messages")
                yield streaming_pb2.AsyncCountResponse(index=i)
                await asyncio.sleep(request.interval_ms / 1000)
        except asyncio.CancelledError:
            _record(cancelled_tags, tag)
            raise
        finally:
            _record(finished_tags, tag)

    def Upload(self, request_iterator, context):
        total, chunks, read_at = 0, 0, []
        for chunk in request_iterator:
            read_at.append(time.time() * 1000)
            total += len(chunk.data)
            chunks += 1
            if chunk.delay_ms:
                time.sleep(chunk.delay_ms / 1000)
        return streaming_pb2.UploadResponse(bytes=total, chunks=chunks, read_at_ms=read_at)

    async def AsyncUpload(self, request_iterator, context):
        total, chunks = 0, 0
        async for chunk in request_iterator:
            total += len(chunk.data)
            chunks += 1
        return streaming_pb2.AsyncUploadResponse(bytes=total, chunks=chunks)

    def Chat(self, request_iterator, context):
        tag = ""
        try:
            for message in request_iterator:
                tag = message.tag or tag
                yield streaming_pb2.ChatResponse(text=message.text.upper())
        finally:
            if not context.is_active():
                _record(cancelled_tags, tag)

    async def AsyncChat(self, request_iterator, context):
        async for message in request_iterator:
            yield streaming_pb2.AsyncChatResponse(text=message.text[::-1])

    def StreamStats(self, request, context):
        with _lock:
            return streaming_pb2.StreamStatsResponse(
                cancelled_tags=list(cancelled_tags), finished_tags=list(finished_tags),
                produced=dict(produced), worker_pid=os.getpid())


def _code(number: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    raise ValueError(f"unknown status code {number}")


if __name__ == "__main__":
    run_worker(
        (streaming_pb2_grpc.add_StreamingTestServiceServicer_to_server, StreamingService()),
        (testing_pb2_grpc.add_TestServiceServicer_to_server, _testing["TestService"]()),
    )
