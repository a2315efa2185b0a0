"""LoopingCall, the fake Clock and TimerService (twistdlite.task, twistdlite.internet.TimerService)."""

from __future__ import annotations

import asyncio
import logging
import pickle

import pytest

from twistdlite import reactor
from twistdlite.internet import TimerService
from twistdlite.reactor import AlreadyCalled, AlreadyCancelled
from twistdlite.task import Clock, LoopingCall


# -- the fake Clock ---------------------------------------------------------------------------------

def test_clock_runs_calls_only_when_time_is_advanced_past_them():
    clock = Clock()
    seen: list = []
    clock.callLater(2, seen.append, "two")
    clock.callLater(1, seen.append, "one")
    assert clock.seconds() == 0 and len(clock.getDelayedCalls()) == 2
    clock.advance(0.5)
    assert seen == []
    clock.advance(0.5)
    assert seen == ["one"]
    clock.pump([0.5, 0.5])
    assert seen == ["one", "two"] and clock.seconds() == 2 and clock.getDelayedCalls() == []


def test_clock_call_handles_cancel_reset_delay_and_refuse_reuse():
    clock = Clock()
    seen: list = []
    a = clock.callLater(1, seen.append, "a")
    b = clock.callLater(2, seen.append, "b")
    assert a.getTime() == 1 and a.active()
    a.delay(2)
    assert a.getTime() == 3
    b.reset(5)
    assert b.getTime() == 5
    clock.advance(3)
    assert seen == ["a"] and not a.active()
    b.cancel()
    assert not b.active()
    clock.advance(10)
    assert seen == ["a"]
    for action in (a.cancel, lambda: a.reset(1), lambda: a.delay(1)):
        with pytest.raises(AlreadyCalled):
            action()
    for action in (b.cancel, lambda: b.reset(1), lambda: b.delay(1)):
        with pytest.raises(AlreadyCancelled):
            action()
    assert clock.getDelayedCalls() == []


# -- LoopingCall on the fake Clock -------------------------------------------------------------------

def looping(clock: Clock, *args, **kw):
    calls: list = []
    lc = LoopingCall(lambda *a, **k: calls.append((clock.seconds(), a, k)), *args, **kw)
    lc.clock = clock
    return lc, calls


def test_looping_call_calls_now_and_every_interval():
    clock = Clock()
    lc, calls = looping(clock, 1, key="v")
    lc.start(1.0)
    clock.pump([1.0] * 3)
    assert calls == [(0, (1,), {"key": "v"}), (1, (1,), {"key": "v"}), (2, (1,), {"key": "v"}), (3, (1,), {"key": "v"})]
    lc.stop()
    clock.advance(10)
    assert len(calls) == 4 and not lc.running and clock.getDelayedCalls() == []


def test_looping_call_not_now_waits_an_interval():
    clock = Clock()
    lc, calls = looping(clock)
    lc.start(2.0, now=False)
    assert calls == []
    clock.advance(2)
    assert [when for when, *_ in calls] == [2]


def test_missed_intervals_are_skipped_and_the_schedule_does_not_drift():
    clock = Clock()
    lc, calls = looping(clock)
    lc.start(1.0)
    clock.advance(3.5)  # three intervals late: one call, not three
    clock.advance(0.5)  # back on the original grid: 4.0
    assert [when for when, *_ in calls] == [0, 3.5, 4.0]


class EarlyClock(Clock):
    """A clock that runs calls a hair before they are due, as asyncio's loop does within its clock resolution."""

    resolution = 1e-6

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        runs = 0
        while self.calls and self.calls[0].time <= self.rightNow + self.resolution:
            runs += 1
            assert runs < 100, "the same slot keeps coming round"
            call = self.calls.pop(0)
            call.called = True
            call.func(*call.args, **call.kw)


def test_a_call_that_fires_a_little_early_is_not_repeated_at_once():
    clock = EarlyClock()
    lc, calls = looping(clock)
    lc.start(1.0)
    clock.advance(1.0 - 5e-7)  # the call due at 1.0 runs now, a little early
    clock.advance(1e-6)  # now just past 1.0: nothing else is due until 2.0
    assert len(calls) == 2
    assert clock.getDelayedCalls()[0].getTime() == pytest.approx(2.0)


def test_looping_call_start_and_stop_misuse():
    clock = Clock()
    lc, _ = looping(clock)
    with pytest.raises(RuntimeError):
        lc.stop()
    with pytest.raises(ValueError):
        lc.start(-1)
    lc.start(1)
    with pytest.raises(RuntimeError):
        lc.start(1)
    lc.stop()
    lc.start(1)  # restartable
    assert lc.running


