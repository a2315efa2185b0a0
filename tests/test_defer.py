"""Deferred core: chaining, errors, pausing, cancellation, firing twice, unhandled errors, await,
ensureDeferred and inlineCallbacks — each as Twisted's "Deferred Reference" describes it."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import traceback

import pytest

from twistdlite import defer
from twistdlite.defer import Deferred
from twistdlite.failure import Failure


def outcome(d: Deferred):
    """The current result of a fired Deferred, consuming a failure (so nothing is logged)."""
    seen = []
    d.addBoth(seen.append)
    assert seen, f"{d!r} has not fired"
    return seen[0]


# -- chaining -----------------------------------------------------------------------------

def test_each_callback_gets_the_result_of_the_one_before():
    d = Deferred()
    d.addCallback(lambda r: r + 1).addCallback(lambda r, k, m=1: r * k * m, 10, m=2)
    assert not d.called
    d.callback(1)
    assert d.called and d.result == 40


def test_a_callback_added_after_firing_runs_at_once():
    d = defer.succeed("x")
    seen = []
    d.addCallback(seen.append)
    assert seen == ["x"] and d.result is None


def test_a_raising_callback_sends_its_error_down_the_errback_chain_and_an_errback_recovers():
    calls = []

    def boom(result):
        raise ValueError("bad " + result)

    d = Deferred()
    d.addCallback(boom)
    d.addCallback(lambda r: calls.append(("skipped callback", r)))
    d.addErrback(lambda f: calls.append(("errback", f.type, f.getErrorMessage())) or "recovered")
    d.addCallback(lambda r: calls.append(("callback again", r)))
    d.callback("input")
    assert calls == [("errback", ValueError, "bad input"), ("callback again", "recovered")]


def test_the_failure_keeps_the_callbacks_traceback():
    def boom(result):
        raise KeyError(result)

    d = Deferred().addCallback(boom)
    d.callback("k")
    failure = outcome(d)
    assert isinstance(failure, Failure)
    text = failure.getTraceback()
    assert "in boom" in text and "KeyError: 'k'" in text


def test_an_errback_that_re_raises_or_returns_a_failure_keeps_the_chain_failing():
    d = defer.fail(ValueError("x"))
    d.addErrback(lambda f: f)  # returning the failure
    d.addErrback(lambda f: f.trap(KeyError))  # trap re-raises a non-matching error
    failure = outcome(d)
    assert failure.check(ValueError) and failure.getErrorMessage() == "x"


def test_addCallbacks_and_addBoth_pick_by_result_kind():
    seen = []
    d = Deferred()
    d.addCallbacks(lambda r, a: seen.append(("cb", r, a)), lambda f, b: seen.append(("eb", b)),
                   callbackArgs=(1,), errbackArgs=(2,))
    d.addBoth(lambda r: seen.append(("both", r)))
    d.callback("v")
    assert seen == [("cb", "v", 1), ("both", None)]


def test_a_callback_returning_a_deferred_pauses_the_chain_until_it_fires():
    inner = Deferred()
    outer = Deferred()
    seen = []
    outer.addCallback(lambda r: inner).addCallback(seen.append)
    outer.callback("first")
    assert seen == [] and "waiting on Deferred" in repr(outer)
    inner.callback("from inner")
    assert seen == ["from inner"]
    assert inner.result is None  # the outer chain took it, as in Twisted


def test_a_returned_deferred_that_fails_sends_the_failure_down_the_outer_chain():
    inner = Deferred()
    outer = Deferred().addCallback(lambda r: inner)
    outer.callback(None)
    inner.errback(RuntimeError("inner failed"))
    assert outcome(outer).check(RuntimeError)


def test_a_returned_deferred_already_fired_is_used_at_once():
    outer = Deferred().addCallback(lambda r: defer.succeed(r * 2))
    outer.callback(21)
    assert outer.result == 42


def test_very_long_chains_do_not_hit_the_recursion_limit():
    count = sys.getrecursionlimit() * 5
    d = defer.succeed(0)
    for _ in range(count):
        d.addCallback(lambda r: r + 1)
    assert d.result == count
    # Deferreds each waiting on the next, fired from the innermost.
    ds = [Deferred() for _ in range(count)]
    for current, following in zip(ds, ds[1:]):
        current.addCallback(lambda _, following=following: following)
    for current in ds[:-1]:
        current.callback(None)
    ds[-1].callback("end")
    assert ds[0].result == "end"


def test_a_callback_may_add_callbacks_to_its_own_deferred():
    d = Deferred()
    seen = []

    def first(r):
        d.addCallback(lambda r2: seen.append(("added", r2)))
        return "from first"

    d.addCallback(first)
    d.callback(0)
    assert seen == [("added", "from first")]


def test_a_callback_returning_its_own_deferred_is_warned_about_and_stops_the_chain():
    d = Deferred()
    d.addCallback(lambda r: d)
    with pytest.warns(DeprecationWarning, match="returned the Deferred it was attached to"):
        d.callback(1)
    seen = []
    d.addBoth(seen.append)
    assert seen == []  # it waits on itself, as in Twisted


def test_chainDeferred_fires_the_other_with_the_same_result():
    a, b = Deferred(), Deferred()
    a.chainDeferred(b)
    a.callback(5)
    assert b.result == 5


def test_a_deferred_cannot_be_fired_with_a_deferred():
    with pytest.raises(AssertionError):
        Deferred().callback(Deferred())


# -- pausing ------------------------------------------------------------------------------

def test_pause_holds_the_callbacks_until_unpause():
    d = Deferred()
    seen = []
    d.pause()
    d.addCallback(seen.append)
    d.callback(1)
    assert seen == []
    d.pause()
    d.unpause()
    assert seen == []  # still paused once
    d.unpause()
    assert seen == [1]


# -- firing twice ---------------------------------------------------------------------------

@pytest.mark.parametrize("first, second", [("callback", "callback"), ("callback", "errback"),
                                            ("errback", "callback"), ("errback", "errback")])
def test_firing_twice_raises_AlreadyCalledError(first, second):
    d = Deferred()
    d.addErrback(lambda f: None)
    getattr(d, first)(ValueError("1") if first == "errback" else 1)
    with pytest.raises(defer.AlreadyCalledError):
        getattr(d, second)(ValueError("2") if second == "errback" else 2)


def make_deferred_here():
    return Deferred()


def fire_first_here(d):
    d.callback("one")


def fire_again_here(d):
    d.callback("two")


def test_with_debugging_AlreadyCalledError_names_where_it_was_created_and_first_fired():
    was = defer.getDebugging()
    defer.setDebugging(True)
    try:
        d = make_deferred_here()
        fire_first_here(d)
        with pytest.raises(defer.AlreadyCalledError) as info:
            fire_again_here(d)
    finally:
        defer.setDebugging(was)
    lines = str(info.value).split("\n")
    created = [line for line in lines if line.startswith(" C:") and line.endswith(" make_deferred_here")]
    invoked = [line for line in lines if line.startswith(" I:") and line.endswith(" fire_first_here")]
    assert len(created) == 1 and len(invoked) == 1
    assert not any(line.endswith(" fire_again_here") for line in lines)


def test_without_debugging_AlreadyCalledError_has_no_stacks():
    d = defer.succeed(1)
    with pytest.raises(defer.AlreadyCalledError) as info:
        d.callback(2)
    assert " C:" not in str(info.value)


# -- unhandled errors ------------------------------------------------------------------------

def unhandled_errors(caplog):
    return [r for r in caplog.records if "Unhandled error in Deferred" in r.getMessage()]


def raise_in_callback(result):
    raise ZeroDivisionError("in the callback")


def test_an_unhandled_failure_is_logged_once_with_its_traceback_when_collected(caplog):
    caplog.set_level(logging.ERROR)
    d = Deferred().addCallback(raise_in_callback)
    d.callback(None)
    assert unhandled_errors(caplog) == []  # not while the Deferred lives
    del d
    gc.collect()
    records = unhandled_errors(caplog)
    assert len(records) == 1
    text = caplog.text
    assert "Traceback (most recent call last)" in text and "in raise_in_callback" in text
    assert "ZeroDivisionError: in the callback" in text
    gc.collect()
    assert len(unhandled_errors(caplog)) == 1  # once


def test_a_failure_handled_later_is_not_logged(caplog):
    caplog.set_level(logging.ERROR)
    d = defer.fail(ValueError("handled"))
    d.addErrback(lambda f: None)
    del d
    gc.collect()
    assert unhandled_errors(caplog) == []


def test_a_failure_passed_into_a_waiting_deferred_is_logged_once_by_the_last_one(caplog):
    caplog.set_level(logging.ERROR)
    inner = Deferred()
    outer = Deferred().addCallback(lambda r: inner)
    outer.callback(None)
    inner.errback(ValueError("passed on"))
    del inner, outer
    gc.collect()
    assert len(unhandled_errors(caplog)) == 1


# -- cancellation ----------------------------------------------------------------------------

def test_cancel_without_canceller_fails_with_CancelledError_and_ignores_a_later_result():
    d = Deferred()
    d.cancel()
    assert outcome(d).check(defer.CancelledError)
    d.callback("late")  # the work finishing after all: swallowed once
    with pytest.raises(defer.AlreadyCalledError):
        d.callback("again")


def test_a_canceller_that_fires_the_deferred_decides_its_result():
    d = Deferred(lambda d: d.callback("cancelled nicely"))
    d.cancel()
    assert d.result == "cancelled nicely"


def test_a_canceller_that_does_not_fire_it_leaves_CancelledError():
    called = []
    d = Deferred(called.append)
    d.cancel()
    assert called == [d] and outcome(d).check(defer.CancelledError)
    with pytest.raises(defer.AlreadyCalledError):
        d.callback("late")


def test_cancelling_a_fired_deferred_does_nothing_but_one_waiting_cancels_what_it_waits_on():
    d = defer.succeed(1)
    d.cancel()
    assert d.result == 1
    inner = Deferred()
    outer = Deferred().addCallback(lambda r: inner)
    outer.callback(None)
    outer.cancel()
    assert outcome(outer).check(defer.CancelledError)


# -- succeed, fail, maybeDeferred ----------------------------------------------------------------

def test_succeed_and_fail():
    assert defer.succeed(3).result == 3
    assert outcome(defer.fail(KeyError("k"))).check(KeyError)
    try:
        raise IndexError("current")
    except IndexError:
        d = defer.fail()
    assert outcome(d).check(IndexError)


def test_maybeDeferred_wraps_values_exceptions_failures_deferreds_and_coroutines():
    assert defer.maybeDeferred(lambda x: x + 1, 1).result == 2
    assert outcome(defer.maybeDeferred(lambda: 1 / 0)).check(ZeroDivisionError)
    assert outcome(defer.maybeDeferred(lambda: Failure(KeyError()))).check(KeyError)
    d = Deferred()
    assert defer.maybeDeferred(lambda: d) is d

    async def coro():
        return "from a coroutine"

    assert defer.maybeDeferred(coro).result == "from a coroutine"


# -- Failure --------------------------------------------------------------------------------------

def test_failure_api():
    try:
        raise ValueError("why")
    except ValueError:
        f = Failure()
    assert f.type is ValueError and str(f.value) == "why" and f.getErrorMessage() == "why"
    assert f.check(KeyError, ValueError) is ValueError and f.check(KeyError) is None
    assert f.check("builtins.ValueError") == "builtins.ValueError"
    assert f.trap(ValueError) is ValueError
    with pytest.raises(ValueError):
        f.trap(KeyError)
    with pytest.raises(ValueError) as info:
        f.raiseException()
    assert info.value is f.value
    assert "in test_failure_api" in f.getTraceback()
    assert f.getTraceback(detail="brief").strip() == "ValueError: why"
    f.cleanFailure()
    assert "in test_failure_api" in f.getTraceback()
    with pytest.raises(ValueError):
        Failure(None, None)  # no exception being handled


# -- await ----------------------------------------------------------------------------------------

@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """Run a coroutine to completion on asyncio's loop or on uvloop's."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return lambda coro: uvloop.run(coro) if hasattr(uvloop, "run") else _run_uvloop(uvloop, coro)
    return asyncio.run


