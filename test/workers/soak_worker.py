"""The hostile soak's worker (bench/soak-hostile.ts): testing.v1.TestService, ResilienceTestService
(its Flaky counts executions per key in files, across workers), StreamingTestService and the
hostile servicer (subprocesses, loop blocking) in one process."""

from __future__ import annotations

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "gen", "python"))
sys.path.insert(0, HERE)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import hostile_worker  # noqa: E402
import resilience_worker  # noqa: E402
import testing_worker  # noqa: E402
from procgrpc import run_worker  # noqa: E402
from testing.v1 import resilience_pb2_grpc, streaming_pb2_grpc, testing_pb2_grpc  # noqa: E402

_streaming = runpy.run_path(os.path.join(HERE, "streaming_worker.py"))

if __name__ == "__main__":
    run_worker((testing_pb2_grpc.add_TestServiceServicer_to_server, testing_worker.TestService()),
               (resilience_pb2_grpc.add_ResilienceTestServiceServicer_to_server, resilience_worker.ResilienceTestService()),
               (streaming_pb2_grpc.add_StreamingTestServiceServicer_to_server, _streaming["StreamingService"]()),
               (hostile_worker.add_hostile_to_server, None))
