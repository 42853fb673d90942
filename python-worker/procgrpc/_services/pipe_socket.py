"""The pipeline on the worker's inherited socket: the same ``PipeRequest``/``PipeResponse`` messages
as on the ``Pipe`` gRPC stream, each framed by a 4-byte little-endian length, over the socket pair
the pool opened when it spawned the worker (``PROCGRPC_PIPE_FD``). No HTTP/2 under small calls:
what the bare gRPC stream costs per message is gone (docs/pipelined-call-costs.md).

The pool half-closes its end to say "no more calls"; the worker answers what is running, then
closes its end. The socket pair is the parent's and this process's alone (no path, nothing to
sweep); it closes with either process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import Any, Callable, Optional, Tuple, Union

import grpc

from .._process.log import get_logger
from . import _pipeline_pb2 as pb
from .lane import PipeLane
from .pipeline import PipeRegistry, _Pipe

__all__ = ["SocketPipeStream", "open_inherited", "serve_inherited"]

_HEADER = struct.Struct("<I")
#: No protobuf message is longer (2 GiB - 1): a longer prefix is not one of the pool's.
_MAX_FRAME = 0x7FFFFFFF
# Room to read whole frames of large inline messages without pausing the socket per 64 KiB.
_READ_LIMIT = 4 * 1024 * 1024

_log = get_logger()


class SocketPipeStream:
    """What :class:`_Pipe` reads calls from and writes answers to, on a socket: ``read()`` gives
    the next ``PipeRequest`` (``grpc.aio.EOF`` once the pool half-closed, or the socket broke),
    ``write_now()`` sends one ``PipeResponse`` without waiting (``_Pipe`` writes synchronously on
    it), ``drain()`` waits for what was sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._broken = False

    async def read(self) -> Union[Any, object]:
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            if size > _MAX_FRAME:
                _log.error("pipe socket carried a frame prefix longer than any message; closing it", size=size)
                self._broken = True
                return grpc.aio.EOF
            body = await self._reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                _log.warn("pipe socket ended inside a frame", received=len(exc.partial))
            return grpc.aio.EOF
        except OSError:  # reset, or the descriptor closed under the loop
            self._broken = True
            return grpc.aio.EOF
        try:
            return pb.PipeRequest.FromString(body)
        except Exception as exc:  # DecodeError: the peer is not the pool (or a bug): stop reading.
            _log.error("pipe socket carried a frame that is not a PipeRequest; closing it", error=str(exc))
            self._broken = True
            return grpc.aio.EOF

    def write_now(self, response: Any) -> None:
        """Send one ``PipeResponse`` at once (buffered by the transport if the socket is full;
        :meth:`drain` waits for that buffer)."""
        if self._broken or self._writer.is_closing():
            return  # the pool is gone: nobody reads answers any more
        data = response.SerializeToString()
        self._writer.writelines((_HEADER.pack(len(data)), data))

    async def drain(self) -> None:
        """Wait until what was written is on its way (the socket took it)."""
        try:
            await self._writer.drain()
        except ConnectionError:
            self._broken = True

    async def close(self) -> None:
        """End the worker's side: the pool sees the end of the pipe."""
        try:
            if self._writer.can_write_eof() and not self._writer.is_closing():
                self._writer.write_eof()
            self._writer.close()
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def open_inherited(fd: int) -> Optional[Tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Wrap the inherited socket for asyncio; None (with a warning) when ``fd`` is not a socket."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        _log.warn("pipe descriptor is not a socket; serving the pipeline on gRPC only", fd=fd, error=str(exc))
        return None
    # Not handed on to a servicer's subprocesses: the pool must see the pipe end with this process.
    os.set_inheritable(sock.fileno(), False)
    return await asyncio.open_connection(sock=sock, limit=_READ_LIMIT)


async def serve_inherited(streams: Tuple[asyncio.StreamReader, asyncio.StreamWriter],
                          lookup: Callable[[str, Tuple[Tuple[str, Any], ...]], Any],
                          registry: PipeRegistry, lane: Optional[PipeLane]) -> None:
    """Serve the pipeline on the inherited socket until the pool half-closes it (or the worker
    stops and :class:`PipeRegistry` ends it), then close the worker's end."""
    stream = SocketPipeStream(*streams)
    try:
        await _Pipe(lookup, stream, registry, lane).serve()
    finally:
        await stream.close()
