"""DemoServicer: the demo.v1.DemoService implementation used by examples/demo_worker.py."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import os
import re

import grpc

from demo.v1 import demo_pb2, demo_pb2_grpc
from procgrpc import get_logger

log = get_logger(component="demo")

_WORD = re.compile(r"[\w']+")


class DemoServicer(demo_pb2_grpc.DemoServiceServicer):
    """Echo and Divide are plain `def` methods (run in the worker's thread pool);
    WordCount is `async def` (runs on the worker's event loop)."""

    def Echo(self, request: demo_pb2.EchoRequest, context: grpc.ServicerContext) -> demo_pb2.EchoResponse:
        return demo_pb2.EchoResponse(text=request.text, worker_pid=os.getpid())

    def Divide(self, request: demo_pb2.DivideRequest, context: grpc.ServicerContext) -> demo_pb2.DivideResponse:
        if request.divisor == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot divide {request.dividend:g} by zero")
        return demo_pb2.DivideResponse(quotient=request.dividend / request.divisor)

    async def WordCount(self, request: demo_pb2.WordCountRequest, context: grpc.aio.ServicerContext) -> demo_pb2.WordCountResponse:
        words = [w.lower() for w in _WORD.findall(request.text)]
        await asyncio.sleep(0)  # a real servicer would await I/O here
        counts = collections.Counter(words)
        log.debug("counted words", total=len(words), distinct=len(counts))
        return demo_pb2.WordCountResponse(total=len(words), counts=dict(counts))

    async def Generate(self, request: demo_pb2.GenerateRequest, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        """Server streaming from an async generator: one token at a time, like a model would."""
        words = (request.prompt or "procgrpc streams tokens").split()
        for i in range(request.max_tokens or 8):
            await asyncio.sleep(0.01)  # a real model computes here
            yield demo_pb2.GenerateResponse(token=" " + words[i % len(words)], index=i)

    def Upload(self, request_iterator, context: grpc.ServicerContext) -> demo_pb2.UploadResponse:  # type: ignore[no-untyped-def]
        """Client streaming into a plain ``def``: the chunks arrive as an iterator."""
        digest, size, chunks = hashlib.sha256(), 0, 0
        for request in request_iterator:
            digest.update(request.chunk)
            size += len(request.chunk)
            chunks += 1
        return demo_pb2.UploadResponse(size=size, sha256=digest.hexdigest(), chunks=chunks)
