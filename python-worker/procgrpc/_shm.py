"""The shared-memory lane's file primitives, worker side (issue 15 §1; Node side:
``src/transport/shared-memory-lane.ts``).

A large serialized message travels as a file in the pool's private memory-backed directory
(``/dev/shm/procgrpc-lane-<pid>-<random>``, 0700, created by the pool), and the message on the
pipeline stream carries only a :class:`LaneReference`. Pure file logic, no gRPC. File layout,
identical on both sides::

    offset 0   8 bytes  magic b"pglane02"
    offset 8   8 bytes  nonce, u64 little-endian (random per file; also in the reference)
    offset 16  8 bytes  payload length, u64 little-endian
    offset 24  8 bytes  payload start S, u64 little-endian (32 <= S < 32 + MAX_PADDING)
    offset 32  ...      zero padding up to S
    offset S   ...      payload (the file is S + length bytes)

The payload start exists because the kernel's copy between process memory and a tmpfs page is
~5x slower when the destination runs 1-15 bytes ahead of the source within a 4 KiB page. Memory
from malloc is 16-byte aligned: the pool places a request's largest part at an offset congruent
to its memory's mod 16; this side writes ``bytes`` (16-aligned data) at S = 32 and reads into a
new ``bytes`` object, whichever S the pool chose (see docs/shared-memory-lane.md, "Alignment").

The reader opens the file and removes its name at once (the descriptor keeps it readable, so a
reader that dies mid-read leaks nothing), checks size and header against the reference and reads
the payload. Files are created 0600 with ``O_EXCL | O_NOFOLLOW``.

Spare files: a reader keeps up to :data:`MAX_SPARE_FILES` files it read
(:data:`SPARE_FILES_MAX_BYTES` in all) by renaming them to a spare name with its own prefix
instead of unlinking them, and writes its next large message over one of them, renamed to the
message's new name. A new tmpfs file costs the allocation and release of its pages on every
message; rewriting a file's pages costs about a third of that. Spares are swept with the keeper's
files, and dropped after :data:`SPARE_IDLE_SECONDS` without a lane message (checked at the next
one, and by a timer on the running event loop when there is one).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import stat
import struct
import threading
import time
import zlib
from typing import Iterable, List, NamedTuple, Optional, Sequence, Union

__all__ = ["HEADER_BYTES", "MAX_PADDING", "MAX_SPARE_FILES", "SPARE_FILES_MAX_BYTES", "SPARE_IDLE_SECONDS", "LaneError",
           "LaneReference", "Lane", "is_spare_file_name"]

#: Bytes of the header at the start of every lane file (the payload starts at or after it).
HEADER_BYTES = 32
#: The payload starts fewer than this many bytes after the header.
MAX_PADDING = 64
_MAGIC = b"pglane02"
_HEADER = struct.Struct("<8sQQQ")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TMPFS_MAGIC = 0x01021994
_NONCE_MASK = (1 << 53) - 1
#: How many read files one side keeps to write its next messages into.
MAX_SPARE_FILES = 2
#: The most bytes of spare files one side keeps (a larger file is unlinked when read).
SPARE_FILES_MAX_BYTES = 32 << 20
#: Spare files are dropped after this long without a lane message.
SPARE_IDLE_SECONDS = 1.0
_SPARE_MARK = "-spare-"

Buffer = Union[bytes, bytearray, memoryview]


def is_spare_file_name(name: str) -> bool:
    """Whether ``name`` is a spare file (kept to be rewritten), not a message."""
    return _SPARE_MARK in name


class _Spare(NamedTuple):
    fd: int
    path: str
    size: int


class LaneError(Exception):
    """A lane file could not be written or read.

    ``kind`` is one of ``missing``, ``truncated``, ``mismatch`` (protocol errors of the call),
    ``invalid-reference``, ``no-space`` (the writer falls back to the socket) or ``io``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class LaneReference(NamedTuple):
    """What the message on the pipe carries instead of the payload."""

    name: str
    length: int
    nonce: int
    crc32: Optional[int] = None


