"""A ``Failure``: an exception with its traceback, as Twisted passes to errbacks.

It mirrors ``twisted.python.failure.Failure`` for what code using Deferreds
touches: :attr:`Failure.value`, :attr:`Failure.type`, :meth:`Failure.check`,
:meth:`Failure.trap`, :meth:`Failure.getErrorMessage`,
:meth:`Failure.getTraceback`, :meth:`Failure.raiseException` and
:meth:`Failure.cleanFailure`. The exception keeps its own ``__traceback__``,
so re-raising it (``await d``, :meth:`raiseException`) shows where it
really happened.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Generator, Optional, TextIO, Type, Union

__all__ = ["Failure", "NoCurrentExceptionError"]

# Frames of generators and coroutines must never be cleared: clearing a
# suspended one closes it. (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)
_SUSPENDABLE = 0x20 | 0x100 | 0x200


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as e:  # a broken __repr__ must not break the Failure
        return f"<unrepresentable {type(value).__name__}: {e!r}>"


def _capture_variables(tb: Any) -> list:
    captured = []
    while tb is not None:
        frame = tb.tb_frame
        captured.append(([(k, _safe_repr(v)) for k, v in frame.f_locals.items()],
                         [(k, _safe_repr(v)) for k, v in frame.f_globals.items()]))
        tb = tb.tb_next
    return captured


class NoCurrentExceptionError(ValueError):
    """``Failure()`` was called with no exception given and none being handled."""


ErrorType = Union[Type[BaseException], str]


class Failure:
    """Wraps an exception (the one being handled when none is given).

    ``Failure(exc)``, ``Failure()`` inside an ``except`` block, or
    ``Failure(exc_value, exc_type, exc_tb)`` as Twisted's signature.
    """

    def __init__(
        self,
        exc_value: Optional[BaseException] = None,
        exc_type: Optional[Type[BaseException]] = None,
        exc_tb: Any = None,
        captureVars: bool = False,
    ) -> None:
        if exc_value is None:
            current_type, current, current_tb = sys.exc_info()
            if current is None:
                if exc_type is None:
                    raise NoCurrentExceptionError("Failure() called with no exception being handled")
                current, current_tb = exc_type(), None
            exc_value, exc_tb = current, exc_tb or current_tb
        elif isinstance(exc_value, type) and issubclass(exc_value, BaseException):
            exc_value = exc_value()
        elif not isinstance(exc_value, BaseException):
            raise TypeError(f"Failure needs an exception, not {exc_value!r}")
        if exc_tb is None:
            exc_tb = exc_value.__traceback__
        self.value: BaseException = exc_value
        self.type: Type[BaseException] = type(exc_value)
        self.tb: Any = exc_tb
        self.captureVars = captureVars
        # With captureVars, each frame's variables as (name, repr) pairs, taken now: the
        # frames' own variables are gone once cleanFailure has run.
        self._variables: Optional[list] = _capture_variables(exc_tb) if captureVars else None

    # -- asking what it is ------------------------------------------------

    @property
    def frames(self) -> list:
        """One ``[function, file, line, locals, globals]`` per traceback entry, innermost last.

        ``locals`` and ``globals`` are lists of ``(name, repr)`` when the Failure was made with
        ``captureVars=True`` (as a Deferred does with debugging on), else empty tuples.
        """
        frames = []
        tb = self.tb
        index = 0
        while tb is not None:
            code = tb.tb_frame.f_code
            if self._variables is not None and index < len(self._variables):
                local_items, global_items = self._variables[index]
            else:
                local_items, global_items = (), ()
            frames.append([code.co_name, code.co_filename, tb.tb_lineno, local_items, global_items])
            tb = tb.tb_next
            index += 1
        return frames

    @property
    def parents(self) -> list:
        """The qualified names of the exception's classes, most derived first."""
        return [f"{c.__module__}.{c.__qualname__}" for c in self.type.__mro__]

    def check(self, *errorTypes: ErrorType) -> Optional[ErrorType]:
        """The first of ``errorTypes`` the exception is an instance of (a class or a qualified name), else None."""
        for error_type in errorTypes:
            if isinstance(error_type, str):
                if error_type in self.parents:
                    return error_type
            elif isinstance(self.value, error_type):
                return error_type
        return None

    def trap(self, *errorTypes: ErrorType) -> ErrorType:
        """Like :meth:`check`, but re-raise the exception when none matches (so an errback passes it on)."""
        found = self.check(*errorTypes)
        if found is None:
            self.raiseException()
        return found  # type: ignore[return-value]

    def getErrorMessage(self) -> str:
        """The exception's message (its ``str``)."""
        return str(self.value)

    def getBriefTraceback(self) -> str:
        """One line: the exception's type and message."""
        return "".join(traceback.format_exception_only(self.type, self.value)).rstrip("\n")

    def getTraceback(self, elideFrameworkCode: int = 0, detail: str = "default") -> str:
        """The formatted traceback, as Python prints it (``detail='brief'``: one line).

        A Failure of an exception never raised says so: ``Traceback (failure with no frames): ...``.
        """
        if detail == "brief":
            return self.getBriefTraceback() + "\n"
        if self.tb is None:
            return f"Traceback (failure with no frames): {self.getBriefTraceback()}\n"
        return "".join(traceback.format_exception(self.type, self.value, self.tb))

    def printTraceback(self, file: Optional[TextIO] = None, elideFrameworkCode: int = 0,
                       detail: str = "default") -> None:
        """Write :meth:`getTraceback` to ``file`` (standard error by default)."""
        (file or sys.stderr).write(self.getTraceback(elideFrameworkCode, detail))

    def getTracebackObject(self) -> Any:
        """The traceback object, or None."""
        return self.tb

    # -- acting on it -----------------------------------------------------

    def raiseException(self) -> Any:
        """Raise the wrapped exception with its traceback."""
        raise self.value.with_traceback(self.tb)

    def throwExceptionIntoGenerator(self, g: Generator[Any, Any, Any]) -> Any:
        """Throw the exception into the generator or coroutine ``g``; what it yields next is returned."""
        return g.throw(self.value.with_traceback(self.tb))

    def cleanFailure(self) -> None:
        """Drop the local variables the traceback's finished frames hold (as Twisted does when a
        Deferred's chain ends in this Failure), so a Deferred and its Failure do not keep each
        other, and everything those frames referred to, alive.

        The traceback itself (files, lines, functions) is kept, so it can still be printed and
        the exception re-raised with it. Frames still running, and those of generators and
        coroutines, are left alone.
        """
        tb = self.tb
        while tb is not None:
            frame = tb.tb_frame
            if not frame.f_code.co_flags & _SUSPENDABLE:
                try:
                    frame.clear()
                except RuntimeError:  # still executing
                    pass
            tb = tb.tb_next

    def __repr__(self) -> str:
        return f"<Failure {self.type.__module__}.{self.type.__qualname__}: {self.value}>"

    def __str__(self) -> str:
        return f"[Failure instance: {self.getBriefTraceback()}]"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["tb"] = None
        return state
