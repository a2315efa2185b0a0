"""A small ``Failure``: an exception with its traceback, as Twisted passes to callbacks."""

from __future__ import annotations

import sys
import traceback
from typing import Any, Optional, Type

__all__ = ["Failure"]


class Failure:
    """Wraps an exception (the current one when none is given), like ``twisted.python.failure.Failure``."""

    def __init__(self, exc_value: Optional[BaseException] = None) -> None:
        if exc_value is None:
            exc_value = sys.exc_info()[1]
            if exc_value is None:
                raise ValueError("Failure() called with no exception being handled")
        self.value: BaseException = exc_value
        self.type: Type[BaseException] = type(exc_value)
        self.tb = exc_value.__traceback__

    def check(self, *error_types: Type[BaseException]) -> Optional[Type[BaseException]]:
        """Return the first of ``error_types`` the wrapped exception is an instance of, else None."""
        for error_type in error_types:
            if isinstance(self.value, error_type):
                return error_type
        return None

    def trap(self, *error_types: Type[BaseException]) -> Type[BaseException]:
        """Like :meth:`check`, but re-raise the exception when none matches."""
        found = self.check(*error_types)
        if found is None:
            raise self.value
        return found

    def getErrorMessage(self) -> str:
        """The exception's message."""
        return str(self.value)

    def getTraceback(self) -> str:
        """The formatted traceback."""
        return "".join(traceback.format_exception(self.type, self.value, self.tb))

    def raiseException(self) -> Any:
        """Raise the wrapped exception."""
        raise self.value

    def __repr__(self) -> str:
        return f"<Failure {self.type.__qualname__}: {self.value}>"

    __str__ = __repr__

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["tb"] = None
        return state
