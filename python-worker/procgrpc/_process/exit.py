"""Leaving the process: removing the socket (and the pool's directory), and exiting for sure."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from typing import List, NoReturn

from .log import get_logger

__all__ = ["remove_socket", "hard_exit_later", "exit_process", "leave_orphaned", "EXIT_BOUND_SECONDS"]

_log = get_logger()

#: How long the interpreter's own exit may take once the worker has stopped (atexit handlers,
#: then the teardown of threads and modules) before the kernel ends the process.
EXIT_BOUND_SECONDS = 10


def remove_socket(socket_path: str, dir_owned: bool, parent_dead: bool) -> None:
    """Unlink the worker's socket; after the parent's death also the pool's private directory."""
    if not socket_path:
        return
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        _log.warn("could not remove socket", socket=socket_path, error=str(exc))
    if dir_owned and parent_dead:
        try:
            # The last worker out removes the pool's private directory when the
            # Node process died and cannot do it. While the pool lives the
            # directory is the pool's: a restarted worker binds in it next.
            os.rmdir(os.path.dirname(os.path.abspath(socket_path)))
        except OSError:
            pass  # ENOTEMPTY (other workers still there), ENOENT (already gone).


def hard_exit_later(seconds: float, socket_path: str, dir_owned: bool, reason: str) -> None:
    """Last resort: exit even if graceful shutdown (or a runaway thread) hangs."""
    def kill() -> None:
        _log.warn("graceful stop did not finish in time; exiting now", reason=reason, after_seconds=seconds)
        remove_socket(socket_path, dir_owned, parent_dead=reason == "parent death")
        os._exit(0)
    timer = threading.Timer(seconds, kill)
    timer.daemon = True
    timer.start()


def _bound_interpreter_exit(seconds: int) -> None:
    """Have the kernel end this process if the interpreter's exit takes longer than ``seconds``.

    No Python thread can do it: once the interpreter begins finalizing, a thread that wants the
    GIL stops for good, so :func:`hard_exit_later`'s timer never fires, and a destructor that
    blocks there (a library's shutdown waiting for its poller thread, e.g. grpc.aio's
    ``shutdown_grpc_aio`` when the last aio object is freed at exit) would hold the process
    forever. SIGALRM at its default action terminates the process, whatever the interpreter does.
    """
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(seconds)
    except (AttributeError, ValueError, OSError):
        pass  # no SIGALRM here (Windows), or not the main thread


def exit_process(code: int) -> NoReturn:
    """Exit with ``code`` without waiting for servicer threads that will not stop, and within
    :data:`EXIT_BOUND_SECONDS` whatever the interpreter's own exit runs into."""
    _bound_interpreter_exit(EXIT_BOUND_SECONDS)
    # Objects the stopped server left in reference cycles are freed now, while threads still run:
    # grpc.aio shuts its poller down when its last object goes, which cannot finish once the
    # interpreter is finalizing.
    gc.collect()
    # Runaway sync handlers (ignoring cancellation) would make the interpreter
    # wait for their threads at exit; do not let them hold the process.
    deadline = time.monotonic() + 0.3
    busy: List[threading.Thread] = []
    for thread in threading.enumerate():
        # The servicer pool's threads (ThreadPoolExecutor names them procgrpc_0, procgrpc_1, ...).
        if thread.name.startswith("procgrpc_") and thread is not threading.current_thread():
            # Idle pool threads exit within moments of executor.shutdown().
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                busy.append(thread)
    if busy:
        _log.warn("exiting with servicer threads still running", threads=len(busy))
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(code)
    sys.exit(code)


def leave_orphaned(socket_path: str, dir_owned: bool) -> NoReturn:
    """The parent is dead: remove the socket (and the pool's directory when this is the last
    worker), then take down this worker's process group, servicer subprocesses included, and
    exit. Works from any thread, whatever the event loop is doing.

    The group is killed only when the pool made it for this worker (``PROCGRPC_PROCESS_GROUP=1``
    and this process leads it); otherwise only this process exits."""
    remove_socket(socket_path, dir_owned, parent_dead=True)
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    if os.environ.get("PROCGRPC_PROCESS_GROUP") == "1" and os.getpgrp() == os.getpid():
        try:
            os.killpg(os.getpid(), signal.SIGKILL)  # this process too: the last thing it does
        except OSError:
            pass
    os._exit(0)