def _no_space(exc: OSError) -> bool:
    import errno
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Lane:
    """One side's view of a lane directory: write payloads as files, read (and remove) referenced
    files. The worker attaches to the directory the pool created; it never removes it while the
    pool lives."""

    def __init__(self, directory: str, writer_prefix: str) -> None:
        if not _NAME.fullmatch(writer_prefix):
            raise ValueError(f"lane writer prefix must match {_NAME.pattern}, got {writer_prefix!r}")
        st = os.stat(directory)
        if not stat.S_ISDIR(st.st_mode):
            raise LaneError("io", f"lane directory {directory} is not a directory")
        if st.st_mode & 0o077:
            raise LaneError("io", f"lane directory {directory} is accessible to others "
                                  f"(mode {stat.S_IMODE(st.st_mode):o}); expected 0700")
        self.directory = directory
        self.writer_prefix = writer_prefix
        self._seq = itertools.count()
        self._spares: List[_Spare] = []
        self._spare_bytes = 0
        self._last_use = 0.0
        self._idle_timer: Optional[asyncio.TimerHandle] = None
        # Stream serializers may run off the event loop's thread.
        self._spares_lock = threading.Lock()

    @property
    def memory_backed(self) -> bool:
        """True when the directory is on tmpfs (read with ``statfs`` where Python exposes it)."""
        # os.statvfs has no f_type; /proc/self/mounts tells the filesystem of the mount point.
        try:
            best, fstype = "", ""
            real = os.path.realpath(self.directory)
            with open("/proc/self/mounts", encoding="utf-8") as mounts:
                for line in mounts:
                    parts = line.split()
                    if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")) \
                            and len(parts[1]) > len(best):
                        best, fstype = parts[1], parts[2]
            return fstype == "tmpfs"
        except OSError:
            return False

    def free_bytes(self) -> int:
        """Bytes the directory's filesystem can still take."""
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize

    def placement(self, size: int, threshold: int, reserve: int) -> Optional[str]:
        """None when a payload of ``size`` bytes should take the lane; else why not (below the
        threshold, or too little room left: a full tmpfs falls back to the socket)."""
        if size < threshold:
            return f"below the lane threshold ({size} < {threshold} bytes)"
        free = self.free_bytes()
        if free - size - HEADER_BYTES - MAX_PADDING < reserve:
            return f"{self.directory} has {free} bytes free; {size} would leave less than the {reserve}-byte reserve"
        return None

    def write(self, payload: Union[Buffer, Sequence[Buffer]], crc32: bool = False) -> LaneReference:
        """Write ``payload`` (one buffer, or parts written back to back) as a new 0600 file.

        A failed write removes the partial file and raises :class:`LaneError` (``no-space`` on
        a full filesystem)."""
        parts: Sequence[Buffer] = (payload,) if isinstance(payload, (bytes, bytearray, memoryview)) else payload
        length = sum(memoryview(p).nbytes for p in parts)
        # 53 random bits: the pool reads the reference's uint64 as a JavaScript number.
        random = os.urandom(14)  # one getrandom for the nonce and the name
        nonce = int.from_bytes(random[:8], "little") & _NONCE_MASK
        name = f"{self.writer_prefix}-{next(self._seq):x}-{random[8:].hex()}"
        path = os.path.join(self.directory, name)
        crc: Optional[int] = None
        if crc32:
            crc = 0
            for p in parts:
                crc = zlib.crc32(p, crc)
        # This side's payloads start right after the header: 16-aligned, like a bytes object's data.
        header = _HEADER.pack(_MAGIC, nonce, length, HEADER_BYTES)
        if self._rewrite_spare(path, [header, *parts], HEADER_BYTES + length):
            return LaneReference(name, length, nonce, crc)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise LaneError("no-space" if _no_space(exc) else "io", f"could not create lane file {path}: {exc}") from exc
        try:
            _write_all(fd, [header, *parts])
        except OSError as exc:
            os.close(fd)
            _unlink_quietly(path)
            raise LaneError("no-space" if _no_space(exc) else "io",
                            f"could not write {length} bytes to lane file {path}: {exc}") from exc
        os.close(fd)
        return LaneReference(name, length, nonce, crc)

    def _rewrite_spare(self, path: str, parts: Sequence[Buffer], total: int) -> bool:
        """Write a message file's bytes over a spare and give it the message's name; False when
        there is no spare or it failed (it is dropped; the caller writes a new file)."""
        self._note_use()
        with self._spares_lock:
            if not self._spares:
                return False
            spare = self._spares.pop()
            self._spare_bytes -= spare.size
        try:
            _write_all(spare.fd, parts, 0)
            if spare.size > total:
                os.ftruncate(spare.fd, total)
            os.close(spare.fd)
        except OSError:
            _close_quietly(spare.fd)
            _unlink_quietly(spare.path)
            return False
        try:
            os.rename(spare.path, path)
        except OSError:
            _unlink_quietly(spare.path)  # swept from under us: write a new file
            return False
        return True

    def _rename_to_spare(self, path: str, size: int) -> Optional[str]:
        """Rename the file being read to a spare name when one more spare of ``size`` bytes fits;
        its new path, or None (the caller unlinks it)."""
        self._note_use()
        with self._spares_lock:
            if len(self._spares) >= MAX_SPARE_FILES or self._spare_bytes + size > SPARE_FILES_MAX_BYTES:
                return None
        spare_path = os.path.join(self.directory,
                                  f"{self.writer_prefix}{_SPARE_MARK}{next(self._seq):x}-{os.urandom(6).hex()}")
        try:
            os.rename(path, spare_path)
        except OSError:
            return None  # discarded by its writer meanwhile: nothing to keep
        return spare_path

    def _keep_spare(self, spare: _Spare) -> bool:
        """Keep a file read to its end as a spare: listed only now, so a drop never closes a file
        while it is read. False when the spares filled meanwhile (the caller removes it)."""
        with self._spares_lock:
            if len(self._spares) >= MAX_SPARE_FILES or self._spare_bytes + spare.size > SPARE_FILES_MAX_BYTES:
                return False
            self._spares.append(spare)
            self._spare_bytes += spare.size
        self._arm_idle_timer()
        return True

    def drop_spares(self) -> None:
        """Close and remove the spare files."""
        with self._spares_lock:
            spares, self._spares, self._spare_bytes = self._spares, [], 0
            timer, self._idle_timer = self._idle_timer, None
        for spare in spares:
            _close_quietly(spare.fd)
            _unlink_quietly(spare.path)
        if timer is not None:
            timer.cancel()

    def spare_count(self) -> int:
        """How many spare files this side keeps (tests, diagnostics)."""
        return len(self._spares)

    def _note_use(self) -> None:
        """A lane message: spares kept since before the idle time are dropped first."""
        now = time.monotonic()
        if self._spares and now - self._last_use >= SPARE_IDLE_SECONDS:
            self.drop_spares()
        self._last_use = now

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is not None or not self._spares:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # off the loop: checked at the next message
        self._idle_timer = loop.call_later(SPARE_IDLE_SECONDS, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        idle = time.monotonic() - self._last_use
        if not self._spares:
            return
        if idle >= SPARE_IDLE_SECONDS:
            self.drop_spares()
        else:
            self._idle_timer = asyncio.get_running_loop().call_later(SPARE_IDLE_SECONDS - idle, self._idle_check)

    def read(self, ref: LaneReference) -> bytes:
        """Read the referenced payload and remove its file.

        Raises :class:`LaneError`: ``invalid-reference`` for a name that is not a plain file
        name, ``missing`` when there is no such file, ``truncated`` when it is shorter than the
        reference says, ``mismatch`` when it is longer or its header or checksum disagree."""
        path = self._path_of(ref)
        try:
            # Read-write: the file may be kept as a spare, to write this side's next message into.
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise LaneError("missing", f"lane file {ref.name} is missing ({ref.length} bytes referenced)") from exc
        except OSError as exc:
            raise LaneError("io", f"could not open lane file {ref.name}: {exc}") from exc
        spare_path: Optional[str] = None
        kept = False
        try:
            size = os.fstat(fd).st_size
            # The referenced name goes at once either way: renamed to a spare of this side, or unlinked.
            spare_path = self._rename_to_spare(path, size)
            if spare_path is None:
                _unlink_quietly(path)
            least = HEADER_BYTES + ref.length
            if size < least:
                raise LaneError("truncated", f"lane file {ref.name} is truncated: {size} bytes, expected at least {least}")
            if size >= least + MAX_PADDING:
                raise LaneError("mismatch", f"lane file {ref.name} is {size} bytes, expected at most {least + MAX_PADDING - 1}")
            header = os.pread(fd, HEADER_BYTES, 0)
            if len(header) < HEADER_BYTES:
                raise LaneError("truncated", f"lane file {ref.name} ended inside its header")
            magic, nonce, length, start = _HEADER.unpack(header)
            if magic != _MAGIC:
                raise LaneError("mismatch", f"lane file {ref.name} has no lane header")
            if nonce != ref.nonce:
                raise LaneError("mismatch", f"lane file {ref.name} belongs to another message (nonce differs)")
            if length != ref.length:
                raise LaneError("mismatch", f"lane file {ref.name} header says {length} bytes, reference {ref.length}")
            if not HEADER_BYTES <= start < HEADER_BYTES + MAX_PADDING:
                raise LaneError("mismatch", f"lane file {ref.name} header has payload start {start}")
            expected = start + ref.length
            if size < expected:
                raise LaneError("truncated", f"lane file {ref.name} is truncated: {size} bytes, expected {expected}")
            if size > expected:
                raise LaneError("mismatch", f"lane file {ref.name} is {size} bytes, expected {expected}")
            # A single bytes object read straight from the file: what a protobuf parser takes
            # without another copy.
            payload = _pread_exactly(fd, ref.length, start)
            if ref.crc32 is not None and zlib.crc32(payload) != ref.crc32:
                raise LaneError("mismatch", f"lane file {ref.name} fails its checksum")
            if spare_path is not None:
                kept = self._keep_spare(_Spare(fd, spare_path, size))
            return payload
        finally:
            if not kept:
                os.close(fd)
                if spare_path is not None:
                    _unlink_quietly(spare_path)  # failed its checks, or no room left: not kept

    def discard(self, ref: LaneReference) -> None:
        """Remove a referenced file without reading it (a cancelled call)."""
        _unlink_quietly(self._path_of(ref))

    def sweep(self, writer_prefix: Optional[str] = None) -> int:
        """Remove the files in the directory, or only one writer's; returns how many."""
        if writer_prefix is None or writer_prefix == self.writer_prefix:
            self.drop_spares()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        n = 0
        for name in names:
            if writer_prefix is not None and not name.startswith(writer_prefix + "-"):
                continue
            if _unlink_quietly(os.path.join(self.directory, name)):
                n += 1
        return n

    def close(self) -> None:
        """Remove the files this side wrote (a worker exiting); the directory is the pool's."""
        self.sweep(self.writer_prefix)

    def remove_directory(self) -> None:
        """Remove every file and the directory: only when the pool is gone (parent death)."""
        self.sweep()
        try:
            os.rmdir(self.directory)
        except OSError:
            pass

    def _path_of(self, ref: LaneReference) -> str:
        if not isinstance(ref.name, str) or not _NAME.fullmatch(ref.name):
            raise LaneError("invalid-reference", f"lane reference names {ref.name!r}, not a lane file name")
        if not isinstance(ref.length, int) or ref.length < 0:
            raise LaneError("invalid-reference", f"lane reference length {ref.length!r} is not a byte count")
        return os.path.join(self.directory, ref.name)


def _write_all(fd: int, parts: Iterable[Buffer], position: Optional[int] = None) -> None:
    """Write ``parts`` back to back, at ``position`` (a spare file) or at the file's offset."""
    pending = [memoryview(p).cast("B") for p in parts if memoryview(p).nbytes]
    written = 0
    while pending:
        n = os.writev(fd, pending) if position is None else os.pwritev(fd, pending, position + written)
        written += n
        if n <= 0:
            raise OSError("write made no progress")
        while pending and n >= pending[0].nbytes:
            n -= pending[0].nbytes
            pending.pop(0)
        if n:
            pending[0] = pending[0][n:]


def _pread_exactly(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) == size:
        return data
    chunks = [data]
    got = len(data)
    while got < size:
        chunk = os.pread(fd, size - got, offset + got)
        if not chunk:
            raise LaneError("truncated", f"lane file ended after {offset + got} bytes, expected {offset + size}")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _unlink_quietly(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
