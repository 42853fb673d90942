"""The worker's settings: ``--socket``/``--listen`` and the ``PROCGRPC_*`` environment."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import FrozenSet, Mapping, Optional, Sequence, Tuple

from ._net import listen as _listen

__all__ = ["ConfigError", "WorkerConfig", "check_target"]


class ConfigError(Exception):
    """The worker cannot start with the given arguments and environment."""


def _env_int(env: Mapping[str, str], name: str, minimum: int) -> Optional[int]:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def parse_cpu_list(raw: str) -> FrozenSet[int]:
    """CPUs from ``0,2,4-7`` (the kernel's cpu-list format); a ConfigError for anything else."""
    cpus: set[int] = set()
    for part in raw.split(","):
        part = part.strip()
        first, sep, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if sep else lo
        except ValueError:
            raise ConfigError(f"PROCGRPC_CPU_AFFINITY must list CPUs like 0,2,4-7, got {raw!r}") from None
        if lo < 0 or hi < lo:
            raise ConfigError(f"PROCGRPC_CPU_AFFINITY has a bad range {part!r} in {raw!r}")
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


_METHOD_PATH = re.compile(r"^/[A-Za-z_][\w.]*/[A-Za-z_]\w*$")
_SERVICE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def check_target(target: str) -> str:
    """``target`` when it is a kill switch target as the pool normalises them, a method path
    (``/pkg.Service/Method``) or a service name (``pkg.Service``); a ValueError otherwise."""
    if not isinstance(target, str) or not (_METHOD_PATH.match(target) or _SERVICE_NAME.match(target)):
        raise ValueError(f"not a method path (/pkg.Service/Method) or service name (pkg.Service): {target!r}")
    return target


class WorkerConfig:
    """Settings of one worker, read from ``--socket`` and the ``PROCGRPC_*`` environment."""

    def __init__(self, socket_path: str, worker_id: Optional[str] = None, control_fd: Optional[int] = None,
                 max_concurrency: Optional[int] = None, threads: Optional[int] = None,
                 grace_seconds: float = 5.0, socket_dir_owned: bool = False,
                 listen: Optional[_listen.ListenConfig] = None,
                 cpu_affinity: Optional[FrozenSet[int]] = None, control_token: Optional[str] = None,
                 switched_off: Tuple[str, ...] = (), switched_off_generation: int = 0,
                 pipe_fd: Optional[int] = None) -> None:
        self.socket_path = socket_path  # "" when the worker serves TCP only
        #: The socket the pool spawned the worker with for its pipelined calls (None: gRPC only).
        self.pipe_fd = pipe_fd
        self.listen = listen
        self.worker_id = worker_id
        self.control_fd = control_fd
        self.max_concurrency = max_concurrency
        self.threads = threads if threads is not None else max(8, max_concurrency or 0)
        self.grace_seconds = grace_seconds
        self.socket_dir_owned = socket_dir_owned
        self.cpu_affinity = cpu_affinity  # None: not pinned
        #: The pool's secret for ``procgrpc.internal.v1.KillSwitch`` (None: nobody may set switches).
        self.control_token = control_token
        #: The kill switches in force from the start, and the pool's generation of that set.
        self.switched_off = switched_off
        self.switched_off_generation = switched_off_generation

    @classmethod
    def from_environment(cls, argv: Optional[Sequence[str]] = None,
                         env: Optional[Mapping[str, str]] = None) -> "WorkerConfig":
        """Build the config; ``--socket`` in ``argv`` wins over ``PROCGRPC_SOCKET``; TCP from ``--listen`` (``_listen``).

        Unknown arguments are left alone: they belong to the user's script.
        """
        env = os.environ if env is None else env
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--socket", default=None)
        known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
        path = known.socket or env.get("PROCGRPC_SOCKET", "")
        try:
            listen = _listen.from_environment(argv, env)
        except _listen.ListenConfigError as exc:
            raise ConfigError(str(exc)) from None
        if not path and listen is None:
            raise ConfigError("no socket path: pass --socket PATH or set PROCGRPC_SOCKET (or --listen HOST:PORT for TCP)")
        grace_raw = env.get("PROCGRPC_GRACE_SECONDS", "").strip()
        try:
            grace = float(grace_raw) if grace_raw else 5.0
        except ValueError:
            raise ConfigError(f"PROCGRPC_GRACE_SECONDS must be a number, got {grace_raw!r}") from None
        affinity_raw = env.get("PROCGRPC_CPU_AFFINITY", "").strip()
        switched_off = tuple(t.strip() for t in env.get("PROCGRPC_SWITCHED_OFF", "").split(",") if t.strip())
        for target in switched_off:
            try:
                check_target(target)
            except ValueError as exc:
                raise ConfigError(f"PROCGRPC_SWITCHED_OFF: {exc}") from None
        return cls(
            socket_path=path,
            worker_id=env.get("PROCGRPC_WORKER_ID") or None,
            control_fd=_env_int(env, "PROCGRPC_CONTROL_FD", 0),
            max_concurrency=_env_int(env, "PROCGRPC_MAX_CONCURRENCY", 1),
            threads=_env_int(env, "PROCGRPC_THREADS", 1),
            grace_seconds=max(0.0, grace),
            socket_dir_owned=env.get("PROCGRPC_SOCKET_DIR_OWNED") == "1",
            listen=listen,
            cpu_affinity=parse_cpu_list(affinity_raw) if affinity_raw else None,
            control_token=env.get("PROCGRPC_CONTROL_TOKEN", "").strip() or None,
            switched_off=switched_off,
            switched_off_generation=_env_int(env, "PROCGRPC_SWITCHED_OFF_GENERATION", 0) or 0,
            pipe_fd=_env_int(env, "PROCGRPC_PIPE_FD", 3),
        )

    @property
    def standalone(self) -> bool:
        """Serving TCP with no pool parent: parent-death detection does not apply (a remote worker)."""
        return self.listen is not None and self.control_fd is None
