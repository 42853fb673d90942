"""``run_worker``: serve grpcio servicers as one procgrpc worker process.

The Node pool starts ``python worker.py`` with the socket path and a control fd
in the environment; ``run_worker`` does everything else: socket checks, an
asyncio grpc server on ``unix:<path>`` only, health, reflection, exception
mapping, the ready handshake, parent-death detection and graceful shutdown.
The parts live in the private packages: ``_config`` (settings), ``_server`` (building and
serving), ``_handlers`` (handler adapters), ``_status`` (exception mapping), ``_services``
(the pipeline and introspection services), ``_process`` (parent watch, socket guard,
serving state, logging, exit) and ``_net`` (TCP listening, auth).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Mapping, NoReturn, Optional, Sequence, Type

import grpc

from ._config import ConfigError, WorkerConfig
from ._process import log
from ._process.affinity import AffinityError, apply_cpu_affinity
from ._process.exit import exit_process, remove_socket
from ._process.malloc_tuning import tune_malloc
from ._process.parent_watch import set_parent_death_signal
from ._process.socket_guard import SocketInUseError, SocketPathError, prepare_path
from ._server.build import ServiceRegistration
from ._server.serve import serve
from ._status.mapping import ExceptionMapper

__all__ = ["WorkerConfig", "ServiceRegistration", "run_worker", "EXIT_CONFIG", "EXIT_SOCKET_IN_USE"]

#: Exit code for a bad configuration (no socket path, path too long, ...).
EXIT_CONFIG = 2
#: Exit code when the socket path is served by a live process or is not a socket.
EXIT_SOCKET_IN_USE = 3

_log = log.get_logger()


def run_worker(*services: ServiceRegistration,
               exception_mapping: Optional[Mapping[Type[BaseException], grpc.StatusCode]] = None,
               argv: Optional[Sequence[str]] = None,
               config: Optional[WorkerConfig] = None) -> NoReturn:
    """Serve ``services`` until SIGTERM/SIGINT or the parent's death, then exit.

    Each service is ``(add_XServicer_to_server, servicer)``; methods may be
    ``def`` (run in a thread pool) or ``async def``. ``exception_mapping`` adds
    ``{ExceptionClass: grpc.StatusCode}`` entries, checked before the built-in
    ones. ``argv`` defaults to ``sys.argv[1:]`` (only ``--socket`` is read).

    Exit codes: 0 after a graceful stop, 2 for bad configuration, 3 when the
    socket path is in use or is not a socket, 1 for other startup failures.
    """
    log.configure()
    original_ppid = os.getppid()
    try:
        for entry in services:
            if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0])):
                raise ConfigError(
                    f"run_worker takes (add_XServicer_to_server, servicer) pairs, got {entry!r}")
        mapper = ExceptionMapper(exception_mapping)
        if config is None:
            config = WorkerConfig.from_environment(argv)
            # The pool's secret is the worker's alone: not for the servicer or its subprocesses.
            os.environ.pop("PROCGRPC_CONTROL_TOKEN", None)
    except (ConfigError, TypeError) as exc:
        _log.error("invalid worker configuration: " + str(exc))
        sys.exit(EXIT_CONFIG)

    try:
        apply_cpu_affinity(config.cpu_affinity)
    except AffinityError as exc:
        _log.error("invalid worker configuration: " + str(exc))
        sys.exit(EXIT_CONFIG)

    tune_malloc()  # large messages reuse heap memory instead of fresh pages per call

    if not config.standalone and not set_parent_death_signal(original_ppid):
        _log.error("parent process died during startup")
        sys.exit(1)
    if config.control_fd is not None:
        try:
            os.set_inheritable(config.control_fd, False)  # Not for subprocesses the servicer starts.
        except OSError as exc:
            _log.error("control fd is not usable", control_fd=config.control_fd, error=str(exc))
            sys.exit(EXIT_CONFIG)

    try:
        if config.socket_path and prepare_path(config.socket_path):
            _log.info("removed stale socket file", socket=config.socket_path)
    except SocketInUseError as exc:
        _log.error(str(exc), socket=config.socket_path)
        sys.exit(EXIT_SOCKET_IN_USE)
    except SocketPathError as exc:
        _log.error(str(exc), socket=config.socket_path)
        sys.exit(EXIT_SOCKET_IN_USE if os.path.lexists(config.socket_path) else EXIT_CONFIG)

    try:
        code = asyncio.run(serve(services, config, mapper, original_ppid))
    except Exception:
        _log.error("worker failed", exc_info=True)
        remove_socket(config.socket_path, config.socket_dir_owned, parent_dead=False)
        code = 1
    exit_process(code)
