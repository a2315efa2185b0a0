"""Run Twisted's own tests against twistdlite, as a compatibility check.

Nothing of Twisted is copied here: :func:`load_twisted_module` reads a test module's source
from the *installed* Twisted at run time, rewrites its imports so that the Twisted modules
under test name twistdlite's (``twisted.internet.defer`` -> ``twistdlite.defer``, ...), and
runs it as a fresh module. :func:`compat_classes` then hands chosen test classes to pytest,
each test left out replaced by a skip that says why.

Twisted's test cases are written for ``twisted.trial``; its imports are pointed at the small
trial-alike in this module (:class:`SynchronousTestCase`, :class:`TestCase`), built on the
standard ``unittest`` and on twistdlite's Deferreds, so the checks run on twistdlite's
``Failure`` and ``Deferred`` and never on Twisted's. The ``hamcrest`` and ``hypothesis``
helpers some of those tests use are replaced by tiny stand-ins (``given`` tries every value
of small integer ranges), so only Twisted itself needs to be installed.

Use from a test module::

    from twisted_compat import compat_classes, load_twisted_module, twisted_missing

    pytestmark = pytest.mark.skipif(twisted_missing(), reason="Twisted is not installed")
    EXCLUDED = {"DeferredTests.test_x": "why it is left out"}
    if not twisted_missing():
        module = load_twisted_module("twisted.test.test_defer")
        globals().update(compat_classes(module, ["DeferredTests"], EXCLUDED))
"""

from __future__ import annotations

import ast
import asyncio
import dis
import gc
import importlib
import importlib.util
import inspect
import itertools
import logging
import os
import sys
import tempfile
import types
import unittest as pyunit
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

__all__ = [
    "DEFAULT_MODULE_MAP", "FailTest", "case_classes", "Missing", "SkipTest", "SynchronousTestCase", "TestCase",
    "compat_classes", "load_twisted_module", "twisted_missing",
]


def twisted_missing() -> bool:
    """True when Twisted is not importable (the compatibility checks then skip)."""
    return importlib.util.find_spec("twisted") is None


# -- stand-ins for test helpers Twisted's tests use ---------------------------------------------

def _make_hamcrest() -> types.ModuleType:
    """The few PyHamcrest matchers Twisted's tests use (``assert_that``, ``equal_to``, ``empty``...)."""
    module = types.ModuleType("twisted_compat_hamcrest")

    class Matcher:
        def __init__(self, test: Callable[[Any], bool], description: str) -> None:
            self.test = test
            self.description = description

    def assert_that(actual: Any, matcher: Any = None, reason: str = "") -> None:
        if isinstance(matcher, Matcher):
            if not matcher.test(actual):
                raise AssertionError(f"{reason}\nExpected: {matcher.description}\n     but: was {actual!r}")
        elif isinstance(actual, bool) and not isinstance(matcher, Matcher):
            if not actual:
                raise AssertionError(matcher or reason)
        else:
            raise TypeError(f"assert_that needs a matcher, not {matcher!r}")

    def equal_to(expected: Any) -> Matcher:
        return Matcher(lambda actual: actual == expected, repr(expected))

    def is_(expected: Any) -> Matcher:
        if isinstance(expected, Matcher):
            return expected
        return Matcher(lambda actual: actual is expected, f"is {expected!r}")

    def empty() -> Matcher:
        return Matcher(lambda actual: len(actual) == 0, "an empty collection")

    def has_length(n: int) -> Matcher:
        return Matcher(lambda actual: len(actual) == n, f"a collection of length {n}")

    def contains_string(s: str) -> Matcher:
        return Matcher(lambda actual: s in actual, f"a string containing {s!r}")

    def instance_of(cls: type) -> Matcher:
        return Matcher(lambda actual: isinstance(actual, cls), f"an instance of {cls!r}")

    for name, value in list(locals().items()):
        if callable(value):
            setattr(module, name, value)
    return module


class _Strategy:
    """A stand-in for a hypothesis strategy: a short list of values tried in turn."""

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = list(values)


