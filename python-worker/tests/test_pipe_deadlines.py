"""The pipe's deadlines behind one loop timer (procgrpc/_services/pipe_deadlines.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, List

from procgrpc._services.pipe_deadlines import Deadlines


def _run(body: Any) -> Any:
    return asyncio.run(body())


def test_calls_one_after_another_share_one_timer_and_a_discarded_call_never_expires() -> None:
    async def body() -> List[int]:
        loop = asyncio.get_running_loop()
        armed: List[float] = []
        call_later = loop.call_later

        def counting(delay: float, callback: Any, *args: Any) -> Any:
            armed.append(delay)
            return call_later(delay, callback, *args)

        loop.call_later = counting  # type: ignore[method-assign]
        expired: List[int] = []
        deadlines = Deadlines(expired.append)
        for call_id in range(100):
            deadlines.add(call_id, time.monotonic() + 30)
            deadlines.discard(call_id)
        assert len(armed) == 1  # the first call's timer served them all
        done = asyncio.Event()
        deadlines.add(100, time.monotonic() + 0.01)  # earlier than the armed time: re-armed
        deadlines.add(101, time.monotonic() + 0.02)
        deadlines.discard(101)
        loop.call_later(0.05, done.set)
        await done.wait()
        deadlines.clear()
        return expired

    assert _run(body) == [100]


def test_deadlines_expire_in_order_whatever_the_order_they_were_added_in() -> None:
    async def body() -> List[int]:
        expired: List[int] = []
        all_expired = asyncio.Event()

        def expire(call_id: int) -> None:
            expired.append(call_id)
            if len(expired) == 3:
                all_expired.set()

        deadlines = Deadlines(expire)
        now = time.monotonic()
        for call_id, after in ((1, 0.03), (2, 0.01), (3, 0.02)):
            deadlines.add(call_id, now + after)
        await asyncio.wait_for(all_expired.wait(), 30)  # the bound only limits a failure
        return expired

    assert _run(body) == [2, 3, 1]