def _run_uvloop(uvloop, coro):
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_await_a_deferred_that_fires_later(run):
    async def main():
        d = Deferred()
        asyncio.get_running_loop().call_soon(d.callback, "later")
        return await d

    assert run(main()) == "later"


def test_await_a_deferred_that_fails_later_raises_its_exception(run):
    async def main():
        d = Deferred()
        asyncio.get_running_loop().call_soon(d.errback, KeyError("gone"))
        with pytest.raises(KeyError, match="gone"):
            await d
        return "ok"

    assert run(main()) == "ok"


def test_await_a_deferred_that_already_failed_raises_and_is_not_logged_as_unhandled(run, caplog):
    caplog.set_level(logging.ERROR)

    async def main():
        d = Deferred().addCallback(raise_in_callback)
        d.callback(None)
        with pytest.raises(ZeroDivisionError) as info:
            await d
        return info.value

    error = run(main())
    assert "in raise_in_callback" in "".join(traceback.format_tb(error.__traceback__))
    gc.collect()
    assert unhandled_errors(caplog) == []


def test_cancelling_the_awaiting_task_cancels_the_deferred(run):
    cancelled = []

    async def main():
        d = Deferred(cancelled.append)
        task = asyncio.ensure_future(_await(d))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return d

    d = run(main())
    assert cancelled == [d] and d.called  # failed with CancelledError, which the awaiting future took


