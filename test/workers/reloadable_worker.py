"""A servicer to edit while it runs (watch-mode tests copy this file to a temp directory and change
VERSION): TestService whose Echo answers "<VERSION>:<text>". Everything else is testing_worker.py's,
found through $PROCGRPC_TEST_WORKERS."""

from __future__ import annotations

import os
import runpy
from typing import Any

_testing = runpy.run_path(os.path.join(os.environ["PROCGRPC_TEST_WORKERS"], "testing_worker.py"))

VERSION = "v1"


class ReloadableService(_testing["TestService"]):  # type: ignore[misc]
    def Echo(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method name)
        reply = super().Echo(request, context)
        reply.text = f"{VERSION}:{request.text}"
        return reply


if __name__ == "__main__":
    _testing["run_worker"]((_testing["testing_pb2_grpc"].add_TestServiceServicer_to_server, ReloadableService()))
