"""Serving one worker's life: bind, start, report ready, wait for a stop, drain, stop."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import threading
from typing import Any, Dict, Optional, Sequence

import grpc
from grpc_health.v1 import health_pb2

from .._config import WorkerConfig
from .._net import listen as _listen
from .._process import serving
from .._process.exit import hard_exit_later, leave_orphaned, remove_socket
from .._process.log import get_logger
from .._process.malloc_tuning import HeapTrimmer
from .._process.parent_watch import ParentWatch, write_ready
from .._services import pipe_socket
from .._services.lane import lane_from_environment
from .._status.mapping import ExceptionMapper
from .build import ServiceRegistration, build_server

__all__ = ["serve"]

# Hard limit between the parent's death and this process being gone.
_PARENT_DEATH_DEADLINE = 1.8
# How long a stopping worker waits for its pipes' last batches to be written.
_PIPE_FLUSH_SECONDS = 0.5
# How long a stopping worker waits for the pool to half-close its pipes (it does so before it
# signals the worker; only a pool that went away mid-stop makes the worker wait this long).
_PIPE_HALF_CLOSE_SECONDS = 2.0

_log = get_logger()


async def serve(services: Sequence[ServiceRegistration], config: WorkerConfig,
                mapper: ExceptionMapper, original_ppid: int) -> int:
    """Serve until SIGTERM/SIGINT or the parent's death; returns the exit code."""
    loop = asyncio.get_running_loop()
    stop_reason: "asyncio.Future[str]" = loop.create_future()
    parent_gone = threading.Event()

    def request_stop(reason: str) -> None:
        if not stop_reason.done():
            stop_reason.set_result(reason)

    def on_parent_death(reason: str) -> None:
        # Called from the watch thread (or the loop): the graceful stop is asked of the loop, the
        # deadline is kept by a timer thread, so a blocked loop cannot keep an orphan alive.
        if parent_gone.is_set():
            return
        parent_gone.set()
        _log.warn("parent process is gone; shutting down", reason=reason)
        try:
            loop.call_soon_threadsafe(request_stop, "parent death: " + reason)
        except RuntimeError:
            pass  # the loop is closed: the timer below still ends the process

        def deadline() -> None:
            _log.warn("graceful stop did not finish in time; exiting now", reason="parent death",
                      after_seconds=_PARENT_DEATH_DEADLINE)
            leave_orphaned(config.socket_path, config.socket_dir_owned)
        timer = threading.Timer(_PARENT_DEATH_DEADLINE, deadline)
        timer.daemon = True
        timer.start()

    if not config.standalone:
        ParentWatch(on_parent_death, config.control_fd, original_ppid).start()

    built = await build_server(services, config, mapper)
    server, health, in_flight, names = built.server, built.health, built.in_flight, built.names
    HeapTrimmer.start_if_tuned(lambda: in_flight.count)  # gives large messages' freed heap back once idle
    # Once add_*_to_server ran, so the services have their full proto names.
    _log.info("starting", socket=config.socket_path or None, services=names, python=platform.python_version(),
              grpcio=grpc.__version__, control_fd=config.control_fd, max_concurrency=config.max_concurrency,
              threads=config.threads)

    try:
        if config.socket_path:
            server.add_insecure_port("unix:" + config.socket_path)
    except RuntimeError as exc:
        _log.error("could not listen on socket", socket=config.socket_path, error=str(exc))
        return 1
    tcp = await _listen.start_tcp(server, health, config.listen)
    if tcp is None:
        return 1

    def on_signal(name: str) -> None:
        # PR_SET_PDEATHSIG delivers SIGTERM when the parent dies: that is a parent death.
        if os.getppid() != original_ppid and not config.standalone:
            on_parent_death(f"{name} after the parent exited")
        else:
            request_stop(name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)

    await server.start()
    for name in [""] + names:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    serving._install(loop, health, names)
    # The pipeline on the socket pair the pool spawned this worker with (when it did).
    socket_pipe: "Optional[asyncio.Future[None]]" = None
    if config.pipe_fd is not None and config.control_fd is not None:
        streams = await pipe_socket.open_inherited(config.pipe_fd)
        if streams is not None:
            socket_pipe = asyncio.ensure_future(
                pipe_socket.serve_inherited(streams, built.pipe_lookup, built.pipes, lane_from_environment()))

    if config.control_fd is not None:
        try:
            ready: Dict[str, Any] = {"event": "ready", "pid": os.getpid(), "socket": config.socket_path, "services": names}
            if socket_pipe is not None:
                ready["pipe"] = "socket"  # the pool may send its pipelined calls there
            write_ready(config.control_fd, ready)
        except OSError as exc:
            on_parent_death(f"cannot write ready line: {exc}")
    _log.info("ready", socket=config.socket_path or None, services=names, **tcp.log_fields())

    reason = await stop_reason
    parent_dead = parent_gone.is_set()
    grace = min(config.grace_seconds, 1.0) if parent_dead else config.grace_seconds
    if not parent_dead:
        # A stop that hangs past the grace (e.g. a stuck cancel) must still end.
        hard_exit_later(grace + 5.0, config.socket_path, config.socket_dir_owned, reason)
    _log.info("stopping", reason=reason, grace_seconds=grace)
    await health.enter_graceful_shutdown()
    # Drain while still accepting RPCs, so health checks see NOT_SERVING rather than a
    # refused connection; then stop with whatever grace is left.
    started = loop.time()
    # Calls the pool sent just before it half-closed its pipes are still read and run.
    await built.pipes.wait_half_closed(min(grace, _PIPE_HALF_CLOSE_SECONDS))
    drained = await in_flight.wait_idle(max(0.0, grace - (loop.time() - started)))
    if drained:
        _log.info("drained", in_flight=0)
    else:
        # The caller gets a clear answer now rather than a dropped connection later: UNAVAILABLE
        # "worker is shutting down" with the procgrpc-worker-stopping trailer (the handler may
        # go on running; a thread cannot be stopped).
        ended = await in_flight.end_all()
        _log.warn("drain grace expired; calls still running were ended", ended=ended, grace_seconds=grace)
    # Pipes the pool did not half-close: calls not answered yet get the stopping status, then
    # each stream ends once its last batch is written.
    await built.pipes.stop_all(_PIPE_FLUSH_SECONDS)
    if socket_pipe is not None:
        await asyncio.wait([socket_pipe], timeout=_PIPE_FLUSH_SECONDS)  # its end closed after the last batch
    remaining = max(0.0, grace - (loop.time() - started))
    await server.stop(remaining if drained else 0)
    await tcp.stop()
    serving._uninstall()
    built.executor.shutdown(wait=False, cancel_futures=True)
    # PR_SET_PDEATHSIG can fire while the dying parent still looks alive (its main thread
    # exits first), so whether the parent is gone is decided now, not when the stop began.
    if parent_gone.is_set() or (os.getppid() != original_ppid and not config.standalone):
        _log.info("stopped", reason=reason)
        leave_orphaned(config.socket_path, config.socket_dir_owned)
    remove_socket(config.socket_path, config.socket_dir_owned, parent_dead=False)
    _log.info("stopped", reason=reason)
    return 0