def _make_hypothesis() -> types.ModuleType:
    """``hypothesis.given`` and ``strategies.integers`` for small ranges, tried exhaustively."""
    module = types.ModuleType("twisted_compat_hypothesis")
    strategies = types.ModuleType("twisted_compat_hypothesis.strategies")

    def integers(min_value: int = 0, max_value: Optional[int] = None) -> _Strategy:
        if max_value is None:
            max_value = min_value + 5
        return _Strategy(range(min_value, max_value + 1))

    def booleans() -> _Strategy:
        return _Strategy([False, True])

    def sampled_from(values: Iterable[Any]) -> _Strategy:
        return _Strategy(values)

    def given(*args: _Strategy, **kwargs: _Strategy) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            def run_all(self: Any) -> None:
                names = list(kwargs)
                pools = [s.values for s in args] + [kwargs[n].values for n in names]
                for combination in itertools.product(*pools):
                    positional = combination[:len(args)]
                    keywords = dict(zip(names, combination[len(args):]))
                    f(self, *positional, **keywords)

            run_all.__name__ = f.__name__
            run_all.__doc__ = f.__doc__
            return run_all

        return decorate

    def settings(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return lambda f: f

    strategies.integers = integers  # type: ignore[attr-defined]
    strategies.booleans = booleans  # type: ignore[attr-defined]
    strategies.sampled_from = sampled_from  # type: ignore[attr-defined]
    module.given = given  # type: ignore[attr-defined]
    module.settings = settings  # type: ignore[attr-defined]
    module.strategies = strategies  # type: ignore[attr-defined]
    return module


_HAMCREST = _make_hamcrest()
_HYPOTHESIS = _make_hypothesis()

#: Where a Twisted test module's imports are pointed (a module name, or a module object).
DEFAULT_MODULE_MAP: Dict[str, Union[str, types.ModuleType]] = {
    "twisted.internet.defer": "twistdlite.defer",
    "twisted.python.failure": "twistdlite.failure",
    "twisted.internet.task": "twistdlite.task",
    "twisted.internet.reactor": "twistdlite.reactor",
    "twisted.internet.protocol": "twistdlite.protocol",
    "twisted.internet.error": "twistdlite.error",
    "twisted.internet.threads": "twistdlite.threads",
    "twisted.internet.endpoints": "twistdlite.endpoints",
    "twisted.application.service": "twistdlite.service",
    "twisted.application.internet": "twistdlite.internet",
    "twisted.protocols.basic": "twistdlite.basic",
    "twisted.python.log": "twistdlite.log",
    "twisted.logger": "twistdlite.logger",
    "twisted.trial.unittest": "twisted_compat",
    "hamcrest": _HAMCREST,
    "hypothesis": _HYPOTHESIS,
    "hypothesis.strategies": _HYPOTHESIS.strategies,  # type: ignore[attr-defined]
}


class Missing:
    """Stands for a name twistdlite does not have, so the test module still loads.

    Using it (calling it, or an attribute of it) raises :class:`MissingName`; the tests
    that need it fail, and are listed as left out with the reason.
    """

    def __init__(self, qualname: str) -> None:
        self._qualname = qualname

    def _missing(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingName(f"twistdlite has no {self._qualname}")

    __call__ = _missing

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingName(f"twistdlite has no {self._qualname}.{name}")

    def __getitem__(self, item: Any) -> "Missing":  # Missing[T] in module-level type aliases
        return self

    def __or__(self, other: Any) -> "Missing":
        return self

    __ror__ = __or__

    def __repr__(self) -> str:
        return f"<missing {self._qualname}>"


class MissingName(AttributeError):
    """A test used a name twistdlite does not have."""


def _import_target(target: Union[str, types.ModuleType]) -> Optional[types.ModuleType]:
    if isinstance(target, types.ModuleType):
        return target
    try:
        return importlib.import_module(target)
    except ImportError:
        return None


def _compat_from(module_map: Mapping[str, Any], module: str, names: tuple) -> tuple:
    """The values ``from module import *names`` gives once mapped (placeholders for missing ones)."""
    values = []
    for name in names:
        full = f"{module}.{name}"
        if full in module_map:
            target = _import_target(module_map[full])
            values.append(target if target is not None else Missing(str(module_map[full])))
            continue
        if module in module_map:
            source = _import_target(module_map[module])
            label = module_map[module] if isinstance(module_map[module], str) else module
        else:
            source = importlib.import_module(module)
            label = module
        if source is None:
            values.append(Missing(f"{label}.{name}"))
        elif hasattr(source, name):
            values.append(getattr(source, name))
        else:
            try:
                values.append(importlib.import_module(f"{source.__name__}.{name}"))
            except ImportError:
                values.append(Missing(f"{label}.{name}"))
    return tuple(values)


class _RewriteImports(ast.NodeTransformer):
    """Turns ``from X import a, b as c`` into ``a, c = __compat_from__("X", ("a", "b"))``."""

    def __init__(self, package: str) -> None:
        self.package = package

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        module = node.module or ""
        if node.level:
            base = self.package.rsplit(".", node.level - 1)[0] if node.level > 1 else self.package
            module = f"{base}.{module}" if module else base
        if any(alias.name == "*" for alias in node.names) or module == "__future__":
            return node
        targets = [ast.Name(id=alias.asname or alias.name, ctx=ast.Store()) for alias in node.names]
        call = ast.Call(func=ast.Name(id="__compat_from__", ctx=ast.Load()),
                        args=[ast.Constant(module), ast.Constant(tuple(a.name for a in node.names))],
                        keywords=[])
        assign = ast.Assign(targets=[ast.Tuple(elts=targets, ctx=ast.Store())], value=call)
        return ast.copy_location(assign, node)

    def visit_Import(self, node: ast.Import) -> Any:
        return node


def load_twisted_module(name: str, module_map: Optional[Mapping[str, Any]] = None) -> types.ModuleType:
    """Load the installed Twisted module ``name`` (a test module) with its imports pointed at twistdlite.

    ``module_map`` maps Twisted module names (or ``module.name``) to twistdlite's module
    names or to module objects; :data:`DEFAULT_MODULE_MAP` by default. Names the target lacks
    become :class:`Missing` placeholders. Imports of modules not in the map are Twisted's own.
    """
    mapping = dict(DEFAULT_MODULE_MAP if module_map is None else module_map)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin is None:
        raise ImportError(f"no module {name}")
    with open(spec.origin, "rb") as handle:  # (pytest's import hook claims test_*.py modules)
        source = handle.read()
    package = name.rpartition(".")[0]
    tree = _RewriteImports(package).visit(ast.parse(source, spec.origin))
    ast.fix_missing_locations(tree)
    code = compile(tree, spec.origin, "exec", dont_inherit=True)
    module = types.ModuleType(f"twisted_compat_loaded.{name}")
    module.__file__ = spec.origin
    module.__package__ = package
    module.__dict__["__compat_from__"] = lambda m, names: _compat_from(mapping, m, names)
    sys.modules[module.__name__] = module
    exec(code, module.__dict__)
    return module


def case_classes(module: types.ModuleType) -> set:
    """The names of the test case classes ``module`` defines (those with test methods)."""
    return {name for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, pyunit.TestCase)
            and value.__module__ == module.__name__ and any(a.startswith("test") for a in dir(value))}


def compat_classes(module: types.ModuleType, names: Iterable[str], excluded: Mapping[str, str]) -> Dict[str, type]:
    """The test classes ``names`` of ``module``, for a pytest module's globals.

    ``excluded`` maps ``"Class.test_method"`` to why that test is left out; each becomes a
    skip with that reason. A name in ``excluded`` that is no test of those classes raises
    (so the list cannot rot).
    """
    names = list(names)
    found: Dict[str, type] = {}
    known = set()
    for class_name in names:
        cls = getattr(module, class_name)
        overrides: Dict[str, Any] = {}
        for attr in dir(cls):
            if attr.startswith("test"):
                known.add(f"{class_name}.{attr}")
                key = f"{class_name}.{attr}"
                if key in excluded:
                    overrides[attr] = _skipped(getattr(cls, attr), excluded[key])
        found[class_name] = type(class_name, (cls,), overrides) if overrides else cls
    stale = sorted(set(excluded) - known)
    if stale:
        raise ValueError(f"excluded tests that do not exist: {stale}")
    return found


def _skipped(method: Callable[..., Any], reason: str) -> Callable[..., Any]:
    @pyunit.skip(f"left out: {reason}")
    def skipped(self: Any) -> None:  # pragma: no cover - never runs
        method(self)

    skipped.__name__ = method.__name__
    return skipped


# -- a trial-alike on the standard unittest ---------------------------------------------------------

class FailTest(AssertionError):
    """A test assertion failed (trial's name)."""


SkipTest = pyunit.SkipTest


class _ErrorCatcher(logging.Handler):
    """Collects the errors logged with a failure or traceback while a test runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: List[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        from twistdlite.failure import Failure

        failure = getattr(record, "log_failure", None)
        if failure is None:  # logged through twistdlite.log.err
            failure = (getattr(record, "legacy_event", None) or {}).get("failure")
        if failure is None and record.exc_info and record.exc_info[1] is not None:
            failure = Failure(record.exc_info[1], record.exc_info[0], record.exc_info[2])
        if failure is not None:
            self.failures.append(failure)


def _code_lines(f: Any) -> range:
    code = getattr(f, "__code__", None) or getattr(getattr(f, "__func__", None), "__code__", None)
    if code is None:
        return range(0)
    lines = [line for _, line in dis.findlinestarts(code) if line is not None]
    return range(code.co_firstlineno, max(lines + [code.co_firstlineno]) + 1)


class SynchronousTestCase(pyunit.TestCase):
    """Trial's ``SynchronousTestCase`` API (the parts Twisted's tests use) on ``unittest.TestCase``.

    Errors logged while a test runs (an unhandled failure in a Deferred...) fail it unless the
    test takes them with :meth:`flushLoggedErrors`; warnings are recorded for
    :meth:`flushWarnings`. A ``skip`` attribute (on the class or a method) skips, as in trial.
    """

    failureException = FailTest

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        reason = cls.__dict__.get("skip")
        if isinstance(reason, str) and reason:
            cls.__unittest_skip__ = True  # type: ignore[attr-defined]
            cls.__unittest_skip_why__ = reason  # type: ignore[attr-defined]
        for name, value in list(cls.__dict__.items()):
            if name.startswith("test") and callable(value):
                why = getattr(value, "skip", None)
                if isinstance(why, str) and why:
                    setattr(cls, name, pyunit.skip(why)(value))

    # -- harness -----------------------------------------------------------------------------

    def _callSetUp(self) -> None:
        self._catcher = _ErrorCatcher()
        logger = logging.getLogger()
        logger.addHandler(self._catcher)
        self.addCleanup(self._reportLoggedErrors, logger)
        recorder = warnings.catch_warnings(record=True)
        self._warnings = recorder.__enter__()
        warnings.simplefilter("always")
        self.addCleanup(recorder.__exit__, None, None, None)
        self._resolve(self.setUp())

    def _callTestMethod(self, method: Callable[[], Any]) -> None:
        self._resolve(method())

    def _callTearDown(self) -> None:
        self._resolve(self.tearDown())

    def _resolve(self, result: Any) -> Any:
        """What a synchronous test returns is ignored."""
        return result

    def _reportLoggedErrors(self, logger: logging.Logger) -> None:
        gc.collect()  # unhandled failures in Deferreds are logged when collected
        logger.removeHandler(self._catcher)
        left = self._catcher.failures
        self._catcher.failures = []
        if left:
            raise FailTest("errors were logged and not flushed:\n" + "\n".join(f.getTraceback() for f in left))

    def flushLoggedErrors(self, *errorTypes: Any) -> List[Any]:
        """The failures logged so far during this test (those of ``errorTypes`` if given); they no longer fail it."""
        taken, kept = [], []
        for failure in self._catcher.failures:
            (taken if not errorTypes or failure.check(*errorTypes) else kept).append(failure)
        self._catcher.failures = kept
        return taken

    def flushWarnings(self, offendingFunctions: Optional[Iterable[Any]] = None) -> List[Dict[str, Any]]:
        """The warnings recorded so far (those whose reported place is in one of ``offendingFunctions``)."""
        taken, kept = [], []
        places = [( _code_file(f), _code_lines(f)) for f in offendingFunctions or ()]
        for w in self._warnings:
            if not places or any(w.filename == path and w.lineno in lines for path, lines in places):
                taken.append({"message": str(w.message), "category": w.category,
                              "filename": w.filename, "lineno": w.lineno})
            else:
                kept.append(w)
        self._warnings[:] = kept
        return taken

    # -- Deferred assertions -----------------------------------------------------------------------

    def _asDeferred(self, d: Any) -> Any:
        from twistdlite import defer

        return defer.ensureDeferred(d)

    def successResultOf(self, deferred: Any) -> Any:
        """The result the Deferred has now; fail if it has none or has a failure."""
        from twistdlite.failure import Failure

        deferred = self._asDeferred(deferred)
        results: List[Any] = []
        deferred.addBoth(results.append)
        if not results:
            self.fail(f"Success result expected on {deferred!r}, found no result instead")
        if isinstance(results[0], Failure):
            self.fail(f"Success result expected on {deferred!r}, found failure result instead:\n"
                      f"{results[0].getTraceback()}")
        return results[0]

    def failureResultOf(self, deferred: Any, *expectedExceptionTypes: Any) -> Any:
        """The Failure the Deferred has now (of one of ``expectedExceptionTypes`` if given); fail otherwise."""
        from twistdlite.failure import Failure

        deferred = self._asDeferred(deferred)
        results: List[Any] = []
        deferred.addBoth(results.append)
        if not results:
            self.fail(f"Failure result expected on {deferred!r}, found no result instead")
        result = results[0]
        if not isinstance(result, Failure):
            self.fail(f"Failure result expected on {deferred!r}, found success result ({result!r}) instead")
        if expectedExceptionTypes and not result.check(*expectedExceptionTypes):
            self.fail(f"Failure of type {expectedExceptionTypes} expected on {deferred!r}, "
                      f"found {result.type} instead:\n{result.getTraceback()}")
        return result

    def assertNoResult(self, deferred: Any) -> None:
        """Fail if the Deferred has a result now (it is left as it was)."""
        deferred = self._asDeferred(deferred)
        results: List[Any] = []

        def seen(result: Any) -> Any:
            results.append(result)
            return result

        deferred.addBoth(seen)
        if results:
            deferred.addErrback(lambda f: None)
            self.fail(f"No result expected on {deferred!r}, found {results[0]!r} instead")

    def assertFailure(self, deferred: Any, *expectedFailures: Any) -> Any:
        """The Deferred, made to fire with the exception if it fails with one of ``expectedFailures``."""
        deferred = self._asDeferred(deferred)

        def succeeded(result: Any) -> None:
            raise self.failureException(f"did not catch an error, instead got {result!r}")

        def failed(failure: Any) -> Any:
            if failure.check(*expectedFailures):
                return failure.value
            raise self.failureException(f"{failure.type} not expected ({expectedFailures})\n{failure.getTraceback()}")

        return deferred.addCallbacks(succeeded, failed)

    # -- trial's other assertions and helpers -------------------------------------------------------

    def assertRaises(self, exception: Any, f: Any = None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """As unittest's, but called with a callable it returns the exception raised."""
        if f is None:
            return super().assertRaises(exception)
        try:
            f(*args, **kwargs)
        except exception as e:
            return e
        except BaseException as e:
            raise self.failureException(f"{exception} not raised ({e!r} raised instead)") from e
        raise self.failureException(f"{exception} not raised ({f!r} returned)")

    assertIdentical = pyunit.TestCase.assertIs
    assertNotIdentical = pyunit.TestCase.assertIsNot
    failUnless = assertTrue = pyunit.TestCase.assertTrue
    failIf = pyunit.TestCase.assertFalse
    assertEquals = failUnlessEqual = pyunit.TestCase.assertEqual
    assertNotEquals = failIfEqual = pyunit.TestCase.assertNotEqual
    assertSubstring = lambda self, sub, s, msg=None: self.assertIn(sub, s, msg)  # noqa: E731
    assertNotSubstring = lambda self, sub, s, msg=None: self.assertNotIn(sub, s, msg)  # noqa: E731

    def assertApproximates(self, first: float, second: float, tolerance: float, msg: Optional[str] = None) -> None:
        """Fail unless the two are within ``tolerance``."""
        if abs(first - second) > tolerance:
            self.fail(msg or f"{first!r} ~== {second!r}")

    def patch(self, obj: Any, attribute: str, value: Any) -> None:
        """Set ``obj.attribute`` to ``value`` for this test."""
        old = getattr(obj, attribute)
        setattr(obj, attribute, value)
        self.addCleanup(setattr, obj, attribute, old)

    def mktemp(self) -> str:
        """A path, unique to this test, where nothing exists yet (its directory does)."""
        directory = tempfile.mkdtemp(prefix="twisted-compat-")
        self.addCleanup(_remove_tree, directory)
        return os.path.join(directory, "temp")

    def successResultOfAll(self, *ds: Any) -> List[Any]:  # pragma: no cover - convenience
        return [self.successResultOf(d) for d in ds]


