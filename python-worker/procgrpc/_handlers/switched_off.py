"""The kill switches a worker enforces itself (docs/supervision.md, "Kill switches").

The pool refuses calls to a switched-off method on its own side, without a worker round trip;
but ``procgrpc serve`` publishes the workers' sockets, and a client calling a socket directly
never passes through the pool. So the pool also tells every worker the full set of switched-off
targets (``_services.kill_switch``), and each wrapped handler checks it as its call enters
servicer code (``_handlers.scope.CallScope``): a refused call never runs servicer code, is not
counted in flight, and ends with UNAVAILABLE and the ErrorInfo reason ``SWITCHED_OFF`` that the
pool's own refusals carry. Calls already inside servicer code finish. Only the user's services
are wrapped, so procgrpc's internal services (health, reflection, the pipe, introspection, the
kill switch service itself) can never be switched off.
"""

from __future__ import annotations

from typing import Any, FrozenSet, Iterable, Optional, Tuple

import grpc

from .. import errors
from .._config import check_target

__all__ = ["SWITCHED_OFF_REASON", "SwitchedOff", "refusal"]

#: The ErrorInfo reason of a refused call (the pool's ``SWITCHED_OFF_REASON``).
SWITCHED_OFF_REASON = "SWITCHED_OFF"


class SwitchedOff:
    """The switched-off targets of one worker, replaced as a whole by the pool.

    Each set carries the pool's ``generation`` (it grows with every change): a set older than
    the one in force is ignored, so pushes that overtake each other cannot undo a change.
    Read on the event loop only (the kill switch service writes it there too).
    """

    __slots__ = ("_targets", "generation")

    def __init__(self, targets: Iterable[str] = (), generation: int = 0) -> None:
        self._targets: FrozenSet[str] = frozenset(check_target(t) for t in targets)
        self.generation = generation

    @property
    def targets(self) -> Tuple[str, ...]:
        """The targets switched off now, sorted."""
        return tuple(sorted(self._targets))

    def replace(self, targets: Iterable[str], generation: int) -> bool:
        """Put ``targets`` in force unless a newer generation already is; True when they are now."""
        if generation < self.generation:
            return False
        self._targets = frozenset(check_target(t) for t in targets)
        self.generation = generation
        return True

    def target_for(self, method: str) -> Optional[str]:
        """The switched-off target covering ``method`` (its own path or its service), if any."""
        targets = self._targets
        if not targets:
            return None
        if method in targets:
            return method
        service = method[1:method.rfind("/")]
        return service if service in targets else None


def refusal(method: str, target: str) -> Any:
    """The ``grpc.Status`` a switched-off call ends with: UNAVAILABLE, its details naming the
    switch, an ErrorInfo (reason ``SWITCHED_OFF``, domain ``procgrpc``, ``method``, ``target``)."""
    what = method if target == method else f"{method} (service {target})"
    return errors.build_status(
        grpc.StatusCode.UNAVAILABLE,
        f"{what} is switched off for this pool: refused by the worker without running it",
        [errors.error_info(SWITCHED_OFF_REASON, "procgrpc", {"method": method, "target": target})],
    )
