"""The per-call state that the pipelined path keeps without locks or eager copies: termination
callbacks (``ForwardingContext``), the running-handler registry, and a pipeline call's context,
which builds the metadata only when asked. Pure logic, with real threads where threads matter."""

from __future__ import annotations

import threading
from typing import List

from procgrpc._handlers.contexts import ForwardingContext
from procgrpc._handlers.in_flight import RunningHandlers
from procgrpc._services import _pipeline_pb2 as pb
from procgrpc._services.pipe_context import CallSlot, Outbox, PipeContext, invocation_metadata


def test_callbacks_run_once_at_termination_and_not_after() -> None:
    ctx = ForwardingContext(object())
    ran: List[str] = []
    assert ctx.add_callback(lambda: ran.append("a"))
    assert ctx.add_callback(lambda: ran.append("b"))
    ctx.terminate()
    ctx.terminate()
    assert ran == ["a", "b"]
    assert not ctx.is_active()
    assert ctx.add_callback(lambda: ran.append("late")) is False
    assert ran == ["a", "b"]


def test_a_raising_callback_does_not_stop_the_others() -> None:
    ctx = ForwardingContext(object())
    ran: List[str] = []

    def boom() -> None:
        raise RuntimeError("callback failed")

    ctx.add_callback(boom)
    ctx.add_callback(lambda: ran.append("after"))
    ctx.terminate()
    assert ran == ["after"]


def test_callbacks_added_from_threads_while_the_call_ends_run_exactly_when_accepted() -> None:
    # add_callback from pool threads races terminate on the loop: a callback accepted (True) runs
    # exactly once, one refused (False) never runs; over many calls both outcomes happen.
    for _ in range(300):
        ctx = ForwardingContext(object())
        counts = [0] * 16
        accepted: List[bool] = [False] * 16
        start = threading.Barrier(5)

        def add(first: int) -> None:
            start.wait()
            for i in range(first, 16, 4):
                def callback(i: int = i) -> None:
                    counts[i] += 1
                accepted[i] = ctx.add_callback(callback)

        threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        start.wait()
        ctx.terminate()
        for t in threads:
            t.join()
        assert counts == [1 if a else 0 for a in accepted]


def test_running_handlers_from_many_threads_get_distinct_tokens_and_leave_nothing() -> None:
    running = RunningHandlers()
    tokens: List[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for _ in range(500):
            token = running.started("/m", "rid", "cid")
            mine.append(token)
            running.snapshot()
            running.finished(token)
        with lock:
            tokens.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == len(tokens) == 2000
    assert running.snapshot()["running"] == []


def test_a_call_without_metadata_is_identified_from_its_fields() -> None:
    call = pb.PipeCall(call_id=1, method="/m", request_id="r-1", attempt_id="a-1")
    ctx = PipeContext(CallSlot(1, Outbox(lambda: None)), call, None)
    assert ctx.procgrpc_call_identity() == ("r-1", "a-1")
    assert PipeContext(CallSlot(2, Outbox(lambda: None)), pb.PipeCall(call_id=2, method="/m"), None).procgrpc_call_identity() == (None, None)
    # Asked for, the metadata is what grpc would give: the fields as their metadata entries.
    assert ctx.invocation_metadata() == (("x-request-id", "r-1"), ("procgrpc-call-id", "a-1"))


def test_a_call_with_metadata_is_identified_by_reading_it() -> None:
    call = pb.PipeCall(call_id=1, method="/m", request_id="r-1",
                       metadata=[pb.MetadataEntry(key="traceparent", value=b"00-abc-def-01"),
                                 pb.MetadataEntry(key="blob-bin", value=b"\x00\x01")])
    ctx = PipeContext(CallSlot(1, Outbox(lambda: None)), call, None)
    assert ctx.procgrpc_call_identity() is None
    assert ctx.invocation_metadata() == invocation_metadata(call) == (
        ("traceparent", "00-abc-def-01"), ("blob-bin", b"\x00\x01"), ("x-request-id", "r-1"))
    assert ctx.invocation_metadata() is ctx.invocation_metadata()  # built once


def test_the_outbox_counts_what_the_next_response_holds() -> None:
    woken: List[int] = []
    outbox = Outbox(lambda: woken.append(1))
    assert not outbox and outbox.size() == 0
    outbox.header().call_id = 7
    assert outbox and outbox.size() == 0
    outbox.result().call_id = 7
    outbox.result().call_id = 8
    assert outbox.size() == 2 and len(woken) == 3
    response = outbox.take()
    assert [r.call_id for r in response.results] == [7, 8] and len(response.headers) == 1
    assert not outbox and outbox.size() == 0
