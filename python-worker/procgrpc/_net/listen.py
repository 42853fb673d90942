"""Listening on TCP, for workers on other hosts (docs/scaling.md).

A worker always may serve its Unix socket; with ``--listen host:port`` (or
``PROCGRPC_LISTEN``) it also serves TCP. The rules, all checked before the
server starts so that a misconfiguration is an exit code 2 with a clear line:

* TLS when ``PROCGRPC_TLS_CERT`` and ``PROCGRPC_TLS_KEY`` are set; client
  certificates are required (mTLS) when ``PROCGRPC_TLS_CLIENT_CA`` is set too.
* Plaintext only on a loopback address, unless ``--allow-plaintext`` or
  ``PROCGRPC_ALLOW_PLAINTEXT=1`` opts in (e.g. behind a mesh sidecar).
* A bearer token (``PROCGRPC_TOKEN`` or the file named by
  ``PROCGRPC_TOKEN_FILE``) is checked on every call but grpc.health.v1.
* ``--health-listen`` / ``PROCGRPC_HEALTH_LISTEN``: a plaintext port serving
  grpc.health.v1 only, for Kubernetes ``grpc:`` probes (which cannot speak TLS).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
from grpc_health.v1 import health_pb2_grpc

from .._process.log import get_logger

__all__ = ["ListenConfig", "ListenConfigError", "TcpListeners", "from_environment", "is_loopback", "server_options", "split_host_port", "start_tcp"]

_log = get_logger()


class ListenConfigError(Exception):
    """The TCP settings are unusable or unsafe; the message says what to change."""


def split_host_port(address: str, what: str) -> Tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts; raises ListenConfigError naming ``what``."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ListenConfigError(f"{what} must be HOST:PORT (e.g. 0.0.0.0:50051 or [::]:50051), got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ListenConfigError(f"{what}: port must be a number, got {port_text!r} in {address!r}") from None
    if not 0 <= port <= 65535:
        raise ListenConfigError(f"{what}: port must be 0-65535, got {port} in {address!r}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1); a wildcard is not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # Any other name may resolve to a routable address.


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ListenConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


class ListenConfig:
    """Where and how the worker serves TCP."""

    def __init__(self, address: str, cert_chain: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 client_ca: Optional[bytes] = None, token: Optional[str] = None, allow_plaintext: bool = False,
                 health_address: Optional[str] = None) -> None:
        self.address = address
        self.host, self.port = split_host_port(address, "--listen / PROCGRPC_LISTEN")
        self.cert_chain = cert_chain
        self.private_key = private_key
        self.client_ca = client_ca
        self.token = token
        self.allow_plaintext = allow_plaintext
        self.health_address = health_address
        if health_address is not None:
            split_host_port(health_address, "--health-listen / PROCGRPC_HEALTH_LISTEN")
        if (cert_chain is None) != (private_key is None):
            raise ListenConfigError("TLS needs both PROCGRPC_TLS_CERT and PROCGRPC_TLS_KEY; only one is set")
        if client_ca is not None and cert_chain is None:
            raise ListenConfigError("PROCGRPC_TLS_CLIENT_CA (mTLS) needs PROCGRPC_TLS_CERT and PROCGRPC_TLS_KEY too")
        if token is not None and not token:
            raise ListenConfigError("the bearer token is empty: set PROCGRPC_TOKEN (or PROCGRPC_TOKEN_FILE) to a secret, or unset it")
        if not self.tls and not allow_plaintext and not is_loopback(self.host):
            raise ListenConfigError(
                f"refusing to serve plaintext gRPC on {address}: it is not a loopback address, so anyone on the "
                "network could read and send calls. Set PROCGRPC_TLS_CERT and PROCGRPC_TLS_KEY for TLS, listen on "
                "127.0.0.1, or opt in with --allow-plaintext / PROCGRPC_ALLOW_PLAINTEXT=1 (e.g. behind a mesh that encrypts)")

    @property
    def tls(self) -> bool:
        """Whether the TCP port serves TLS."""
        return self.cert_chain is not None

    def credentials(self) -> Optional[grpc.ServerCredentials]:
        """TLS server credentials (requiring client certificates with a client CA), or None for plaintext."""
        if self.cert_chain is None or self.private_key is None:
            return None
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    def add_port(self, server: Any) -> int:
        """Binds the TCP port on ``server``; returns the bound port (useful with port 0)."""
        creds = self.credentials()
        if creds is None:
            return int(server.add_insecure_port(self.address))
        return int(server.add_secure_port(self.address, creds))

    def describe(self) -> str:
        """For the log: ``tls``, ``mtls`` or ``plaintext``."""
        return "mtls" if self.client_ca is not None else "tls" if self.tls else "plaintext"


def from_environment(argv: Optional[Sequence[str]], env: Mapping[str, str]) -> Optional[ListenConfig]:
    """The TCP settings from ``--listen``/``--allow-plaintext``/``--health-listen`` and ``PROCGRPC_*``; None when not listening."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--listen", default=None)
    parser.add_argument("--health-listen", default=None)
    parser.add_argument("--allow-plaintext", action="store_true")
    known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    address = known.listen or env.get("PROCGRPC_LISTEN", "").strip()
    health = known.health_listen or env.get("PROCGRPC_HEALTH_LISTEN", "").strip() or None
    if not address:
        if health:
            raise ListenConfigError("--health-listen / PROCGRPC_HEALTH_LISTEN needs --listen / PROCGRPC_LISTEN too")
        return None
    cert_path = env.get("PROCGRPC_TLS_CERT", "").strip()
    key_path = env.get("PROCGRPC_TLS_KEY", "").strip()
    ca_path = env.get("PROCGRPC_TLS_CLIENT_CA", "").strip()
    token: Optional[str] = None
    if "PROCGRPC_TOKEN" in env:
        token = env["PROCGRPC_TOKEN"].strip()
    token_file = env.get("PROCGRPC_TOKEN_FILE", "").strip()
    if token_file:
        if token is not None:
            raise ListenConfigError("set PROCGRPC_TOKEN or PROCGRPC_TOKEN_FILE, not both")
        token = _read(token_file, "PROCGRPC_TOKEN_FILE").decode("utf-8").strip()
    allow = known.allow_plaintext or env.get("PROCGRPC_ALLOW_PLAINTEXT", "").strip() in ("1", "true", "yes")
    return ListenConfig(
        address,
        cert_chain=_read(cert_path, "PROCGRPC_TLS_CERT") if cert_path else None,
        private_key=_read(key_path, "PROCGRPC_TLS_KEY") if key_path else None,
        client_ca=_read(ca_path, "PROCGRPC_TLS_CLIENT_CA") if ca_path else None,
        token=token,
        allow_plaintext=allow,
        health_address=health,
    )


