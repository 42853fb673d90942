"""Shared-memory lane prototype, worker side (issue 15 §1; not procgrpc's servicer path).

A bare grpc.aio bidirectional stream, like bench/bare_stream_server.py, whose messages carry
either the payload inline or a lane reference to a file in the pool's lane directory
(procgrpc._shm). The echo reads (and removes) the request file and answers with a new file.

Message (raw bytes, no protobuf):  u64 call id | u8 kind | ...
  kind 0 (inline):     payload
  kind 1 (reference):  u64 nonce | u64 length | name (ASCII)
Usage: python lane_server.py SOCKET_PATH LANE_DIR   (prints "ready" when serving)
"""
import asyncio
import os
import struct
import sys

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python-worker"))

from procgrpc._shm import Lane, LaneError, LaneReference  # noqa: E402

_REF = struct.Struct("<QBQQ")


def main_handler(lane: Lane):
    async def echo(request_iterator, context):
        async for message in request_iterator:
            kind = message[8]
            if kind == 0:
                yield message
                continue
            call_id, _, nonce, length = _REF.unpack_from(message)
            try:
                payload = lane.read(LaneReference(message[_REF.size:].decode("ascii"), length, nonce))
            except LaneError as exc:  # the prototype answers a bad reference with kind 2 + text
                yield struct.pack("<QB", call_id, 2) + str(exc).encode()
                continue
            ref = lane.write(payload)  # the echo's response goes back through the lane too
            yield _REF.pack(call_id, 1, ref.nonce, ref.length) + ref.name.encode("ascii")
    return echo


async def main(path: str, lane_dir: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    lane = Lane(lane_dir, "w1")
    server = grpc.aio.server(options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.lane.Lane", {
        "Echo": grpc.stream_stream_rpc_method_handler(main_handler(lane)),
    }),))
    server.add_insecure_port("unix:" + path)
    await server.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        await server.wait_for_termination()
    finally:
        lane.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
