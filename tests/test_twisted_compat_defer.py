"""Twisted's own tests of Deferreds (``twisted/test/test_defer.py``), run against twistdlite.defer.

The test module is read from the installed Twisted at run time (never copied here) with its
imports pointed at twistdlite (see tests/twisted_compat.py). Every test left out is listed in
:data:`EXCLUDED` with the reason.
"""

from __future__ import annotations

import pytest

from twisted_compat import compat_classes, load_twisted_module, twisted_missing

pytestmark = pytest.mark.skipif(twisted_missing(), reason="Twisted is not installed (the 'bench' or 'test' extra)")

CLASSES = [
    "UtilTests", "DeferredTests", "RaceTests", "FirstErrorTests", "AlreadyCalledTests",
    "DeferredCancellerTests", "LogTests", "DeferredListEmptyTests", "OtherPrimitivesTests",
    "DeferredAddTimeoutTests", "EnsureDeferredTests", "TimeoutErrorTests",
    "DeferredFutureAdapterTests", "CoroutineContextVarsTests", "InlineCallbackTests",
]

#: Test classes of the module not run, with why.
LEFT_OUT_CLASSES = {
    "DeferredFilesystemLockTests": "DeferredFilesystemLock is built on twisted.python.lockfile, which "
                                   "twistdlite does not port (it uses the lockfile package for its pidfile)",
}

_TWISTED_MESSAGE = ("asserts the text of Twisted's own deprecation warning (naming twisted.internet.defer and a "
                    "Twisted version); twistdlite warns about the same thing in its own words (tests/test_defer.py)")
_LOG_TEXT = ("twistdlite.log.textFromEventDict gives only the 'why' line of an event logged by log.err, not "
             "'Unhandled Error' and the traceback as Twisted's does (twistdlite.log is the porting half's module)")

#: "Class.test_method": why it is left out.
EXCLUDED = {
    "DeferredTests.test_DEFERRED_SUBCLASSES": "tests the private defer._DEFERRED_SUBCLASSES registry",
    "DeferredTests.test_callbacksAttributeDeprecated": _TWISTED_MESSAGE,
    "TimeoutErrorTests.test_deprecatedTimeout": _TWISTED_MESSAGE,
    "UtilTests.test_logErrorLogsErrorNoRepr": _LOG_TEXT,
    "LogTests.test_errorLogNoRepr": _LOG_TEXT,
}

if not twisted_missing():
    _module = load_twisted_module("twisted.test.test_defer")
    globals().update(compat_classes(_module, CLASSES, EXCLUDED))


def test_every_test_class_is_run_or_left_out_with_a_reason():
    """A test class Twisted adds shows up here instead of being silently not run."""
    import unittest

    found = {name for name, value in vars(_module).items()
             if isinstance(value, type) and issubclass(value, unittest.TestCase)
             and value.__module__ == _module.__name__ and any(a.startswith("test") for a in dir(value))}
    assert found == set(CLASSES) | set(LEFT_OUT_CLASSES)


def test_the_loaded_tests_use_twistdlite_not_twisted():
    """The imports of Twisted's test module name twistdlite's Deferred, Failure, Clock and the trial-alike."""
    import twisted_compat
    from twistdlite import defer, failure, task

    assert _module.Deferred is defer.Deferred and _module.defer is defer
    assert _module.Failure is failure.Failure
    assert _module.Clock is task.Clock
    assert _module.unittest is twisted_compat
