"""The shared-memory lane as the pipe servicer uses it (issue 15 §1; docs/shared-memory-lane.md).

The pool gives the worker its lane directory in ``PROCGRPC_LANE_DIR`` (empty or unset: no lane),
the threshold in ``PROCGRPC_LANE_THRESHOLD`` and the free-space reserve in
``PROCGRPC_LANE_RESERVE``. A ``PipeCall`` with a ``payload_ref`` has its request in a lane file
(read and removed here); a response of at least the threshold is written as a lane file and its
``PipeResult`` carries the reference. A response that cannot be written (a full tmpfs) goes
inline, with one warning; a request file that cannot be read fails the call with INTERNAL and
the ``procgrpc-lane-error`` trailer, which the pool reports as a ``protocol`` error.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Mapping, Optional, Tuple

from .._process.log import get_logger
from .._shm import Lane, LaneError, LaneReference
from . import _pipeline_pb2 as pb

__all__ = ["LANE_ERROR_TRAILER", "PipeLane", "lane_error_answer", "lane_from_environment", "read_request"]

#: Trailer of an answer the worker failed because the request's lane file could not be read.
LANE_ERROR_TRAILER = "procgrpc-lane-error"

_log = get_logger()


class PipeLane:
    """Reads request files and writes response files of one worker process."""

    def __init__(self, lane: Lane, threshold: int, reserve: int) -> None:
        self.lane = lane
        self.threshold = threshold
        self.reserve = reserve
        self._warned = False

    def request_payload(self, call: Any) -> bytes:
        """The call's serialized request: inline, or read from its lane file (removed).
        Raises :class:`LaneError` when the file is missing, truncated or not the one referenced."""
        if not call.HasField("payload_ref"):
            return bytes(call.payload)
        ref = call.payload_ref
        return self.lane.read(LaneReference(ref.name, ref.length, ref.nonce,
                                            ref.crc32 if ref.HasField("crc32") else None))

    def response_ref(self, payload: bytes) -> Optional[Any]:
        """Writes a large response as a lane file and returns its ``LaneRef``; None: send it inline."""
        if len(payload) < self.threshold:
            return None
        try:
            why_not = self.lane.placement(len(payload), self.threshold, self.reserve)
            if why_not is None:
                ref = self.lane.write(payload)
                return pb.LaneRef(name=ref.name, length=ref.length, nonce=ref.nonce, crc32=ref.crc32)
        except (LaneError, OSError) as exc:
            why_not = str(exc)
        if not self._warned:
            self._warned = True
            _log.warn("shared-memory lane: a large response goes over the socket instead (logged once)",
                      reason=why_not)
        return None

    def discard(self, ref: Any) -> None:
        """Removes a response file nobody will read (its call was given up)."""
        try:
            self.lane.discard(LaneReference(ref.name, ref.length, ref.nonce))
        except LaneError:
            pass


def read_request(lane: Optional[PipeLane], call: Any) -> bytes:
    """The call's serialized request, inline or from its lane file; raises :class:`LaneError`."""
    if lane is not None:
        return lane.request_payload(call)
    if call.HasField("payload_ref"):
        raise LaneError("io", "the request is in the shared-memory lane, but this worker has no lane directory")
    return bytes(call.payload)


def lane_error_answer(exc: Exception) -> Tuple[str, Tuple[Tuple[str, str], ...]]:
    """Details and trailer of the INTERNAL answer to a call whose request file could not be read."""
    kind = exc.kind if isinstance(exc, LaneError) else "io"
    return f"shared-memory lane: {exc}", ((LANE_ERROR_TRAILER, kind),)


_from_env: Optional[Tuple[Optional[PipeLane]]] = None


def lane_from_environment(env: Mapping[str, str] = os.environ) -> Optional[PipeLane]:
    """This process's lane (one per process, made on first use), or None when the pool gave none.
    Its files are removed when the process exits normally; the pool removes them after any exit."""
    global _from_env
    if _from_env is None:
        _from_env = (_make(env),)
    return _from_env[0]


def _make(env: Mapping[str, str]) -> Optional[PipeLane]:
    directory = env.get("PROCGRPC_LANE_DIR", "")
    if not directory:
        return None
    try:
        lane = Lane(directory, f"p{os.getpid()}")
    except (LaneError, OSError, ValueError) as exc:
        _log.warn("shared-memory lane unusable; large responses go over the socket", error=str(exc))
        return None
    atexit.register(lane.close)
    return PipeLane(lane, int(env.get("PROCGRPC_LANE_THRESHOLD", "0") or 0), int(env.get("PROCGRPC_LANE_RESERVE", "0") or 0))
