"""Deferreds together: DeferredList, gatherResults, race, addTimeout, and the lock, semaphore and
queue for Deferred code — each as Twisted's "Deferred Reference" and API documentation describe."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from twistdlite import defer
from twistdlite.defer import Deferred
from twistdlite.failure import Failure
from twistdlite.task import Clock


def outcome(d: Deferred):
    seen = []
    d.addBoth(seen.append)
    assert seen, f"{d!r} has not fired"
    return seen[0]


# -- DeferredList ------------------------------------------------------------------------------

def test_deferredlist_fires_with_every_outcome_in_list_order():
    a, b, c = Deferred(), Deferred(), Deferred()
    dl = defer.DeferredList([a, b, c], consumeErrors=True)
    c.callback("c")
    a.errback(ValueError("a"))
    assert not dl.called
    b.callback("b")
    results = dl.result
    assert [success for success, _ in results] == [False, True, True]
    assert results[0][1].check(ValueError) and results[1][1] == "b" and results[2][1] == "c"


def test_an_empty_deferredlist_fires_at_once_with_an_empty_list():
    assert defer.DeferredList([]).result == []


def test_fireOnOneCallback_fires_with_the_first_result_and_its_index():
    a, b = Deferred(), Deferred()
    dl = defer.DeferredList([a, b], fireOnOneCallback=True)
    b.callback("first")
    assert dl.result == ("first", 1)
    a.callback("later")  # no second firing
    assert dl.result == ("first", 1)


def test_fireOnOneErrback_fails_with_FirstError_naming_the_failure_and_index():
    a, b = Deferred(), Deferred()
    dl = defer.DeferredList([a, b], fireOnOneErrback=True, consumeErrors=True)
    b.errback(KeyError("k"))
    failure = outcome(dl)
    assert failure.check(defer.FirstError)
    assert failure.value.index == 1 and failure.value.subFailure.check(KeyError)
    assert "FirstError[#1" in str(failure.value)


def test_without_consumeErrors_the_failure_stays_in_its_deferred_and_is_logged(caplog):
    caplog.set_level(logging.ERROR)
    failing = Deferred()
    dl = defer.DeferredList([failing])
    failing.errback(ValueError("still unhandled"))
    assert outcome(dl)[0][1].check(ValueError)
    assert failing.result.check(ValueError)  # not consumed: the original Deferred still has it
    del failing, dl
    gc.collect()
    assert "Unhandled error in Deferred" in caplog.text and "still unhandled" in caplog.text

    consumed = Deferred()
    defer.DeferredList([consumed], consumeErrors=True)
    consumed.errback(ValueError("consumed"))
    assert outcome(consumed) is None


def test_cancelling_a_deferredlist_cancels_the_pending_deferreds():
    fired, pending = defer.succeed(1), Deferred()
    dl = defer.DeferredList([fired, pending], consumeErrors=True)
    dl.cancel()
    assert outcome(pending) is None  # consumed by the list
    results = outcome(dl)
    assert results[0] == (True, 1) and results[1][1].check(defer.CancelledError)


# -- gatherResults ---------------------------------------------------------------------------

def test_gatherResults_gives_the_results_in_order():
    a, b = Deferred(), Deferred()
    d = defer.gatherResults([a, b])
    b.callback(2)
    a.callback(1)
    assert d.result == [1, 2]


def test_gatherResults_fails_with_FirstError_at_the_first_failure():
    a, b = Deferred(), Deferred()
    d = defer.gatherResults([a, b], consumeErrors=True)
    a.errback(RuntimeError("first"))
    failure = outcome(d)
    assert failure.check(defer.FirstError) and failure.value.subFailure.getErrorMessage() == "first"
    b.errback(RuntimeError("second"))  # consumed: not logged as unhandled
    assert outcome(b) is None


# -- race ------------------------------------------------------------------------------------

def test_race_fires_with_the_first_success_and_cancels_the_rest():
    cancelled = []
    ds = [Deferred(lambda d, i=i: cancelled.append(i)) for i in range(3)]
    d = defer.race(ds)
    ds[1].callback("winner")
    assert d.result == (1, "winner")
    assert cancelled == [0, 2]
    for loser in (ds[0], ds[2]):
        loser.addErrback(lambda f: None)


def test_race_fails_with_FailureGroup_when_all_fail():
    ds = [Deferred(), Deferred()]
    d = defer.race(ds)
    ds[0].errback(KeyError())
    ds[1].errback(ValueError())
    failure = outcome(d)
    assert failure.check(defer.FailureGroup)
    assert [f.type for f in failure.value.failures] == [KeyError, ValueError]


# -- addTimeout --------------------------------------------------------------------------------

def test_addTimeout_fails_with_TimeoutError_when_time_runs_out():
    clock = Clock()
    cancelled = []
    d = Deferred(cancelled.append).addTimeout(5, clock)
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.2)
    assert cancelled == [d]
    failure = outcome(d)
    assert failure.check(defer.TimeoutError) and failure.value.args == (5, "Deferred")


def test_addTimeout_does_nothing_to_a_deferred_that_fires_in_time_and_leaves_no_call_behind():
    clock = Clock()
    d = Deferred().addTimeout(5, clock)
    d.callback("in time")
    assert d.result == "in time"
    assert clock.getDelayedCalls() == []


def test_addTimeout_onTimeoutCancel_decides_the_result():
    clock = Clock()
    d = Deferred().addTimeout(1, clock, onTimeoutCancel=lambda result, timeout: f"gave up after {timeout}")
    clock.advance(1)
    assert d.result == "gave up after 1"


def test_addTimeout_keeps_a_canceller_result_that_is_not_a_cancellation():
    clock = Clock()
    d = Deferred(lambda d: d.callback("canceller's own result")).addTimeout(1, clock)
    clock.advance(1)
    assert d.result == "canceller's own result"


def test_addTimeout_on_the_real_reactor():
    from twistdlite import reactor

    async def main():
        d = Deferred().addTimeout(0.01, reactor)
        with pytest.raises(defer.TimeoutError):
            await d
        return "ok"

    assert asyncio.run(main()) == "ok"


# -- DeferredLock, DeferredSemaphore --------------------------------------------------------------

def test_deferredlock_serialises_holders_in_order():
    lock = defer.DeferredLock()
    first = lock.acquire()
    assert first.result is lock and lock.locked
    second, third = lock.acquire(), lock.acquire()
    assert not second.called
    third.cancel()  # a waiter may give up
    assert outcome(third).check(defer.CancelledError)
    lock.release()
    assert second.result is lock and lock.locked
    lock.release()
    assert not lock.locked
    with pytest.raises(RuntimeError):
        lock.release()


def test_deferredlock_and_semaphore_hand_over_to_waiters_first_come_first_served():
    for primitive in (defer.DeferredLock(), defer.DeferredSemaphore(1)):
        held = []
        for name in "abcd":
            primitive.acquire().addCallback(lambda _, name=name: held.append(name))
        for _ in range(3):
            primitive.release()
        assert held == list("abcd"), primitive


def test_deferredlock_run_releases_after_the_returned_deferred_fires():
    lock = defer.DeferredLock()
    gate = Deferred()
    d = lock.run(lambda x: gate.addCallback(lambda r: r + x), 1)
    assert lock.locked
    gate.callback(41)
    assert d.result == 42 and not lock.locked
    failing = lock.run(lambda: 1 / 0)
    assert outcome(failing).check(ZeroDivisionError) and not lock.locked


def test_deferredlock_async_with():
    lock = defer.DeferredLock()

    async def use():
        async with lock:
            assert lock.locked
        return lock.locked

    assert defer.ensureDeferred(use()).result is False


def test_deferredsemaphore_allows_tokens_holders():
    sem = defer.DeferredSemaphore(2)
    a, b, c = sem.acquire(), sem.acquire(), sem.acquire()
    assert a.called and b.called and not c.called and sem.tokens == 0
    sem.release()
    assert c.called and sem.tokens == 0
    sem.release()
    sem.release()
    assert sem.tokens == 2
    with pytest.raises(RuntimeError):
        sem.release()
    with pytest.raises(ValueError):
        defer.DeferredSemaphore(0)


# -- DeferredQueue ---------------------------------------------------------------------------

def test_deferredqueue_hands_items_to_waiting_gets_in_order():
    queue = defer.DeferredQueue()
    first, second = queue.get(), queue.get()
    queue.put("a")
    queue.put("b")
    queue.put("c")
    assert (first.result, second.result) == ("a", "b")
    assert queue.get().result == "c"


def test_deferredqueue_size_and_backlog_limits():
    queue = defer.DeferredQueue(size=1, backlog=1)
    queue.put(1)
    with pytest.raises(defer.QueueOverflow):
        queue.put(2)
    assert queue.get().result == 1
    waiting = queue.get()
    with pytest.raises(defer.QueueUnderflow):
        queue.get()
    waiting.cancel()  # frees the backlog slot
    assert outcome(waiting).check(defer.CancelledError)
    later = queue.get()
    queue.put(3)
    assert later.result == 3


# -- garbage --------------------------------------------------------------------------------------

def test_fired_deferreds_of_coroutines_and_inlineCallbacks_are_freed_without_the_cycle_collector():
    import weakref

    async def coro():
        return 1

    @defer.inlineCallbacks
    def gen():
        yield defer.succeed(None)
        return 2

    gc.disable()
    try:
        refs = [weakref.ref(defer.ensureDeferred(coro())), weakref.ref(gen()),
                weakref.ref(Deferred(lambda d: None))]
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()


def test_failure_is_a_failure():
    assert isinstance(outcome(defer.fail(ValueError())), Failure)
