"""The same TestService Echo on a plain synchronous grpcio server (no procgrpc), for
bench/server-flavour.ts: the baseline the worker's server flavour is compared against."""
import os
import sys
from concurrent import futures

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen", "python"))
from testing.v1 import testing_pb2, testing_pb2_grpc  # noqa: E402


class Echo(testing_pb2_grpc.TestServiceServicer):
    def Echo(self, request, context):
        return testing_pb2.EchoResponse(text=request.text, payload=request.payload, worker_pid=os.getpid())


if __name__ == "__main__":
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), maximum_concurrent_rpcs=64)
    testing_pb2_grpc.add_TestServiceServicer_to_server(Echo(), server)
    server.add_insecure_port("unix:" + sys.argv[1])
    server.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.wait_for_termination()
