"""The demo worker: `python examples/demo_worker.py` as started by the Node WorkerPool."""

import os
import sys

# procgrpc's repo keeps generated stubs in <repo>/gen/python. In your own
# project the stubs are importable the normal way and these two lines go.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(_HERE, "..", "gen", "python"), _HERE]

from demo.v1 import demo_pb2_grpc  # noqa: E402
from demo_servicer import DemoServicer  # noqa: E402

from procgrpc import run_worker  # noqa: E402

if __name__ == "__main__":
    run_worker((demo_pb2_grpc.add_DemoServiceServicer_to_server, DemoServicer()))
