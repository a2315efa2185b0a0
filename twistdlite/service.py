"""The service tree: IService, IServiceCollection, Service, MultiService, Application.

Mirrors ``twisted.application.service``. ``startService()`` and
``stopService()`` may return an awaitable; a :class:`MultiService` awaits it
before moving on to the next sibling. A tree of purely synchronous services
starts and stops synchronously, with no event loop at all, as in Twisted.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Awaitable, Callable, Iterator, Optional, Protocol, runtime_checkable

__all__ = [
    "IService",
    "IServiceCollection",
    "IProcess",
    "Service",
    "MultiService",
    "Application",
    "maybe_await",
    "release_privileged",
]

_MISSING = object()


class _AdaptingProtocolMeta(type(Protocol)):  # type: ignore[misc]
    """Metaclass that makes ``IFoo(obj)`` adapt like a zope interface does."""

    def __call__(cls, obj: Any = _MISSING, default: Any = _MISSING) -> Any:
        if obj is _MISSING:
            raise TypeError(f"{cls.__name__} is an interface and cannot be instantiated")
        if isinstance(obj, _PROVIDERS.get(cls, ())) or isinstance(obj, cls):  # the first: no structural check
            return obj
        get_component = getattr(obj, "getComponent", None)
        if get_component is not None:
            found = get_component(cls)
            if found is not None:
                return found
        if default is not _MISSING:
            return default
        raise TypeError(f"Could not adapt {obj!r} to {cls.__name__}")


@runtime_checkable
class IService(Protocol, metaclass=_AdaptingProtocolMeta):
    """A service: something that can be started and stopped."""

    name: Optional[str]
    parent: Optional["IServiceCollection"]
    running: bool

    def setName(self, name: str) -> None:
        """Set the service's name; an error once it has a parent."""

    def setServiceParent(self, parent: Any) -> None:
        """Add this service to ``parent``, leaving any previous parent."""

    def disownServiceParent(self) -> Optional[Awaitable[Any]]:
        """Remove this service from its parent."""

    def privilegedStartService(self) -> None:
        """Do the start-up work that needs the launching user's rights."""

    def startService(self) -> Optional[Awaitable[Any]]:
        """Start the service."""

    def stopService(self) -> Optional[Awaitable[Any]]:
        """Stop the service."""


@runtime_checkable
class IServiceCollection(Protocol, metaclass=_AdaptingProtocolMeta):
    """A container of services."""

    def getServiceNamed(self, name: str) -> IService:
        """Return the child service called ``name`` (``KeyError`` if none)."""

    def __iter__(self) -> Iterator[IService]:
        """Iterate over the child services in the order they were added."""

    def addService(self, service: IService) -> None:
        """Add a child service."""

    def removeService(self, service: IService) -> Optional[Awaitable[Any]]:
        """Remove a child service, stopping it if the collection runs."""


@runtime_checkable
class IProcess(Protocol, metaclass=_AdaptingProtocolMeta):
    """The process-wide settings of an application: its uid and gid."""

    processName: Optional[str]
    uid: Optional[int]
    gid: Optional[int]


def _isawaitable(result: Any) -> bool:
    """True when ``result`` can be awaited (cheaper than importing inspect)."""
    return result is not None and hasattr(type(result), "__await__")


def _fired(result: Any) -> Any:
    """For a Deferred that has already fired: ``(True, value)`` or ``(False, exception)`` (its failure handled).

    None for anything else (a pending Deferred, a coroutine, a future...).
    """
    defer = sys.modules.get("twistdlite.defer")  # not imported: result cannot be a Deferred
    if defer is None or not isinstance(result, defer.Deferred) or not result.called or result.paused:
        return None
    outcome: list = []
    result.addBoth(outcome.append)
    if not outcome:
        return None
    value = outcome[0]
    error = getattr(value, "value", None)
    if isinstance(error, BaseException) and hasattr(value, "getTraceback"):  # a Failure
        return (False, error)
    return (True, value)


#: Tasks started by :func:`_schedule`, kept until done (the loop itself keeps only weak references).
_scheduled: set = set()


