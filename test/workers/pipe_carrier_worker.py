"""TestService worker for the pipeline-carrier tests (test/pipe-carrier.test.ts).

``PIPE_CARRIER_MODE=old`` makes it a worker of an older procgrpc, which does not serve the socket
pair (it ignores ``PROCGRPC_PIPE_FD``); otherwise ``Echo`` with text ``garbage-on-pipe`` writes a
frame prefix no pool would accept onto the pipe's socket pair, as a servicer corrupting the
worker's own descriptors would, then answers.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testing_worker import RawService, TestService, add_raw_service  # noqa: E402
from testing.v1 import testing_pb2_grpc  # noqa: E402

from procgrpc import run_worker  # noqa: E402


class CarrierTestService(TestService):
    def Echo(self, request, context):
        if request.text == "garbage-on-pipe":
            os.write(int(os.environ["PROCGRPC_PIPE_FD"]), b"\xff\xff\xff\xff")
        return super().Echo(request, context)


if __name__ == "__main__":
    if os.environ.get("PIPE_CARRIER_MODE") == "old":
        os.environ.pop("PROCGRPC_PIPE_FD", None)
    run_worker((testing_pb2_grpc.add_TestServiceServicer_to_server, CarrierTestService()),
               (add_raw_service, RawService()))
