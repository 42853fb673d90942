"""procgrpc: serve grpcio servicers as procgrpc worker processes.

A worker script is ``run_worker((add_XServicer_to_server, XServicer()))``; see
:func:`procgrpc.run_worker`. Rich errors live in :mod:`procgrpc.errors`.
"""

from __future__ import annotations

from . import errors
from ._call_info import CallInfo, current_call
from ._process.log import Logger, get_logger
from ._process.serving import set_serving
from .worker import WorkerConfig, run_worker

__all__ = ["run_worker", "WorkerConfig", "errors", "get_logger", "Logger", "set_serving", "current_call", "CallInfo"]