def _schedule(result: Any, what: str = "a service") -> Any:
    """Let an awaitable returned where nobody can await it run on the running loop.

    Returns the task (or ``result`` unchanged when it is not awaitable or no loop runs).
    The task is kept alive until it is done, and a failure is logged with its
    traceback (``what`` says what was running: "starting <Service 'x'>").
    """
    if not _isawaitable(result):
        return result
    import asyncio
    import logging

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        if isinstance(result, types.CoroutineType):
            result.close()  # nobody can ever run it; avoid "never awaited" noise
        logging.getLogger("twistdlite").warning("%s returned an awaitable, but no event loop is running: "
                                                "it will never run", what[:1].upper() + what[1:])
        return None
    task = asyncio.ensure_future(result, loop=loop)
    _scheduled.add(task)
    task.add_done_callback(lambda done: _scheduled_done(done, what))
    return task


def _scheduled_done(task: Any, what: str) -> None:
    """Forget a finished :func:`_schedule` task, logging its failure."""
    _scheduled.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        import logging

        logging.getLogger("twistdlite").error("%s failed: %s", what[:1].upper() + what[1:], error,
                                              exc_info=(type(error), error, error.__traceback__))


def _log_stop_error(child: Any) -> None:
    """Log the error a child raised while being stopped after a failed start."""
    import logging

    logging.getLogger("twistdlite").exception("Error stopping %r after a failed start", child)


def _first_of(errors: list) -> BaseException:
    """The first of ``errors`` (a non-empty list), the others logged with their tracebacks."""
    if len(errors) > 1:
        import logging

        for extra in errors[1:]:
            logging.getLogger("twistdlite").error(
                "Another error while stopping services", exc_info=(type(extra), extra, extra.__traceback__))
    return errors[0]


def _raise_first(errors: list) -> None:
    """Raise the first of ``errors`` (logging the others), if there are any."""
    if errors:
        raise _first_of(errors)


def release_privileged(service: Any) -> None:
    """Undo ``service``'s ``privilegedStartService`` after a start that failed before ``startService``.

    Closes the sockets the service (or, for a collection, each child, in
    reverse order) bound and removes the UNIX socket files it created. A
    service without the ``_releasePrivileged`` hook has nothing to release.
    Errors are logged, not raised: the failure that led here is the one to report.
    """
    release = getattr(service, "_releasePrivileged", None)
    if release is None:
        return
    try:
        release()
    except Exception:
        import logging

        logging.getLogger("twistdlite").exception("Error releasing %r after a failed start", service)


def _release_all(children: list) -> None:
    """:func:`release_privileged` each of ``children``, last first."""
    for child in reversed(children):
        release_privileged(child)