def _code_file(f: Any) -> str:
    code = getattr(f, "__code__", None) or getattr(getattr(f, "__func__", None), "__code__", None)
    return code.co_filename if code is not None else ""


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class TestCase(SynchronousTestCase):
    """Trial's ``TestCase``: the test (and its setUp/tearDown) may return a Deferred or a coroutine.

    As under trial, the reactor is there for the whole test: a fresh asyncio loop is installed
    as twistdlite's reactor (``reactor.callLater`` schedules on it) but runs only while a
    returned Deferred is waited for (``timeout`` seconds at most, 60 by default), so the test
    code itself runs with no loop running, as Twisted code runs between reactor turns.
    """

    timeout = 60.0

    def _callSetUp(self) -> None:
        from twistdlite import _loopstate, reactor

        loop = asyncio.new_event_loop()
        saved = (_loopstate.installed, _loopstate._stop_hook)
        reactor.install(loop)
        self._loop = loop

        def restore() -> None:
            reactor.uninstall()
            if saved[0] is not None:
                reactor.install(saved[0], saved[1])
            loop.close()

        self.addCleanup(restore)
        super()._callSetUp()

    def _resolve(self, result: Any) -> Any:
        from twistdlite import defer
        from twistdlite.failure import Failure

        if result is None or not (isinstance(result, defer.Deferred) or inspect.isawaitable(result)):
            return result
        d = defer.ensureDeferred(result) if not isinstance(result, defer.Deferred) else result
        if not d.called or d.paused:
            async def wait() -> Any:
                return await asyncio.wait_for(asyncio.shield(_as_future(d)), self.timeout)

            self._loop.run_until_complete(wait())
        outcome: List[Any] = []
        d.addBoth(outcome.append)
        if not outcome:
            raise self.failureException(f"{d!r} did not fire")
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        return outcome[0]


def _as_future(d: Any) -> "asyncio.Future[Any]":
    """A future that completes when ``d`` fires, leaving ``d``'s result in place."""
    future = asyncio.get_running_loop().create_future()

    def done(result: Any) -> Any:
        if not future.done():
            future.set_result(None)
        return result

    d.addBoth(done)
    return future