async def _await(d):
    return await d


def test_asFuture_and_fromFuture(run):
    async def main():
        loop = asyncio.get_running_loop()
        d = Deferred()
        future = d.asFuture(loop)
        d.callback(5)
        assert await future == 5
        future = loop.create_future()
        d = Deferred.fromFuture(future)
        future.set_result("f")
        await asyncio.sleep(0)
        assert d.result == "f"
        future = loop.create_future()
        d = Deferred.fromFuture(future)
        d.cancel()
        assert future.cancelled()
        failure = outcome(d)  # at once
        assert failure.check(asyncio.CancelledError) and failure.check(defer.CancelledError)
        future = loop.create_future()
        d = Deferred.fromFuture(future)
        future.cancel()
        await asyncio.sleep(0)
        failure = outcome(d)
        assert failure.check(asyncio.CancelledError) and failure.check(defer.CancelledError)
        return "ok"

    assert run(main()) == "ok"


# -- ensureDeferred ----------------------------------------------------------------------------------

def test_ensureDeferred_without_a_loop_runs_the_coroutine_as_its_deferreds_fire():
    gate = Deferred()

    async def work(x):
        a = await defer.succeed(x)
        b = await gate
        return a + b

    d = defer.ensureDeferred(work(1))
    assert not d.called
    gate.callback(2)
    assert d.result == 3
    assert defer.ensureDeferred(d) is d
    with pytest.raises(defer.NotACoroutineError):
        defer.ensureDeferred("not a coroutine")


