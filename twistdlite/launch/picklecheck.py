"""Say exactly what in a service tree cannot be pickled: which service, which attribute.

Used only after a save has failed, so it may be slow: it pickles each
service's attributes one by one, with every other service in the tree left
out (``persistent_id``), and descends into the first attribute that fails.
Classes and functions defined inside a ``.tac`` (whose ``__module__`` is
``__builtin__``, as the loader runs it) are named as such, with the fix.
"""

from __future__ import annotations

import io
import pickle
import types
from typing import Any, Iterator, Optional

__all__ = ["describe_unpicklable", "service_paths", "TAC_MODULE"]

#: The ``__name__`` a ``.tac`` runs under (see ``loader.load_tac``), so its classes' ``__module__``.
TAC_MODULE = "__builtin__"

_MAX_DEPTH = 8
_MAX_MEMBERS = 10_000


class _DefinedInTac(Exception):
    """A class or function from the ``.tac`` itself was about to be pickled by reference."""

    def __init__(self, obj: Any) -> None:
        super().__init__(obj)
        self.obj = obj


class _Probe(pickle.Pickler):
    """A pickler that leaves out the objects in ``skip`` and stops at ``.tac``-defined globals."""

    def __init__(self, protocol: int, skip: set) -> None:
        super().__init__(io.BytesIO(), protocol)
        self.skip = skip

    def persistent_id(self, obj: Any) -> Optional[int]:
        if id(obj) in self.skip:
            return id(obj)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == TAC_MODULE:
            raise _DefinedInTac(obj)
        return NotImplemented


def _children(service: Any) -> list:
    from twistdlite.service import IServiceCollection

    collection = IServiceCollection(service, None)
    if collection is None:
        return []
    try:
        return list(collection)
    except Exception:
        return []


def service_paths(root: Any) -> Iterator[tuple[str, Any]]:
    """Yield ``(path, service)`` for ``root`` and every service under it, depth first.

    A path joins names with ``/`` (``Counter/web/tcp``); an unnamed service is
    shown as its class name and position among its siblings (``TCPServer[0]``).
    """
    label = getattr(root, "name", None) or type(root).__name__
    stack = [(str(label), root)]
    seen: set = set()
    while stack:
        path, service = stack.pop()
        if id(service) in seen:
            continue
        seen.add(id(service))
        yield path, service
        children = _children(service)
        for index in range(len(children) - 1, -1, -1):
            child = children[index]
            name = getattr(child, "name", None)
            stack.append((f"{path}/{name}" if name else f"{path}/{type(child).__name__}[{index}]", child))


def _fails(value: Any, protocol: int, skip: set) -> Optional[BaseException]:
    try:
        _Probe(protocol, skip).dump(value)
    except Exception as exc:  # a pickling error, _DefinedInTac, RecursionError...
        return exc
    return None


def _state(value: Any, protocol: int) -> Optional[dict]:
    """The attribute dict pickle would save for ``value``, if it has one."""
    try:
        reduced = value.__reduce_ex__(protocol)
    except Exception:
        return None
    if not isinstance(reduced, tuple) or len(reduced) < 3:
        return None
    state = reduced[2]
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
        merged: dict = {}
        for part in state:
            if isinstance(part, dict):
                merged.update(part)
        return merged
    return state if isinstance(state, dict) else None


def _members(value: Any, protocol: int) -> list[tuple[str, Any]]:
    """``(label, member)`` pairs to look into when ``value`` fails to pickle."""
    if isinstance(value, dict):
        return [(f"[{key!r}]", member) for key, member in list(value.items())[:_MAX_MEMBERS]]
    if isinstance(value, (list, tuple)):
        return [(f"[{index}]", member) for index, member in enumerate(value[:_MAX_MEMBERS])]
    if isinstance(value, (set, frozenset)):
        return [("{...}", member) for member in list(value)[:_MAX_MEMBERS]]
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)):
        return []
    state = _state(value, protocol)
    if state is None:
        return []
    return [(f".{key}", member) for key, member in list(state.items())[:_MAX_MEMBERS]]


def _locate(value: Any, protocol: int, skip: set, error: BaseException, depth: int = 0) -> tuple[str, BaseException]:
    """The path below ``value`` to the innermost member that fails, and its error."""
    if isinstance(error, _DefinedInTac) and error.obj is value:
        return "", error
    if depth >= _MAX_DEPTH:
        return "", error
    for label, member in _members(value, protocol):
        member_error = _fails(member, protocol, skip)
        if member_error is not None:
            below, innermost = _locate(member, protocol, skip, member_error, depth + 1)
            return label + below, innermost
    return "", error


def _tac_file(obj: Any) -> str:
    code = getattr(obj, "__code__", None)
    if code is None and isinstance(obj, type):
        for member in vars(obj).values():
            code = getattr(member, "__code__", None) or getattr(getattr(member, "__func__", None), "__code__", None)
            if code is not None:
                break
    return f"the .tac file ({code.co_filename})" if code is not None else "the .tac file"


def _reason(error: BaseException) -> str:
    if isinstance(error, _DefinedInTac):
        obj = error.obj
        kind = "class" if isinstance(obj, type) else "function"
        return (f"it uses {kind} {obj.__qualname__!r}, defined in {_tac_file(obj)} itself, so it cannot be "
                "saved; move it into a module beside the .tac and import it from there")
    if isinstance(error, RecursionError):
        return "it is nested too deeply to pickle"
    return f"{type(error).__name__}: {error}"


def describe_unpicklable(root: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> Optional[str]:
    """One line naming the service (its path in the tree) and the attribute that cannot be pickled.

    Returns None when every service and attribute pickles on its own.
    """
    services = list(service_paths(root))
    skip = {id(service) for _, service in services}
    classes_ok: set = set()
    for path, service in services:
        if type(service) not in classes_ok:
            cls_error = _fails(type(service), protocol, set())
            if cls_error is not None:
                return f"service {path!r} (a {type(service).__name__}) cannot be pickled: {_reason(cls_error)}"
            classes_ok.add(type(service))
        state = _state(service, protocol)
        if state is None:
            try:
                service.__reduce_ex__(protocol)
            except Exception as exc:
                return f"service {path!r} cannot be pickled: {type(exc).__name__}: {exc}"
            continue
        for attribute, value in state.items():
            error = _fails(value, protocol, skip)
            if error is None:
                continue
            below, innermost = _locate(value, protocol, skip, error)
            return f"service {path!r} attribute {attribute + below!r} cannot be pickled: {_reason(innermost)}"
    return None
