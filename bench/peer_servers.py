"""Comparison servers for bench/ (not procgrpc): Python asyncio on a Unix socket.

``json``: pyproc's design, a 4-byte big-endian length then a JSON object
``{"id": n, "method": "echo", "payload": "<base64>"}``; the reply is the same shape.
``binary``: the socket floor, a 4-byte length then raw bytes, echoed back unchanged.

Usage: python peer_servers.py json|binary SOCKET_PATH   (prints "ready" when listening)
"""
import asyncio
import base64
import json
import os
import struct
import sys


async def serve_json(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            header = await reader.readexactly(4)
            body = await reader.readexactly(struct.unpack(">I", header)[0])
            request = json.loads(body)
            payload = base64.b64decode(request["payload"])
            reply = json.dumps({"id": request["id"], "payload": base64.b64encode(payload).decode()}).encode()
            writer.write(struct.pack(">I", len(reply)) + reply)
    except asyncio.IncompleteReadError:
        writer.close()


async def serve_binary(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            header = await reader.readexactly(4)
            body = await reader.readexactly(struct.unpack(">I", header)[0])
            writer.write(header + body)
    except asyncio.IncompleteReadError:
        writer.close()


async def main(kind: str, path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    handler = serve_json if kind == "json" else serve_binary
    server = await asyncio.start_unix_server(handler, path=path, limit=64 * 1024 * 1024)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