def _stops_plainly(stop_service: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Mark a ``stopService`` that only wraps its class's ``_stopPlainly()`` in a Deferred (see :func:`stop_service`)."""
    stop_service._wraps_stop_plainly = True  # type: ignore[attr-defined]
    return stop_service


def stop_service(service: Any) -> Optional[Awaitable[Any]]:
    """Stop ``service``: what its ``stopService()`` does, with what can be awaited (or None) rather than a Deferred.

    For twistdlite's own collections and ports (their ``stopService`` not
    overridden, on the class or the instance) the stop is the same but gives
    its awaitable (or None when it is over) without wrapping it in a Deferred,
    and a synchronous stop's error is raised rather than returned as a failed
    Deferred: a run whose services never used a Deferred then stops without
    importing :mod:`twistdlite.defer` (~0.8 ms of the stop). Any other
    service's ``stopService()`` is called and its result returned as it is.
    """
    method = service.stopService
    if getattr(getattr(method, "__func__", None), "_wraps_stop_plainly", False) is True:
        return service._stopPlainly()
    return method()


def _as_stop_deferred(stop: Callable[[], Optional[Awaitable[Any]]]) -> Any:
    """What a ``stopService`` marked with :func:`_stops_plainly` returns: ``stop()``'s outcome as a Deferred."""
    from twistdlite.defer import ensureDeferred, fail, succeed

    try:
        result = stop()
    except Exception as exc:  # as Twisted's: a Deferred that fails, not an exception from stopService itself
        return fail(exc)
    return succeed(None) if result is None else ensureDeferred(result)


async def maybe_await(result: Any) -> Any:
    """Await ``result`` if it is awaitable, else return it."""
    if _isawaitable(result):
        return await result
    return result


class Service:
    """The base service: tracks ``name``, ``parent`` and ``running``."""

    name: Optional[str] = None
    parent: Optional[Any] = None
    running: bool = False

    def __getstate__(self) -> dict:
        """Return the picklable state: everything but the running flag."""
        state = self.__dict__.copy()
        state.pop("running", None)
        return state

    def setName(self, name: str) -> None:
        """Set the name; ``RuntimeError`` once the service has a parent."""
        if self.parent is not None:
            raise RuntimeError("cannot change name when parent exists")
        self.name = name

    def setServiceParent(self, parent: Any) -> None:
        """Add this service to ``parent`` (any object adaptable to IServiceCollection)."""
        if self.parent is not None:
            self.disownServiceParent()
        collection = IServiceCollection(parent, parent)
        self.parent = collection
        try:
            collection.addService(self)
        except BaseException:
            self.parent = None
            raise

    def disownServiceParent(self) -> Optional[Awaitable[Any]]:
        """Remove this service from its parent, stopping it if the parent runs."""
        result = self.parent.removeService(self)
        self.parent = None
        return result

    def privilegedStartService(self) -> None:
        """Nothing to do with privileges by default."""

    def _releasePrivileged(self) -> None:
        """Undo ``privilegedStartService`` after a failed start (nothing to undo by default)."""

    def startService(self) -> Optional[Awaitable[Any]]:
        """Mark the service running."""
        self.running = True
        return None

    def stopService(self) -> Optional[Awaitable[Any]]:
        """Mark the service stopped."""
        self.running = False
        return None

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<{type(self).__name__}{label}>"


class MultiService(Service):
    """A service that holds child services, started in order and stopped in reverse."""

    def __init__(self) -> None:
        self.services: list[IService] = []
        self.namedServices: dict[str, IService] = {}
        self.parent = None

    def privilegedStartService(self) -> None:
        """Call ``privilegedStartService`` on every child, in order.

        If a child fails, the children before it are released again, in
        reverse order (their sockets closed, their UNIX socket files removed;
        the failing child cleans up after itself), then the error propagates.
        """
        Service.privilegedStartService(self)
        children = list(self)
        for index, child in enumerate(children):
            try:
                child.privilegedStartService()
            except BaseException:
                _release_all(children[:index])
                raise

    def _releasePrivileged(self) -> None:
        """Release every child's privileged start-up, in reverse order."""
        _release_all(list(self))

    def startService(self) -> Optional[Awaitable[Any]]:
        """Start the children in order, awaiting any that returns an awaitable.

        If a child fails to start, what the children after it got from
        ``privilegedStartService`` (bound sockets, UNIX socket files) is
        released, the children already started are stopped again in reverse
        order, the collection is marked stopped, and the error propagates.
        """
        Service.startService(self)
        children = list(self)
        for index, child in enumerate(children):
            try:
                result = child.startService()
            except BaseException:
                _release_all(children[index + 1:])
                self._unwind(children[:index])
                raise
            if _isawaitable(result):
                return self._start_rest(children, index, result)
        return None

    async def _start_rest(self, children: list, index: int, pending: Awaitable[Any]) -> None:
        started = index
        try:
            await pending
            for started in range(index + 1, len(children)):
                await maybe_await(children[started].startService())
        except BaseException:
            _release_all(children[started + 1:])
            await self._unwind_async(children[:started])
            raise

    def _unwind(self, started: list) -> None:
        """After a failed start: stop ``started`` again in reverse order (their stops not awaited)."""
        self.running = False
        for child in reversed(started):
            try:
                result = child.stopService()
                fired = _fired(result)  # a collection's stop that failed at once: logged here, not at GC
                if fired is not None and not fired[0]:
                    raise fired[1]
                _schedule(result, f"stopping {child!r}")
            except Exception:
                _log_stop_error(child)

    async def _unwind_async(self, started: list) -> None:
        """After a failed start: stop ``started`` again in reverse order, awaiting each stop."""
        self.running = False
        for child in reversed(started):
            try:
                await maybe_await(child.stopService())
            except Exception:
                _log_stop_error(child)

    @_stops_plainly
    def stopService(self) -> Optional[Awaitable[Any]]:
        """Stop the children in reverse order, awaiting any that returns an awaitable; returns a Deferred.

        The Deferred (also awaitable) fires once every child has stopped. A child whose stop fails does not keep
        its siblings running: every child is stopped, then the Deferred fails with the first error (the others
        are logged); stopService itself never raises for a child, as Twisted's returns a DeferredList.
        """
        return _as_stop_deferred(self._stopPlainly)

    def _stopPlainly(self) -> Optional[Awaitable[Any]]:
        """:meth:`stopService` without the Deferred: None when every child stopped at once, else a coroutine
        (the stops still to come); the first error of stops that all ended at once is raised (see stop_service)."""
        Service.stopService(self)
        children = list(reversed(self.services))
        errors: list[BaseException] = []
        for index, child in enumerate(children):
            try:
                result = stop_service(child)
            except Exception as exc:
                errors.append(exc)
                continue
            fired = _fired(result)  # a Deferred already fired: done, as a synchronous stop
            if fired is not None:
                if not fired[0]:
                    errors.append(fired[1])
                continue
            if _isawaitable(result):
                return self._stop_rest(children, index, result, errors)
        _raise_first(errors)
        return None

    async def _stop_rest(self, children: list, index: int, pending: Awaitable[Any],
                         errors: list) -> None:
        try:
            await pending
        except Exception as exc:
            errors.append(exc)
        for child in children[index + 1:]:
            try:
                await maybe_await(stop_service(child))
            except Exception as exc:
                errors.append(exc)
        _raise_first(errors)

    def getServiceNamed(self, name: str) -> IService:
        """Return the child called ``name``; ``KeyError`` if there is none."""
        return self.namedServices[name]

    def __iter__(self) -> Iterator[IService]:
        return iter(self.services)

    def __len__(self) -> int:
        return len(self.services)

    def addService(self, service: IService) -> None:
        """Add a child; ``RuntimeError`` on a duplicate name. Starts it if we run."""
        if service.name is not None:
            if service.name in self.namedServices:
                raise RuntimeError(
                    f"cannot have two services with same name {service.name!r}"
                )
            self.namedServices[service.name] = service
        self.services.append(service)
        if self.running:
            try:
                service.privilegedStartService()
                result = service.startService()
            except BaseException:
                # A child that cannot start is not added: no half-attached child left behind.
                self.services.remove(service)
                if service.name is not None and self.namedServices.get(service.name) is service:
                    del self.namedServices[service.name]
                release_privileged(service)
                raise
            _schedule(result, f"starting {service!r}")

    def removeService(self, service: IService) -> Optional[Awaitable[Any]]:
        """Remove a child, stopping it if we run; returns the stop's awaitable if any."""
        if service.name:
            del self.namedServices[service.name]
        self.services.remove(service)
        if self.running:
            return _schedule(service.stopService(), f"stopping {service!r}")
        return None


class Application(MultiService):
    """The root of a service tree: a MultiService carrying the process's uid/gid and components."""

    def __init__(self, name: str, uid: Optional[int] = None, gid: Optional[int] = None) -> None:
        super().__init__()
        self.name = name
        self.processName: Optional[str] = None
        self.uid = uid
        self.gid = gid
        self._components: dict[Any, Any] = {}

    def setComponent(self, interface: Any, component: Any) -> None:
        """Register ``component`` as this application's provider of ``interface``."""
        self._components[interface] = component

    def getComponent(self, interface: Any, default: Any = None) -> Any:
        """Return the component registered for ``interface``, or ``default``."""
        if interface in (IService, IServiceCollection, IProcess):
            return self
        return self._components.get(interface, default)

    def unsetComponent(self, interface: Any) -> None:
        """Forget the component registered for ``interface``."""
        self._components.pop(interface, None)

    def setServiceParent(self, parent: Any) -> None:
        """Applications are roots; they cannot have a parent."""
        raise RuntimeError("an Application is the root of its tree and cannot have a parent")


#: The classes known to provide an interface: ``IFoo(obj)`` returns such an ``obj`` at once, without the
#: structural check of a runtime-checkable Protocol (every attribute looked up on each call).
_PROVIDERS: dict = {IService: (Service,), IServiceCollection: (MultiService,)}