def test_ensureDeferred_without_a_loop_carries_exceptions_both_ways():
    gate = Deferred()

    async def work():
        try:
            await gate
        except KeyError:
            raise RuntimeError("turned into")

    d = defer.ensureDeferred(work())
    gate.errback(KeyError())
    assert outcome(d).check(RuntimeError)


def test_cancelling_ensureDeferred_cancels_what_the_coroutine_awaits():
    gate = Deferred()

    async def work():
        try:
            await gate
        except defer.CancelledError:
            return "saw the cancel"

    d = defer.ensureDeferred(work())
    d.cancel()
    assert d.result == "saw the cancel"


def test_ensureDeferred_on_a_running_loop_runs_a_task_that_can_use_asyncio(run):
    async def work():
        await asyncio.sleep(0)
        value = await defer.succeed(2)
        await asyncio.wait_for(asyncio.sleep(0), 1)  # needs a current task
        return value * 21

    async def main():
        return await defer.ensureDeferred(work())

    assert run(main()) == 42


def test_cancelling_ensureDeferred_on_a_loop_cancels_the_task(run):
    async def main():
        started = asyncio.Event()

        async def work():
            started.set()
            await asyncio.sleep(60)

        d = defer.ensureDeferred(work())
        await started.wait()
        d.cancel()
        with pytest.raises(defer.CancelledError):
            await d
        return "ok"

    assert run(main()) == "ok"


# -- inlineCallbacks ----------------------------------------------------------------------------------

def test_inlineCallbacks_with_returnValue_and_plain_return():
    gate = Deferred()

    @defer.inlineCallbacks
    def old_style():
        x = yield defer.succeed(1)
        y = yield gate
        z = yield "not a deferred"
        defer.returnValue((x, y, z))

    @defer.inlineCallbacks
    def new_style():
        value = yield old_style()
        return value

    d = new_style()
    assert not d.called
    with pytest.warns(DeprecationWarning, match="returnValue is deprecated"):  # as in Twisted 24.7+
        gate.callback(2)
    assert d.result == (1, 2, "not a deferred")


def test_inlineCallbacks_failures_are_raised_into_the_generator_and_out_of_it():
    @defer.inlineCallbacks
    def work():
        try:
            yield defer.fail(KeyError("k"))
        except KeyError:
            pass
        yield defer.succeed(None)
        raise ValueError("out")

    assert outcome(work()).check(ValueError)


