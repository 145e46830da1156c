"""Two-core stage overlap (engine.threads): order kept, errors surface where they happened."""

from __future__ import annotations

import os
import threading
import time

import pytest

from engine.threads import BackgroundSink, prefetch


@pytest.mark.parametrize("threaded", [True, False])
def test_sink_consumes_every_item_in_order(threaded: bool) -> None:
    seen: list[int] = []
    with BackgroundSink(lambda i: (time.sleep(0.001), seen.append(i)), threaded=threaded) as sink:
        for i in range(50):
            sink.put(i)
    assert seen == list(range(50))


def test_sink_error_stops_the_producer_and_is_raised() -> None:
    def consume(i: int) -> None:
        if i == 3:
            raise ValueError("disk full at block 3")

    puts = 0
    with pytest.raises(ValueError, match="block 3"), BackgroundSink(consume, depth=1) as sink:
        for i in range(1000):
            sink.put(i)
            puts += 1
    assert puts < 1000  # a later put raised instead of queueing the whole stream


def test_sink_does_not_hide_the_producers_own_error() -> None:
    with pytest.raises(KeyError), BackgroundSink(lambda i: None) as sink:
        sink.put(1)
        raise KeyError("producer")


@pytest.mark.parametrize("threaded", [True, False])
def test_prefetch_yields_everything_and_reraises_at_the_same_place(threaded: bool) -> None:
    def source():
        yield from range(5)
        raise OSError("truncated at block 5")

    got: list[int] = []
    with pytest.raises(OSError, match="block 5"):
        for b in prefetch(source(), threaded=threaded):
            got.append(b)
    assert got == [0, 1, 2, 3, 4]


def test_closing_prefetch_early_stops_and_closes_the_source() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def source():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = prefetch(source(), depth=2)
    assert next(it) == 0
    it.close()
    assert closed.wait(2.0)
    assert len(produced) < 10  # read-ahead is bounded by depth


def test_single_blas_thread_sets_one_thread_for_child_processes_and_keeps_a_user_setting(monkeypatch) -> None:
    from engine.threads import BLAS_THREAD_VARS, single_blas_thread

    for var in BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")  # the user's choice
    covered = single_blas_thread()
    assert covered is False  # numpy is loaded in the test process: only new processes are covered
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1" and os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "4"
