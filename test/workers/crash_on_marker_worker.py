"""The testing worker, except that it exits with code 5 at start while the file named by
PROCGRPC_TEST_CRASH_MARKER exists: a crash loop the tests can turn on and off."""

from __future__ import annotations

import os
import sys

marker = os.environ.get("PROCGRPC_TEST_CRASH_MARKER", "")
if marker and os.path.exists(marker):
    sys.stderr.write("crashing on start: marker file present\n")
    sys.exit(5)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procgrpc import run_worker  # noqa: E402
from testing_worker import TestService, testing_pb2_grpc  # noqa: E402

if __name__ == "__main__":
    run_worker((testing_pb2_grpc.add_TestServiceServicer_to_server, TestService()))
