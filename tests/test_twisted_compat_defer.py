"""Twisted's own tests of Deferreds, run against twistdlite.defer.

``twisted/test/test_defer.py`` (Deferred, DeferredList, cancellation, timeouts, logging of
unhandled errors, locks, semaphores, queues, coroutines, futures) and its friends
``twisted/internet/test/test_inlinecb.py``, ``test_defer_await.py`` and
``test_defer_yieldfrom.py`` are read from the installed Twisted at run time (never copied
here), with their imports pointed at twistdlite (see tests/twisted_compat.py). Every test
class is either run or in :data:`LEFT_OUT_CLASSES`, and every test left out of a class that
runs is in :data:`EXCLUDED`, each with the reason.
"""

from __future__ import annotations

import pytest

from twisted_compat import case_classes, compat_classes, load_twisted_module, twisted_missing

pytestmark = pytest.mark.skipif(twisted_missing(), reason="Twisted is not installed (the 'test' extra on Python 3.10+)")

#: Twisted's test modules -> the test classes of each that are run.
MODULES = {
    "twisted.test.test_defer": [
        "UtilTests", "DeferredTests", "RaceTests", "FirstErrorTests", "AlreadyCalledTests",
        "DeferredCancellerTests", "LogTests", "DeferredListEmptyTests", "OtherPrimitivesTests",
        "DeferredAddTimeoutTests", "EnsureDeferredTests", "TimeoutErrorTests",
        "DeferredFutureAdapterTests", "CoroutineContextVarsTests", "InlineCallbackTests",
    ],
    "twisted.internet.test.test_inlinecb": [
        "BasicTests", "StopIterationReturnTests", "StackedInlineCallbacksTests", "NonLocalExitTests",
        "ForwardTraceBackTests", "CancellationTests",
    ],
    "twisted.internet.test.test_defer_await": ["AwaitTests"],
    "twisted.internet.test.test_defer_yieldfrom": ["YieldFromTests"],
}

#: Test classes not run at all, with why.
LEFT_OUT_CLASSES = {
    "DeferredFilesystemLockTests": "DeferredFilesystemLock is built on twisted.python.lockfile, which "
                                   "twistdlite does not port (it uses the lockfile package for its pidfile)",
}

_TWISTED_MESSAGE = ("asserts the text of Twisted's own deprecation warning (naming twisted.internet.defer and a "
                    "Twisted version); twistdlite deprecates the same thing in its own words (tests/test_defer.py)")

_NON_LOCAL = ("asserts the texts of Twisted's two warnings (returnValue deprecated; returnValue called outside the "
              "generator); twistdlite gives both, of the same category at the same place, in its own words "
              "(tests/test_defer.py)")


def _has_deferLater() -> bool:
    import twistdlite.task

    return hasattr(twistdlite.task, "deferLater")


#: "Class.test_method": why it is left out.
EXCLUDED = {
    "DeferredTests.test_DEFERRED_SUBCLASSES": "tests the private defer._DEFERRED_SUBCLASSES registry",
    "DeferredTests.test_callbacksAttributeDeprecated": _TWISTED_MESSAGE,
    "TimeoutErrorTests.test_deprecatedTimeout": _TWISTED_MESSAGE,
    "BasicTests.testReturnValueDeprecated": _TWISTED_MESSAGE,
    "BasicTests.test_internalDefGenReturnValueDoesntLeak": _TWISTED_MESSAGE,
    "NonLocalExitTests.test_returnValueNonLocalWarning": _NON_LOCAL,
    "NonLocalExitTests.test_returnValueNonLocalDeferred": _NON_LOCAL,
}
if not twisted_missing() and not _has_deferLater():
    EXCLUDED["BasicTests.test_internalStopIterationDoesntLeak"] = (
        "needs twistdlite.task.deferLater (the porting half's, not on main yet)")

_loaded = {}
if not twisted_missing():
    for _name, _classes in MODULES.items():
        _loaded[_name] = _module = load_twisted_module(_name)
        _excluded = {key: why for key, why in EXCLUDED.items() if key.split(".")[0] in _classes}
        globals().update(compat_classes(_module, _classes, _excluded))


def test_every_test_class_is_run_or_left_out_with_a_reason():
    """A test class Twisted adds shows up here instead of being silently not run."""
    for name, module in _loaded.items():
        found = case_classes(module)
        assert found - set(LEFT_OUT_CLASSES) == set(MODULES[name]), name
    every = [c for classes in MODULES.values() for c in classes]
    assert len(every) == len(set(every)), "class names must be unique across the modules"
    assert all(key.split(".")[0] in every for key in EXCLUDED)


def test_the_loaded_tests_use_twistdlite_not_twisted():
    """The imports of Twisted's test modules name twistdlite's Deferred, Failure, Clock and the trial-alike."""
    import twisted_compat
    from twistdlite import defer, failure, task

    module = _loaded["twisted.test.test_defer"]
    assert module.Deferred is defer.Deferred and module.defer is defer
    assert module.Failure is failure.Failure
    assert module.Clock is task.Clock
    assert module.unittest is twisted_compat
    assert _loaded["twisted.internet.test.test_inlinecb"].inlineCallbacks is defer.inlineCallbacks
