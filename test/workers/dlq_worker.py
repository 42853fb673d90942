"""Serves testing.v1.ResilienceTestService for the dead-letter tests: Score counts its executions.

Score fails with INVALID_ARGUMENT while the request's `fixed_flag_path` does not exist (for items
whose id is divisible by `fail_every`). Otherwise it appends `start <id>` to `ledger_path`, then,
when `ms` is -1, waits (while the call is active) for the gate file `<ledger_path>.open`, and
appends `done <id>` only if the call was not cancelled meanwhile. A `done` line is the side effect
a duplicate replay would repeat; the tests count them per id.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

from procgrpc import errors, run_worker  # noqa: E402
from testing.v1 import resilience_pb2, resilience_pb2_grpc  # noqa: E402


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


class DeadLetterTestService(resilience_pb2_grpc.ResilienceTestServiceServicer):
    def Score(self, request, context):
        fixed = bool(request.fixed_flag_path) and os.path.exists(request.fixed_flag_path)
        if request.fail_every and request.id % request.fail_every == 0 and not fixed:
            raise errors.InvalidArgument(f"item {request.id} cannot be scored")
        if request.ledger_path:
            _append(request.ledger_path, f"start {request.id} {os.getpid()}")
        if request.ms == -1:
            gate = request.ledger_path + ".open"
            while not os.path.exists(gate):
                if not context.is_active():
                    return resilience_pb2.ScoreResponse()
                time.sleep(0.005)
        elif request.ms > 0:
            time.sleep(request.ms / 1000.0)
        if request.ledger_path:
            _append(request.ledger_path, f"done {request.id} {os.getpid()}")
        return resilience_pb2.ScoreResponse(id=request.id, score=request.id * 2)


if __name__ == "__main__":
    run_worker((resilience_pb2_grpc.add_ResilienceTestServiceServicer_to_server, DeadLetterTestService()))
