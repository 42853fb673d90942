"""Which process mechanisms this platform offers.

Linux has ``PR_SET_PDEATHSIG`` and a 107-byte socket path limit; macOS (and the other BSDs) have
neither the prctl nor /proc, and their limit is 103 bytes. ``PROCGRPC_PORTABLE=1`` forces the
macOS paths on Linux, so that the tests exercise them (the Node pool reads the same variable).
"""

from __future__ import annotations

import os
import sys

__all__ = ["portable"]


def portable() -> bool:
    """True when only the portable mechanisms may be used (not Linux, or PROCGRPC_PORTABLE=1)."""
    return not sys.platform.startswith("linux") or os.environ.get("PROCGRPC_PORTABLE") == "1"