def test_an_exception_in_the_looping_function_stops_the_loop_and_fails_the_start_deferred():
    clock = Clock()
    calls: list = []

    def flaky() -> None:
        calls.append(clock.seconds())
        if len(calls) == 2:
            raise ValueError("flaky failed")

    lc = LoopingCall(flaky)
    lc.clock = clock
    failures: list = []
    lc.start(1).addErrback(failures.append)  # Twisted's idiom
    clock.pump([1, 1, 1])
    assert calls == [0, 1] and not lc.running and clock.getDelayedCalls() == []
    assert len(failures) == 1 and failures[0].check(ValueError)


def test_the_start_deferred_fires_with_the_looping_call_when_stopped():
    clock = Clock()
    lc = LoopingCall(lambda: None)
    lc.clock = clock
    ended: list = []
    lc.start(1).addCallback(ended.append)
    clock.advance(1)
    assert ended == []
    lc.stop()
    assert ended == [lc]


def test_an_async_looping_function_is_awaited_before_the_next_call():
    events: list = []

    async def slow() -> None:
        events.append("begin")
        await asyncio.sleep(0.03)
        events.append("end")

    async def main() -> None:
        lc = LoopingCall(slow)
        lc.start(0.01)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while events.count("begin") < 3:
            assert loop.time() < deadline
            await asyncio.sleep(0.005)
        busy = lc.stop()
        if busy is not None:
            await busy

    asyncio.run(main())
    assert events[:5] == ["begin", "end", "begin", "end", "begin"]  # never two at once


# -- TimerService ---------------------------------------------------------------------------------------

def timer(step: float = 5.0, func=None, *args, **kw):
    clock = Clock()
    calls: list = []
    svc = TimerService(step, func or (lambda *a, **k: calls.append((clock.seconds(), a, k))), *args, **kw)
    svc.clock = clock
    return svc, clock, calls


def test_timer_service_calls_at_start_then_every_step():
    svc, clock, calls = timer(5.0, None, "arg", kw="x")
    assert calls == []
    svc.startService()
    assert svc.running and calls == [(0, ("arg",), {"kw": "x"})]
    clock.advance(4.9)
    assert len(calls) == 1
    clock.advance(0.1)
    clock.pump([5.0, 5.0])
    assert [when for when, *_ in calls] == [0, 5, 10, 15]


def test_timer_service_stop_stops_it_and_it_can_start_again():
    svc, clock, calls = timer(1.0)
    svc.startService()
    clock.advance(1)
    stopped = svc.stopService()  # a Deferred, fired once no call is in progress
    assert stopped.called and stopped.result is None
    assert not svc.running and clock.getDelayedCalls() == []
    clock.advance(10)
    assert len(calls) == 2
    svc.startService()
    assert len(calls) == 3 and calls[-1][0] == 11
    svc.stopService()
    assert svc.stopService().called  # stopping twice is harmless


def test_an_exception_in_the_timer_callable_is_logged_and_the_timer_goes_on(caplog):
    caplog.set_level(logging.ERROR)
    clock = Clock()
    calls: list = []

    def tick() -> None:
        calls.append(clock.seconds())
        if clock.seconds() == 1:
            raise KeyError("tick failed")

    svc = TimerService(1, tick)
    svc.clock = clock
    svc.startService()
    clock.pump([1, 1, 1])
    assert calls == [0, 1, 2, 3]
    assert "tick failed" in caplog.text and "Traceback" in caplog.text
    svc.stopService()


def test_a_pickled_timer_service_comes_back_stopped():
    svc = TimerService(1, print, "hello")
    svc.clock = Clock()
    svc.startService()
    clone = pickle.loads(pickle.dumps(svc))
    assert not clone.running and clone._loop is None and clone.step == 1
    svc.stopService()


def test_timer_service_on_the_real_loop():
    calls: list = []

    async def main() -> None:
        svc = TimerService(0.01, calls.append, "tick")
        svc.startService()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(calls) < 3:
            assert loop.time() < deadline
            await asyncio.sleep(0.005)
        svc.stopService()
        count = len(calls)
        await asyncio.sleep(0.05)
        assert len(calls) == count

    reactor.uninstall()
    asyncio.run(main())
    assert calls[:3] == ["tick"] * 3
