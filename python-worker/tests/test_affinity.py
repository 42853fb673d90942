"""CPU affinity of a worker (``PROCGRPC_CPU_AFFINITY``): parsing, pinning, and the unsupported path."""

from __future__ import annotations

import os
import threading

import pytest

from procgrpc._config import ConfigError, WorkerConfig, parse_cpu_list
from procgrpc._process import affinity


def test_cpu_lists_parse_like_the_kernels() -> None:
    assert parse_cpu_list("0") == frozenset({0})
    assert parse_cpu_list("0,2,4-6") == frozenset({0, 2, 4, 5, 6})
    assert parse_cpu_list(" 1 , 1-2 ") == frozenset({1, 2})


@pytest.mark.parametrize("raw", ["a", "1-", "3-1", "-1", "1,,2"])
def test_bad_cpu_lists_are_config_errors(raw: str) -> None:
    with pytest.raises(ConfigError, match="PROCGRPC_CPU_AFFINITY"):
        parse_cpu_list(raw)


def test_the_environment_sets_the_config() -> None:
    config = WorkerConfig.from_environment(["--socket", "/tmp/x.sock"], {"PROCGRPC_CPU_AFFINITY": "0"})
    assert config.cpu_affinity == frozenset({0})
    assert WorkerConfig.from_environment(["--socket", "/tmp/x.sock"], {}).cpu_affinity is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no sched_setaffinity here")
def test_pinning_covers_threads_that_already_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROCGRPC_PORTABLE", raising=False)
    before = os.sched_getaffinity(0)
    target = frozenset({min(before)})
    seen: list[set[int]] = []
    started, release = threading.Event(), threading.Event()

    def thread_body() -> None:
        started.set()
        release.wait(10)
        seen.append(os.sched_getaffinity(0))

    t = threading.Thread(target=thread_body)
    t.start()
    started.wait(10)
    try:
        assert affinity.apply_cpu_affinity(target) is True
        assert os.sched_getaffinity(0) == target
    finally:
        release.set()
        t.join(10)
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), before)
    assert seen == [set(target)]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no sched_setaffinity here")
def test_a_cpu_outside_the_allowed_set_is_an_affinity_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROCGRPC_PORTABLE", raising=False)
    with pytest.raises(affinity.AffinityError, match="cannot pin to CPUs"):
        affinity.apply_cpu_affinity(frozenset({4096}))


def test_unsupported_platforms_run_unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCGRPC_PORTABLE", "1")
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert affinity.supported() is False
    assert affinity.apply_cpu_affinity(frozenset({0})) is False
    if before is not None:
        assert os.sched_getaffinity(0) == before
    assert affinity.apply_cpu_affinity(None) is False
