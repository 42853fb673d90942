"""The benchmark worker: bench.v1.BenchService.Echo as an ``async def`` on procgrpc's run_worker."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen", "python"))

import grpc  # noqa: E402

from bench.v1 import bench_pb2, bench_pb2_grpc  # noqa: E402
from procgrpc import run_worker  # noqa: E402


class Bench(bench_pb2_grpc.BenchServiceServicer):
    async def Echo(self, request, context):
        return bench_pb2.EchoResponse(payload=request.payload)

    async def Fail(self, request, context):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "this call always fails")


if __name__ == "__main__":
    run_worker((bench_pb2_grpc.add_BenchServiceServicer_to_server, Bench()))
