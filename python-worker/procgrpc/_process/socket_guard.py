"""Checks on the Unix socket path before the server binds it.

grpcio unlinks whatever socket file sits at the path when it binds, so a second
worker started on a live worker's path would silently steal it. These checks
run first: a live socket is refused, a stale one is removed, and anything that
is not a socket is never touched.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from .platform import portable

__all__ = ["SocketPathError", "SocketInUseError", "MAX_PATH_BYTES", "MAX_PATH_BYTES_BSD", "max_path_bytes",
           "check_path", "prepare_path"]

# sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS and the BSDs, including the NUL.
MAX_PATH_BYTES = 107
MAX_PATH_BYTES_BSD = 103


def max_path_bytes() -> int:
    """The longest socket path this platform binds (the macOS limit on the portable path)."""
    return MAX_PATH_BYTES_BSD if portable() else MAX_PATH_BYTES


class SocketPathError(Exception):
    """The socket path cannot be used (too long, missing directory, not a socket...)."""


class SocketInUseError(SocketPathError):
    """A live server already answers on the socket path."""


def check_path(path: str) -> None:
    """Raise SocketPathError when ``path`` cannot be a Unix socket address."""
    if not path:
        raise SocketPathError("socket path is empty")
    size = len(os.fsencode(path))
    limit = max_path_bytes()
    if size > limit:
        raise SocketPathError(
            f"socket path is too long: {path!r} is {size} bytes, "
            f"the limit for a Unix socket address is {limit}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SocketPathError(f"directory of socket path {path!r} does not exist: {directory}")


def _is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except socket.timeout:
        # A listener with a full backlog is still a listener.
        return True
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise SocketPathError(f"cannot probe socket {path!r}: {exc}") from exc
    finally:
        probe.close()


def prepare_path(path: str) -> bool:
    """Make ``path`` ready to bind.

    Returns True when a stale socket file was removed. Raises SocketInUseError
    when a server answers there and SocketPathError when the path holds
    something other than a socket.
    """
    check_path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise SocketPathError(f"socket path {path!r} exists and is not a socket; refusing to replace it")
    if _is_live(path):
        raise SocketInUseError(f"socket path {path!r} is in use by a live server; refusing to start")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return True
