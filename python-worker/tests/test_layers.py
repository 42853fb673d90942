"""The worker package's private modules are layers whose imports run one way (no circles).

Lowest first; a module may import procgrpc modules of lower layers and of its own package only.
"""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Tuple

PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "procgrpc")

LAYERS: List[str] = [
    "_call_info",  # the call being served (a contextvar): read by logging, set by handlers
    "errors",  # public error classes and detail builders
    "_process",  # logging, parent watch, socket guard, serving state, exit
    "_shm",  # the shared-memory lane's file primitives (imports nothing of procgrpc)
    "_status",  # exception -> status, status-code coercion
    "_net",  # TCP listening, bearer-token auth
    "_config",  # WorkerConfig from argv and the environment
    "_handlers",  # contexts, the per-call scope, in-flight bookkeeping, adapters
    "_services",  # pipeline transport, introspection
    "_server",  # building and serving the grpc.aio server
    "worker",  # run_worker
    "__init__",  # the public surface
]


def _top(module_path: str) -> str:
    """The layer a module file belongs to: its first path component under procgrpc/."""
    rel = os.path.relpath(module_path, PACKAGE)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".py") else first


def _imports(path: str) -> List[Tuple[str, int]]:
    """(layer imported, line) for every relative import of a procgrpc module in ``path``."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    rel_dir = os.path.relpath(os.path.dirname(path), PACKAGE)
    here = [] if rel_dir == "." else rel_dir.split(os.sep)
    out: List[Tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
            target = base + (node.module.split(".") if node.module else [])
            if target:
                out.append((target[0], node.lineno))
            else:  # "from . import x" at the top: x is the layer
                out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("procgrpc"):
            parts = node.module.split(".")
            out.append((parts[1] if len(parts) > 1 else "__init__", node.lineno))
    return out


def test_every_module_belongs_to_a_layer_and_imports_only_lower_layers() -> None:
    rank: Dict[str, int] = {name: i for i, name in enumerate(LAYERS)}
    bad: List[str] = []
    for root, _dirs, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py") or name.endswith("_pb2.py"):
                continue
            path = os.path.join(root, name)
            layer = _top(path)
            assert layer in rank, f"{path} is in no layer; add it to LAYERS"
            for imported, line in _imports(path):
                if imported == layer:
                    continue
                assert imported in rank, f"{path}:{line} imports unknown procgrpc module {imported}"
                if rank[imported] >= rank[layer]:
                    bad.append(f"{os.path.relpath(path, PACKAGE)}:{line} ({layer}) imports {imported}")
    assert bad == []
