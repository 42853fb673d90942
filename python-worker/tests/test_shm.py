"""Unit tests of the shared-memory lane's file primitives (procgrpc._shm): real files, no gRPC."""

from __future__ import annotations

import errno
import os
import stat
import struct
import tempfile
import zlib
from typing import Optional

import pytest

from procgrpc._shm import (HEADER_BYTES, MAX_PADDING, MAX_SPARE_FILES, SPARE_FILES_MAX_BYTES, SPARE_IDLE_SECONDS, Lane, LaneError,
                          LaneReference, is_spare_file_name)




def test_round_trip_every_size_0600_and_removed_by_the_reader(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    for size in (0, 1, 4095, 65536, 1 << 20):
        payload = bytes(i % 251 for i in range(size))
        ref = lane.write(payload)
        path = os.path.join(lane_dir, ref.name)
        assert ref.length == size and ref.name.startswith("w1-")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert os.stat(path).st_size == HEADER_BYTES + size
        assert lane.read(ref) == payload
        assert not os.path.exists(path)


def test_parts_are_written_back_to_back(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    ref = lane.write([b"abc", b"", bytearray(b"de"), memoryview(b"fg")])
    assert lane.read(ref) == b"abcdefg"


def test_names_and_nonces_are_distinct(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    refs = [lane.write(b"x") for _ in range(50)]
    assert len({r.name for r in refs}) == 50 and len({r.nonce for r in refs}) == 50
    assert lane.sweep() == 50


def test_missing_file_is_a_clear_error(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    ref = lane.write(b"hello")
    lane.read(ref)
    with pytest.raises(LaneError) as info:
        lane.read(ref)
    assert info.value.kind == "missing" and ref.name in str(info.value)


def test_truncated_file_is_a_clear_error_and_removed(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    ref = lane.write(b"x" * 1000)
    os.truncate(os.path.join(lane_dir, ref.name), HEADER_BYTES + 10)
    with pytest.raises(LaneError) as info:
        lane.read(ref)
    assert info.value.kind == "truncated"
    assert os.listdir(lane_dir) == []


def test_longer_file_other_nonce_or_no_header_is_a_mismatch(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    longer = lane.write(b"abc")
    with open(os.path.join(lane_dir, longer.name), "ab") as f:
        f.write(b"more")
    stale = lane.write(b"abc")
    forged = "n-forged"
    with open(os.path.join(lane_dir, forged), "wb") as f:
        f.write(bytes(HEADER_BYTES + 3))
    wrong_length = lane.write(b"abcd")
    cases = [(longer, "expected"), (stale._replace(nonce=stale.nonce ^ 1), "nonce"),
             (LaneReference(forged, 3, 0), "no lane header"), (wrong_length._replace(length=3), "header says")]
    for ref, text in cases:
        with pytest.raises(LaneError) as info:
            lane.read(ref)
        assert info.value.kind == "mismatch" and text in str(info.value)
    assert os.listdir(lane_dir) == []


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", ".", "..", "", "x" * 65])
def test_references_never_leave_the_directory(lane_dir: str, name: str) -> None:
    with pytest.raises(LaneError) as info:
        Lane(lane_dir, "w1").read(LaneReference(name, 1, 0))
    assert info.value.kind == "invalid-reference"


def test_negative_length_is_an_invalid_reference(lane_dir: str) -> None:
    with pytest.raises(LaneError) as info:
        Lane(lane_dir, "w1").read(LaneReference("ok", -1, 0))
    assert info.value.kind == "invalid-reference"


def test_a_planted_symlink_is_not_followed(lane_dir: str, tmp_path: "os.PathLike[str]") -> None:
    target = os.path.join(str(tmp_path), "secret")
    with open(target, "w") as f:
        f.write("secret")
    os.symlink(target, os.path.join(lane_dir, "n-link"))
    with pytest.raises(LaneError) as info:
        Lane(lane_dir, "w1").read(LaneReference("n-link", 6, 0))
    assert info.value.kind == "io"
    assert os.path.exists(target)


def test_crc32_is_verified_when_present(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    ref = lane.write([b"1234", b"56789"], crc32=True)
    assert ref.crc32 == 0xCBF43926 == zlib.crc32(b"123456789")
    assert lane.read(ref) == b"123456789"
    bad = lane.write(b"123456789", crc32=True)
    with pytest.raises(LaneError) as info:
        lane.read(bad._replace(crc32=1))
    assert info.value.kind == "mismatch"


def test_the_same_format_as_the_node_side(lane_dir: str) -> None:
    # Header: b"pglane02", u64 LE nonce, u64 LE length, u64 LE payload start
    # (src/transport/shared-memory-lane.ts); this side starts payloads right after the header.
    lane = Lane(lane_dir, "w1")
    ref = lane.write(b"payload")
    with open(os.path.join(lane_dir, ref.name), "rb") as f:
        data = f.read()
    assert data[:8] == b"pglane02"
    assert int.from_bytes(data[8:16], "little") == ref.nonce
    assert int.from_bytes(data[16:24], "little") == 7
    assert int.from_bytes(data[24:32], "little") == HEADER_BYTES == 32
    assert data[32:] == b"payload"
    lane.discard(ref)


def _write_padded(lane_dir: str, name: str, payload: bytes, start: int, nonce: int = 7,
                  size: Optional[int] = None) -> LaneReference:
    """A file as the pool writes one: zero padding between the header and the payload."""
    data = b"pglane02" + struct.pack("<QQQ", nonce, len(payload), start)
    data = data + bytes(max(0, start - len(data))) + payload
    with open(os.path.join(lane_dir, name), "wb") as f:
        f.write(data if size is None else data[:size])
    return LaneReference(name, len(payload), nonce)


def test_a_padded_payload_start_is_read_and_a_bad_one_is_a_clear_error(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    for start in (HEADER_BYTES, 48, 63, HEADER_BYTES + MAX_PADDING - 1):
        assert lane.read(_write_padded(lane_dir, f"n-ok{start}", b"abc" * 1000, start)) == b"abc" * 1000
    cases = [
        # A start inside the header, or past the padding limit: not a file of ours.
        (_write_padded(lane_dir, "n-inside", b"abc", 16), "mismatch", "payload start 16"),
        (_write_padded(lane_dir, "n-far", b"abc", HEADER_BYTES + MAX_PADDING), "mismatch", "bytes, expected at most"),
        # Cut inside the padding or the payload: never read from the wrong offset.
        (_write_padded(lane_dir, "n-cut", b"abcdef", 60, size=60 + 3), "truncated", "expected 66"),
        # Longer than its start and length say.
        (_write_padded(lane_dir, "n-long", b"abc", 40), "mismatch", "is 45 bytes, expected 43"),
    ]
    with open(os.path.join(lane_dir, "n-long"), "ab") as f:
        f.write(b"xy")
    for ref, kind, text in cases:
        with pytest.raises(LaneError) as info:
            lane.read(ref)
        assert info.value.kind == kind and text in str(info.value), str(info.value)
    lane.drop_spares()  # the files read whole were kept to be rewritten
    assert os.listdir(lane_dir) == []


def test_sweep_one_writer_close_and_remove_directory(lane_dir: str) -> None:
    worker, pool = Lane(lane_dir, "w1"), Lane(lane_dir, "n")
    pool.write(b"a")
    worker.write(b"b")
    worker.write(b"c")
    worker.close()  # a worker exiting removes its own files only
    assert len(os.listdir(lane_dir)) == 1
    assert os.path.isdir(lane_dir)
    assert pool.sweep("n") == 1


def test_remove_directory_after_parent_death() -> None:
    d = tempfile.mkdtemp(prefix="procgrpc-lane-test-")
    lane = Lane(d, "w1")
    lane.write(b"a")
    Lane(d, "n").write(b"b")
    lane.remove_directory()
    assert not os.path.exists(d)


def test_a_directory_others_can_enter_is_refused(tmp_path: "os.PathLike[str]") -> None:
    d = os.path.join(str(tmp_path), "open")
    os.mkdir(d)
    os.chmod(d, 0o755)
    with pytest.raises(LaneError, match="0700"):
        Lane(d, "w1")
    with pytest.raises(ValueError):
        Lane(str(tmp_path), "bad/prefix")


def test_placement_threshold_and_reserve(lane_dir: str) -> None:
    lane = Lane(lane_dir, "w1")
    free = lane.free_bytes()
    assert free > 0
    assert "below the lane threshold" in (lane.placement(10, 1024, 0) or "")
    assert lane.placement(2048, 1024, 0) is None
    assert "reserve" in (lane.placement(2048, 1024, free + 1) or "")
    if lane_dir.startswith("/dev/shm/"):
        assert lane.memory_backed


def test_a_failed_write_leaves_no_partial_file(lane_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lane = Lane(lane_dir, "w1")
    real_writev = os.writev
    calls = []

    def full(fd: int, buffers: object) -> int:
        # The first write goes through partly, then the filesystem is full: the ENOSPC path.
        if not calls:
            calls.append(1)
            return real_writev(fd, [memoryview(b"pglane01")])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(LaneError) as info:
        lane.write(b"x" * 100)
    assert info.value.kind == "no-space"
    assert os.listdir(lane_dir) == []


def test_a_read_file_is_kept_as_a_spare_and_the_next_message_is_written_over_it(lane_dir: str) -> None:
    pool_side = Lane(lane_dir, "n")
    worker = Lane(lane_dir, "w1")
    first = pool_side.write(b"a" * 5000)
    inode = os.stat(os.path.join(lane_dir, first.name)).st_ino
    assert worker.read(first) == b"a" * 5000
    [spare] = os.listdir(lane_dir)
    assert is_spare_file_name(spare) and spare.startswith("w1-spare-")
    assert worker.spare_count() == 1
    smaller = worker.write(b"abc")  # cut to the message
    assert os.listdir(lane_dir) == [smaller.name]
    assert os.stat(os.path.join(lane_dir, smaller.name)).st_ino == inode
    assert os.stat(os.path.join(lane_dir, smaller.name)).st_size == HEADER_BYTES + 3
    assert (smaller.name, smaller.nonce) != (first.name, first.nonce)
    with pytest.raises(LaneError) as info:
        pool_side.read(first)
    assert info.value.kind == "missing"
    assert pool_side.read(smaller) == b"abc"
    larger = pool_side.write([b"x" * 70000, b"y"])  # grown to the message
    assert os.stat(os.path.join(lane_dir, larger.name)).st_ino == inode
    assert worker.read(larger) == b"x" * 70000 + b"y"
    worker.close()
    pool_side.close()
    assert os.listdir(lane_dir) == []


def test_spares_are_bounded_in_count_and_bytes(lane_dir: str) -> None:
    writer = Lane(lane_dir, "n")
    reader = Lane(lane_dir, "w1")
    for ref in [writer.write(b"z" * 100) for _ in range(MAX_SPARE_FILES + 2)]:
        reader.read(ref)
    assert reader.spare_count() == MAX_SPARE_FILES
    assert len(os.listdir(lane_dir)) == MAX_SPARE_FILES
    reader.drop_spares()
    assert os.listdir(lane_dir) == []
    reader.read(writer.write(b"\0" * SPARE_FILES_MAX_BYTES))
    assert reader.spare_count() == 0 and os.listdir(lane_dir) == []


def test_a_file_that_fails_its_checks_is_not_kept(lane_dir: str) -> None:
    writer = Lane(lane_dir, "n")
    reader = Lane(lane_dir, "w1")
    ref = writer.write(b"q" * 1000)
    os.truncate(os.path.join(lane_dir, ref.name), HEADER_BYTES + 10)
    with pytest.raises(LaneError):
        reader.read(ref)
    assert reader.spare_count() == 0 and os.listdir(lane_dir) == []


def test_a_swept_spare_gives_the_next_message_a_new_file(lane_dir: str) -> None:
    writer = Lane(lane_dir, "n")
    reader = Lane(lane_dir, "w1")
    reader.read(writer.write(b"a"))
    writer.sweep("w1")  # the pool removing an exited worker's files
    ref = reader.write(b"bc")
    assert reader.spare_count() == 0
    assert writer.read(ref) == b"bc"


def test_spares_are_dropped_after_the_idle_time(lane_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import time

    from procgrpc import _shm

    writer = Lane(lane_dir, "n")
    reader = Lane(lane_dir, "w1")
    # Off the event loop: checked at the next message.
    reader.read(writer.write(b"a"))
    now = time.monotonic()
    monkeypatch.setattr("procgrpc._shm.time.monotonic", lambda: now + SPARE_IDLE_SECONDS + 1)
    reader.read(writer.write(b"b"))  # the stale spare goes first; this file is kept
    assert reader.spare_count() == 1
    monkeypatch.undo()
    reader.drop_spares()

    async def on_the_loop() -> None:
        monkeypatch.setattr(_shm, "SPARE_IDLE_SECONDS", 0.05)
        dropped = asyncio.Event()
        drop = reader.drop_spares

        def drop_and_tell() -> None:
            drop()
            dropped.set()

        monkeypatch.setattr(reader, "drop_spares", drop_and_tell)
        reader.read(writer.write(b"c"))
        assert reader.spare_count() == 1
        # The loop's idle timer drops it; the deadline only bounds a failure.
        await asyncio.wait_for(dropped.wait(), timeout=30)
        assert reader.spare_count() == 0

    asyncio.run(on_the_loop())
    assert os.listdir(lane_dir) == []
