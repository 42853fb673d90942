"""Unit tests of the pipe servicer's use of the shared-memory lane (procgrpc._services.lane):
real files in a private directory, PipeCall/PipeResult messages, no gRPC."""

from __future__ import annotations

import os
from typing import List

import pytest

from procgrpc._services import _pipeline_pb2 as pb
from procgrpc._services.lane import LANE_ERROR_TRAILER, PipeLane, lane_error_answer, read_request
from procgrpc._shm import Lane, LaneError, LaneReference, is_spare_file_name




def _message_files(lane_dir: str) -> List[str]:
    """The lane files that are messages, not the spares a reader keeps to write into next."""
    return [n for n in os.listdir(lane_dir) if not is_spare_file_name(n)]


def _call_with_file(node: Lane, payload: bytes) -> pb.PipeCall:
    ref = node.write(payload)
    return pb.PipeCall(call_id=1, method="/m", payload_ref=pb.LaneRef(name=ref.name, length=ref.length, nonce=ref.nonce))


def test_requests_inline_or_from_a_lane_file_which_is_removed(lane_dir: str) -> None:
    lane = PipeLane(Lane(lane_dir, "p1"), threshold=10, reserve=0)
    assert read_request(lane, pb.PipeCall(call_id=1, payload=b"inline")) == b"inline"
    assert read_request(None, pb.PipeCall(call_id=1, payload=b"inline")) == b"inline"
    call = _call_with_file(Lane(lane_dir, "n"), b"x" * 1000)
    assert read_request(lane, call) == b"x" * 1000
    assert _message_files(lane_dir) == []


def test_a_missing_file_or_a_worker_without_lane_is_a_lane_error_with_the_trailer(lane_dir: str) -> None:
    lane = PipeLane(Lane(lane_dir, "p1"), threshold=10, reserve=0)
    call = _call_with_file(Lane(lane_dir, "n"), b"y" * 100)
    os.unlink(os.path.join(lane_dir, call.payload_ref.name))
    with pytest.raises(LaneError) as missing:
        read_request(lane, call)
    assert missing.value.kind == "missing"
    details, trailer = lane_error_answer(missing.value)
    assert details.startswith("shared-memory lane: ") and trailer == ((LANE_ERROR_TRAILER, "missing"),)
    with pytest.raises(LaneError):
        read_request(None, call)


def test_responses_at_the_threshold_take_the_lane_and_a_full_directory_sends_them_inline(lane_dir: str) -> None:
    lane = PipeLane(Lane(lane_dir, "p1"), threshold=10, reserve=0)
    assert lane.response_ref(b"short") is None
    ref = lane.response_ref(b"z" * 10)
    assert ref is not None and ref.length == 10 and ref.name.startswith("p1-")
    assert not ref.HasField("crc32")
    assert Lane(lane_dir, "n").read(LaneReference(ref.name, ref.length, ref.nonce)) == b"z" * 10
    full = PipeLane(Lane(lane_dir, "p1"), threshold=10, reserve=2**62)
    assert full.response_ref(b"z" * 100) is None and full.response_ref(b"z" * 100) is None
    assert _message_files(lane_dir) == []


def test_stream_responses_take_the_lane_within_their_bound_and_a_cancelled_call_removes_its_unread_files(lane_dir: str) -> None:
    from procgrpc._services.lane_streams import STREAM_OUTSTANDING_BYTES, _ResponseFiles

    lane = PipeLane(Lane(lane_dir, "p1"), threshold=10, reserve=0)
    files = _ResponseFiles(lane)
    big = b"z" * (1 << 20)
    frames = [files.frame(big) for _ in range(12)]
    references = [f for f in frames if f[:1] == b"\x01"]
    assert len(references) == STREAM_OUTSTANDING_BYTES // len(big)  # the rest went inline
    assert all(f == b"\x00" + big for f in frames if f[:1] == b"\x00")
    assert files.frame(b"small") == b"\x00small"
    # The pool opened one: room for one more.
    ref = pb.LaneRef.FromString(references[0][1:])
    assert Lane(lane_dir, "n").read(LaneReference(ref.name, ref.length, ref.nonce, None)) == big
    assert files.frame(big)[:1] == b"\x01"
    files.discard_unread()
    assert _message_files(lane_dir) == []
