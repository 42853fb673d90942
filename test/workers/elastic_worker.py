"""testing.v1.TestService for the elastic-pool tests: Echo with text "facts:NAME,..." answers
with what this process was given (environment variables asked for, argv, CPU affinity) as JSON;
every other call behaves as in testing_worker.py (Stats counts every call this process served)."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testing_worker import RawService, TestService, add_raw_service, testing_pb2, testing_pb2_grpc  # noqa: E402

from procgrpc import run_worker  # noqa: E402


class ElasticService(TestService):
    def Echo(self, request, context):
        if not request.text.startswith("facts:"):
            return super().Echo(request, context)
        names = [n for n in request.text[len("facts:"):].split(",") if n]
        affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        facts = {"pid": os.getpid(), "env": {n: os.environ.get(n) for n in names}, "argv": sys.argv[1:], "affinity": affinity}
        return testing_pb2.EchoResponse(text=json.dumps(facts), worker_pid=os.getpid())


if __name__ == "__main__":
    run_worker((testing_pb2_grpc.add_TestServiceServicer_to_server, ElasticService()), (add_raw_service, RawService()))