def test_an_error_after_an_inner_inlineCallbacks_returned_does_not_show_its_StopIteration():
    import traceback as tb_module

    gate = Deferred()

    @defer.inlineCallbacks
    def inner():
        yield gate
        return 1

    @defer.inlineCallbacks
    def outer():
        try:
            yield inner()
            raise KeyError("after")
        except KeyError:
            return tb_module.format_exc()

    d = outer()
    gate.callback(None)
    assert "StopIteration" not in d.result and "During handling" not in d.result


def returns_for_the_caller():
    defer.returnValue("from a helper")


def test_returnValue_called_outside_the_generator_works_but_is_warned_about():
    @defer.inlineCallbacks
    def work():
        yield defer.succeed(None)
        returns_for_the_caller()
        return "not reached"

    with pytest.warns(DeprecationWarning) as caught:
        d = work()
    assert d.result == "from a helper"
    messages = [str(w.message) for w in caught if "was called in" in str(w.message)]
    assert messages and "'returns_for_the_caller'" in messages[0] and "'work'" in messages[0]
    assert [w.filename for w in caught if "was called in" in str(w.message)] == [__file__]


def test_inlineCallbacks_needs_a_generator_function():
    @defer.inlineCallbacks
    def not_a_generator():
        return 1

    with pytest.raises(TypeError):
        not_a_generator()


def test_inlineCallbacks_many_synchronous_yields_do_not_recurse():
    @defer.inlineCallbacks
    def work():
        total = 0
        for _ in range(sys.getrecursionlimit() * 3):
            total += yield defer.succeed(1)
        return total

    assert work().result == sys.getrecursionlimit() * 3


def test_cancelling_inlineCallbacks_cancels_the_awaited_deferred_and_the_generator_decides():
    awaited = Deferred()

    @defer.inlineCallbacks
    def work():
        try:
            yield awaited
        except defer.CancelledError:
            value = yield defer.succeed("cleaned up")
            return value

    d = work()
    d.cancel()
    assert d.result == "cleaned up"
    assert awaited.called and awaited.result is None  # its CancelledError went into the generator


def test_cancelling_inlineCallbacks_that_ignores_it_fails_with_CancelledError():
    @defer.inlineCallbacks
    def work():
        yield Deferred()

    d = work()
    d.cancel()
    assert outcome(d).check(defer.CancelledError)


def test_inlineCallbacks_awaited_on_a_loop(run):
    @defer.inlineCallbacks
    def work():
        value = yield defer.succeed(20)
        slept = yield asyncio.sleep(0, result=1)  # an asyncio coroutine is run as a task
        return value + slept

    async def main():
        return await work()

    assert run(main()) == 21


# -- what Twisted code may also touch -----------------------------------------------------------------

def test_code_written_for_twisted_may_set_its_own_attributes_on_a_deferred():
    d = Deferred()
    d.request = "kept"
    assert d.request == "kept"


def test_the_callbacks_attribute_and_timeout_function_are_deprecated_as_in_twisted():
    d = Deferred()
    with pytest.warns(DeprecationWarning, match="callbacks"):
        assert d.callbacks == []
    with pytest.warns(DeprecationWarning, match="addTimeout"):
        defer.timeout(d)
    assert outcome(d).check(defer.TimeoutError)


def test_debugging_can_be_switched_on_the_class_or_one_deferred():
    was = defer.getDebugging()
    try:
        Deferred.debug = True
        assert defer.getDebugging() and Deferred.debug and Deferred().debug
        defer.setDebugging(False)
        assert not Deferred.debug and not Deferred().debug
        d = Deferred()
        d.debug = True
        d.callback(1)
        with pytest.raises(defer.AlreadyCalledError, match=" I: First Invoker was"):
            d.callback(2)
    finally:
        defer.setDebugging(was)


def test_a_failure_captures_variables_only_when_asked():
    def fails():
        secret = "local value"  # noqa: F841
        raise ValueError()

    try:
        fails()
    except ValueError:
        plain, captured = Failure(), Failure(captureVars=True)
    assert plain.frames[-1][0] == "fails" and plain.frames[-1][3:] == [(), ()]
    assert ("secret", "'local value'") in captured.frames[-1][3]
    captured.cleanFailure()
    assert ("secret", "'local value'") in captured.frames[-1][3]  # taken when made


def test_an_unraised_exception_has_a_traceback_saying_so():
    assert Failure(KeyError("k")).getTraceback() == "Traceback (failure with no frames): KeyError: 'k'\n"