def server_options(listen: Optional[ListenConfig]) -> List[Tuple[str, Any]]:
    """Server options for TCP: accept the clients' keepalive pings (RemotePool pings to notice a
    dead host within seconds; grpcio's default would answer frequent pings with GOAWAY)."""
    if listen is None:
        return []
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 500),
        ("grpc.http2.max_ping_strikes", 0),
    ]


class TcpListeners:
    """What ``start_tcp`` bound: the TCP port and the optional health-only server."""

    def __init__(self, listen: Optional[ListenConfig] = None, port: int = 0, health_server: Any = None,
                 health_port: int = 0) -> None:
        self._listen = listen
        self.port = port
        self._health_server = health_server
        self.health_port = health_port

    def log_fields(self) -> Dict[str, Any]:
        """Fields for the worker's ready line (bound ports, security); empty when not on TCP."""
        if self._listen is None:
            return {}
        fields: Dict[str, Any] = {"listen": f"{self._listen.host}:{self.port}", "security": self._listen.describe(),
                                  "token": self._listen.token is not None}
        if self._health_server is not None:
            fields["health_listen"] = f"{split_host_port(self._listen.health_address or '', 'health')[0]}:{self.health_port}"
        return fields

    async def stop(self) -> None:
        """Stops the health-only server (the main server is stopped by the worker)."""
        if self._health_server is not None:
            await self._health_server.stop(0)


async def start_tcp(server: Any, health: Any, listen: Optional[ListenConfig]) -> Optional[TcpListeners]:
    """Binds the TCP port on ``server`` and starts the plaintext health-only server; None (logged) when a port cannot be bound."""
    if listen is None:
        return TcpListeners()
    try:
        port = listen.add_port(server)
    except RuntimeError as exc:
        _log.error("could not listen on TCP", listen=listen.address, error=str(exc))
        return None
    if listen.token is None and listen.client_ca is None and not is_loopback(listen.host):
        _log.warn("TCP listener has no authentication: anyone who reaches it can call every method; "
                  "set PROCGRPC_TOKEN(_FILE) or PROCGRPC_TLS_CLIENT_CA", listen=listen.address)
    if listen.health_address is None:
        return TcpListeners(listen, port)
    # A second server with grpc.health.v1 only, sharing the worker's HealthServicer: probes see
    # the same status, and nothing but the status is exposed without TLS.
    health_server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, health_server)
    try:
        health_port = int(health_server.add_insecure_port(listen.health_address))
    except RuntimeError as exc:
        _log.error("could not listen on the health port", health_listen=listen.health_address, error=str(exc))
        return None
    await health_server.start()
    return TcpListeners(listen, port, health_server, health_port)
