"""The floor the pipelined transport is built on (not procgrpc): a bare grpc.aio server with one
bidirectional-stream method that echoes every message back (``async for`` + ``yield``).

Messages are raw bytes (no protobuf): an 8-byte call id, then the payload; the reply is the same
bytes, so the client matches replies to calls by id. Same server options as procgrpc's worker
(unlimited message sizes).

Usage: python bare_stream_server.py SOCKET_PATH   (prints "ready" when serving)
"""
import asyncio
import os
import sys

import grpc


async def echo(request_iterator, context):
    async for message in request_iterator:
        yield message


async def main(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    server = grpc.aio.server(options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.bare.Bare", {
        "Echo": grpc.stream_stream_rpc_method_handler(echo),
    }),))
    server.add_insecure_port("unix:" + path)
    await server.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
