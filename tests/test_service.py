"""The service tree (twistdlite.service): Twisted's semantics, plus awaitable starts and stops."""

from __future__ import annotations

import asyncio
import copy
import pickle
import subprocess
import sys

import pytest

from support import env
from twistdlite import service
from twistdlite.service import Application, IProcess, IService, IServiceCollection, MultiService, Service


class Recorder(Service):
    """A synchronous service that writes what happens to it into a shared log."""

    def __init__(self, name: str, log: list, fail_start: bool = False, fail_stop: bool = False) -> None:
        self.setName(name)
        self.log = log
        self.fail_start = fail_start
        self.fail_stop = fail_stop

    def privilegedStartService(self) -> None:
        self.log.append(("privileged", self.name))

    def startService(self) -> None:
        self.log.append(("start", self.name))
        if self.fail_start:
            raise ValueError(f"{self.name} cannot start")
        Service.startService(self)

    def stopService(self) -> None:
        self.log.append(("stop", self.name))
        Service.stopService(self)
        if self.fail_stop:
            raise ValueError(f"{self.name} cannot stop")


class AsyncRecorder(Recorder):
    """A service whose start and stop are coroutines that yield to the loop several times."""

    async def _work(self, what: str, fail: bool) -> None:
        self.log.append((what + "-begin", self.name))
        for _ in range(3):
            await asyncio.sleep(0)
        self.log.append((what + "-end", self.name))
        if fail:
            raise ValueError(f"{self.name} cannot {what}")

    def startService(self):  # type: ignore[override]
        Service.startService(self)
        return self._work("start", self.fail_start)

    def stopService(self):  # type: ignore[override]
        Service.stopService(self)
        return self._work("stop", self.fail_stop)


def tree(log: list, *children: Service) -> MultiService:
    parent = MultiService()
    for child in children:
        child.setServiceParent(parent)
    return parent


# -- names, parents, membership ---------------------------------------------------------------

def test_a_new_service_has_no_name_no_parent_and_is_not_running():
    svc = Service()
    assert (svc.name, svc.parent, svc.running) == (None, None, False)
    assert not MultiService().running and list(MultiService()) == []


def test_set_name_works_until_the_service_has_a_parent():
    svc = Service()
    svc.setName("first")
    svc.setName("second")
    parent = MultiService()
    svc.setServiceParent(parent)
    with pytest.raises(RuntimeError, match="parent"):
        svc.setName("third")
    assert svc.name == "second"
    assert parent.getServiceNamed("second") is svc


def test_set_service_parent_adds_and_disown_removes():
    parent = MultiService()
    svc = Service()
    svc.setName("svc")
    svc.setServiceParent(parent)
    assert svc.parent is parent
    assert list(parent) == [svc] and len(parent) == 1
    assert parent.getServiceNamed("svc") is svc
    assert svc.disownServiceParent() is None
    assert svc.parent is None
    assert list(parent) == []
    with pytest.raises(KeyError):
        parent.getServiceNamed("svc")


def test_set_service_parent_moves_a_service_from_its_old_parent():
    old, new = MultiService(), MultiService()
    svc = Service()
    svc.setName("svc")
    svc.setServiceParent(old)
    svc.setServiceParent(new)
    assert list(old) == [] and "svc" not in old.namedServices
    assert list(new) == [svc] and svc.parent is new


def test_duplicate_names_are_refused_and_the_failed_child_stays_unparented():
    parent = MultiService()
    first, second = Service(), Service()
    first.setName("same")
    second.setName("same")
    first.setServiceParent(parent)
    with pytest.raises(RuntimeError, match="same"):
        second.setServiceParent(parent)
    assert second.parent is None
    assert list(parent) == [first]
    assert parent.getServiceNamed("same") is first
    with pytest.raises(RuntimeError):
        parent.addService(second)
    assert list(parent) == [first]


def test_a_child_that_cannot_start_in_a_running_parent_is_not_added():
    log: list = []
    parent = MultiService()
    parent.startService()
    bad = Recorder("bad", log, fail_start=True)
    with pytest.raises(ValueError, match="bad cannot start"):
        bad.setServiceParent(parent)
    assert bad.parent is None and list(parent) == [] and parent.namedServices == {}
    again = Recorder("bad", log)  # the name is free again
    again.setServiceParent(parent)
    assert parent.getServiceNamed("bad") is again and again.running


def test_an_async_start_that_fails_in_a_running_parent_is_logged(caplog):
    class FailsLater(Service):
        async def _start(self):
            await asyncio.sleep(0)
            raise RuntimeError("late failure")

        def startService(self):
            Service.startService(self)
            return self._start()

    async def main():
        parent = MultiService()
        parent.startService()
        child = FailsLater()
        child.setName("late")
        child.setServiceParent(parent)
        assert service._scheduled  # kept alive until done, not left to the garbage collector
        for _ in range(5):
            await asyncio.sleep(0)
        assert not service._scheduled

    with caplog.at_level("ERROR", logger="twistdlite"):
        asyncio.run(main())
    failed = [r for r in caplog.records if "late failure" in r.getMessage()]
    assert len(failed) == 1 and failed[0].getMessage().startswith("Starting <FailsLater 'late'")
    assert failed[0].exc_info is not None


def test_an_async_start_added_with_no_loop_says_it_will_never_run(caplog):
    class Async(Service):
        async def _start(self):
            pass

        def startService(self):
            Service.startService(self)
            return self._start()

    parent = MultiService()
    parent.startService()
    with caplog.at_level("WARNING", logger="twistdlite"):
        Async().setServiceParent(parent)
    assert any("no event loop is running: it will never run" in r.getMessage() for r in caplog.records)


def test_unnamed_services_can_be_added_any_number_of_times():
    parent = MultiService()
    children = [Service() for _ in range(3)]
    for child in children:
        child.setServiceParent(parent)
    assert list(parent) == children and parent.namedServices == {}


def test_remove_service_and_lookup_errors():
    parent = MultiService()
    named = Service()
    named.setName("named")
    parent.addService(named)
    parent.removeService(named)
    assert list(parent) == [] and parent.namedServices == {}
    with pytest.raises(ValueError):
        parent.removeService(Service())
    with pytest.raises(KeyError):
        parent.getServiceNamed("nobody")
    with pytest.raises(AttributeError):
        Service().disownServiceParent()  # no parent: as in Twisted


def test_iteration_is_in_the_order_added():
    log: list = []
    children = [Recorder(f"s{i}", log) for i in range(5)]
    parent = tree(log, *children)
    assert list(parent) == children
    assert [child.name for child in parent] == ["s0", "s1", "s2", "s3", "s4"]


# -- starting and stopping a synchronous tree --------------------------------------------------

def test_privileged_start_reaches_every_child_and_grandchild():
    log: list = []
    inner = tree(log, Recorder("b1", log), Recorder("b2", log))
    outer = tree(log, Recorder("a", log), inner, Recorder("c", log))
    outer.privilegedStartService()
    assert log == [("privileged", "a"), ("privileged", "b1"), ("privileged", "b2"), ("privileged", "c")]
    assert not outer.running  # privileged start is not start


def test_start_in_order_and_stop_in_reverse_order_through_nesting():
    log: list = []
    inner = tree(log, Recorder("b1", log), Recorder("b2", log))
    outer = tree(log, Recorder("a", log), inner, Recorder("c", log))
    assert outer.startService() is None
    assert log == [("start", "a"), ("start", "b1"), ("start", "b2"), ("start", "c")]
    assert outer.running and inner.running and all(child.running for child in inner)
    log.clear()
    stopped = outer.stopService()
    assert stopped.called and stopped.result is None  # a Deferred, fired at once
    assert log == [("stop", "c"), ("stop", "b2"), ("stop", "b1"), ("stop", "a")]
    assert not outer.running and not inner.running and not any(child.running for child in inner)


def test_a_synchronous_tree_needs_no_event_loop_and_never_imports_asyncio():
    script = """
import sys
from twistdlite import service
app = service.Application("sync")
inner = service.MultiService()
inner.setServiceParent(app)
for i in range(3):
    s = service.Service(); s.setName(str(i)); s.setServiceParent(inner)
app.privilegedStartService()
assert app.startService() is None and all(s.running for s in inner)
extra = service.Service(); extra.setServiceParent(app); assert extra.running
assert extra.disownServiceParent() is None and not extra.running
stopped = app.stopService()  # a Deferred, as Twisted's, already fired: nothing waited for a loop
assert stopped.called and stopped.result is None and not any(s.running for s in inner)
import asyncio
assert asyncio.get_event_loop_policy()._local._loop is None, "a synchronous tree made an event loop"
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], env=env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_synchronous_tree_starts_in_a_thread_without_any_loop():
    import threading

    log: list = []
    parent = tree(log, Recorder("a", log), Recorder("b", log))
    outcome: dict = {}

    def body() -> None:
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        outcome["start"] = parent.startService()
        outcome["running"] = [child.running for child in parent]
        stopped = parent.stopService()  # a Deferred, as Twisted's, fired at once
        outcome["stop"] = (stopped.called, stopped.result)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(10)
    assert outcome == {"start": None, "running": [True, True], "stop": (True, None)}
    assert log == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]


def test_adding_a_child_to_a_running_parent_starts_it_and_disowning_stops_it():
    log: list = []
    parent = tree(log)
    parent.startService()
    child = Recorder("late", log)
    child.setServiceParent(parent)
    assert log == [("privileged", "late"), ("start", "late")]
    assert child.running
    child.disownServiceParent()
    assert log[-1] == ("stop", "late")
    assert not child.running and child.parent is None


def test_adding_a_child_to_a_stopped_parent_does_not_start_it():
    log: list = []
    parent = tree(log)
    child = Recorder("c", log)
    child.setServiceParent(parent)
    child.disownServiceParent()
    assert log == []


def test_copy_of_a_running_service_is_not_running():
    svc = Service()
    svc.setName("svc")
    svc.startService()
    clone = copy.copy(svc)
    assert svc.running and not clone.running and clone.name == "svc"
    parent = MultiService()
    parent.startService()
    assert not copy.copy(parent).running
    assert not pickle.loads(pickle.dumps(svc)).running


# -- errors while starting and stopping ---------------------------------------------------------

def test_a_failing_start_stops_the_earlier_siblings_again_synchronously():
    log: list = []
    a, b, c = Recorder("a", log), Recorder("b", log, fail_start=True), Recorder("c", log)
    parent = tree(log, a, b, c)
    with pytest.raises(ValueError, match="b cannot start"):
        parent.startService()
    assert log == [("start", "a"), ("start", "b"), ("stop", "a")]
    assert not parent.running and not a.running and not c.running


def test_a_failing_start_in_a_nested_tree_unwinds_every_level():
    log: list = []
    inner = tree(log, Recorder("b1", log), Recorder("b2", log, fail_start=True))
    outer = tree(log, Recorder("a", log), inner, Recorder("c", log))
    with pytest.raises(ValueError):
        outer.startService()
    assert log == [("start", "a"), ("start", "b1"), ("start", "b2"), ("stop", "b1"), ("stop", "a")]
    assert not outer.running and not inner.running


def test_an_error_stopping_an_earlier_sibling_does_not_hide_the_start_error(caplog):
    log: list = []
    a = Recorder("a", log, fail_stop=True)
    parent = tree(log, Recorder("z", log), a, Recorder("b", log, fail_start=True))
    with pytest.raises(ValueError, match="b cannot start"):
        parent.startService()
    assert log[-2:] == [("stop", "a"), ("stop", "z")]  # z is stopped even though a's stop failed
    assert "a cannot stop" in caplog.text


def test_a_failing_stop_still_stops_every_sibling_and_the_returned_deferred_fails():
    """As Twisted's MultiService (a DeferredList): stopService does not raise; its Deferred carries the error."""
    log: list = []
    a, b, c = Recorder("a", log), Recorder("b", log, fail_stop=True), Recorder("c", log)
    parent = tree(log, a, b, c)
    parent.startService()
    log.clear()
    result = parent.stopService()
    assert log == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert not any(child.running for child in parent) and not parent.running
    errors: list = []
    result.addErrback(errors.append)
    assert len(errors) == 1 and errors[0].check(ValueError) and "b cannot stop" in str(errors[0].value)


def test_a_nested_collection_whose_stop_fails_fails_its_parents_deferred_once(caplog):
    log: list = []
    inner = tree(log, Recorder("b1", log, fail_stop=True), Recorder("b2", log))
    outer = tree(log, Recorder("a", log), inner, Recorder("c", log))
    outer.startService()
    log.clear()
    errors: list = []
    outer.stopService().addErrback(errors.append)
    assert log == [("stop", "c"), ("stop", "b2"), ("stop", "b1"), ("stop", "a")]
    assert [str(error.value) for error in errors] == ["b1 cannot stop"]
    assert "Another error" not in caplog.text


class Binder(Recorder):
    """A service that binds something in privilegedStartService and records its release."""

    def __init__(self, name: str, log: list, fail_privileged: bool = False, **kwargs) -> None:
        super().__init__(name, log, **kwargs)
        self.fail_privileged = fail_privileged

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        if self.fail_privileged:
            raise OSError(f"{self.name} cannot bind")

    def _releasePrivileged(self) -> None:
        self.log.append(("release", self.name))


def test_a_failing_privileged_start_releases_the_earlier_children_in_reverse_order():
    log: list = []
    inner = tree(log, Binder("b1", log), Binder("b2", log), Binder("b3", log, fail_privileged=True))
    outer = tree(log, Binder("a", log), Recorder("plain", log), inner, Binder("c", log))
    with pytest.raises(OSError, match="b3 cannot bind"):
        outer.privilegedStartService()
    assert log == [("privileged", "a"), ("privileged", "plain"), ("privileged", "b1"), ("privileged", "b2"),
                   ("privileged", "b3"), ("release", "b2"), ("release", "b1"), ("release", "a")]
    assert not outer.running


def test_release_privileged_releases_a_whole_tree_and_skips_what_has_no_hook():
    log: list = []
    inner = tree(log, Binder("b1", log), Binder("b2", log))
    outer = tree(log, Binder("a", log), inner, Binder("c", log))
    service.release_privileged(outer)
    assert log == [("release", "c"), ("release", "b2"), ("release", "b1"), ("release", "a")]
    service.release_privileged(object())  # not a service with the hook: nothing to do


def test_a_failing_start_releases_the_children_after_it_that_never_started():
    log: list = []
    parent = tree(log, Binder("a", log), Binder("b", log, fail_start=True), Binder("c", log), Binder("d", log))
    with pytest.raises(ValueError, match="b cannot start"):
        parent.startService()
    assert log == [("start", "a"), ("start", "b"), ("release", "d"), ("release", "c"), ("stop", "a")]


def test_a_failing_awaitable_start_releases_the_children_after_it_too():
    log: list = []

    class AsyncBinder(AsyncRecorder, Binder):
        pass

    parent = tree(log, AsyncBinder("a", log), AsyncBinder("b", log, fail_start=True), Binder("c", log))

    async def main() -> None:
        with pytest.raises(ValueError, match="b cannot start"):
            await parent.startService()

    asyncio.run(main())
    assert log == [("start-begin", "a"), ("start-end", "a"), ("start-begin", "b"), ("start-end", "b"),
                   ("release", "c"), ("stop-begin", "a"), ("stop-end", "a")]


# -- awaitable starts and stops -------------------------------------------------------------------

def test_an_awaitable_start_is_awaited_before_the_next_sibling_starts():
    log: list = []
    parent = tree(log, AsyncRecorder("a", log), Recorder("b", log), AsyncRecorder("c", log))

    async def main() -> None:
        await service.maybe_await(parent.startService())
        assert all(child.running for child in parent)
        log.append(("started", "all"))
        await service.maybe_await(parent.stopService())

    asyncio.run(main())
    assert log == [
        ("start-begin", "a"), ("start-end", "a"), ("start", "b"), ("start-begin", "c"), ("start-end", "c"),
        ("started", "all"),
        ("stop-begin", "c"), ("stop-end", "c"), ("stop", "b"), ("stop-begin", "a"), ("stop-end", "a"),
    ]


def test_awaitables_propagate_through_nested_trees():
    log: list = []
    inner = tree(log, AsyncRecorder("b1", log), AsyncRecorder("b2", log))
    outer = tree(log, Recorder("a", log), inner, AsyncRecorder("c", log))

    async def main() -> None:
        result = outer.startService()
        assert result is not None  # the tree is asynchronous, so the caller must await
        await result
        await outer.stopService()

    asyncio.run(main())
    begins = [entry for entry in log if entry[0] in ("start", "start-begin")]
    assert [name for _, name in begins] == ["a", "b1", "b2", "c"]
    assert log.index(("start-end", "b2")) < log.index(("start-begin", "c"))
    stops = [name for what, name in log if what in ("stop", "stop-begin")]
    assert stops == ["c", "b2", "b1", "a"]
    assert log.index(("stop-end", "b2")) < log.index(("stop-begin", "b1"))


def test_a_failing_awaitable_start_stops_the_earlier_siblings_again():
    log: list = []
    a, b, c = AsyncRecorder("a", log), AsyncRecorder("b", log, fail_start=True), Recorder("c", log)
    parent = tree(log, a, b, c)

    async def main() -> None:
        with pytest.raises(ValueError, match="b cannot start"):
            await parent.startService()

    asyncio.run(main())
    assert log == [
        ("start-begin", "a"), ("start-end", "a"), ("start-begin", "b"), ("start-end", "b"),
        ("stop-begin", "a"), ("stop-end", "a"),
    ]
    assert not parent.running and not a.running and not c.running


def test_a_synchronous_failure_after_an_awaitable_start_unwinds_too():
    log: list = []
    a, b = AsyncRecorder("a", log), Recorder("b", log, fail_start=True)
    parent = tree(log, Recorder("z", log), a, b)

    async def main() -> None:
        with pytest.raises(ValueError, match="b cannot start"):
            await parent.startService()

    asyncio.run(main())
    assert log[-3:] == [("stop-begin", "a"), ("stop-end", "a"), ("stop", "z")]
    assert not parent.running


def test_a_failing_awaitable_stop_still_stops_the_rest():
    log: list = []
    parent = tree(log, AsyncRecorder("a", log), AsyncRecorder("b", log, fail_stop=True), Recorder("c", log))

    async def main() -> None:
        await parent.startService()
        log.clear()
        with pytest.raises(ValueError, match="b cannot stop"):
            await parent.stopService()

    asyncio.run(main())
    assert [name for what, name in log if what in ("stop", "stop-begin")] == ["c", "b", "a"]
    assert ("stop-end", "a") in log


def test_stop_service_stops_a_tree_as_stop_service_does_but_gives_no_deferred():
    """What the launcher calls: the same stops in the same order, None when they are over (no Deferred made),
    else what to await; a synchronous stop's error is raised."""
    log: list = []
    inner = tree(log, Recorder("b1", log), Recorder("b2", log))
    outer = tree(log, Recorder("a", log), inner, Recorder("c", log))
    outer.startService()
    log.clear()
    assert service.stop_service(outer) is None
    assert log == [("stop", "c"), ("stop", "b2"), ("stop", "b1"), ("stop", "a")]
    assert not outer.running and not inner.running

    failing = tree(log, Recorder("x", log, fail_stop=True), Recorder("y", log))
    failing.startService()
    log.clear()
    with pytest.raises(ValueError, match="x cannot stop"):
        service.stop_service(failing)
    assert log == [("stop", "y"), ("stop", "x")]


def test_stop_service_with_an_awaitable_child_gives_what_to_await():
    log: list = []
    parent = tree(log, Recorder("a", log), AsyncRecorder("b", log), Recorder("c", log))

    async def main() -> None:
        await parent.startService()
        log.clear()
        pending = service.stop_service(parent)
        assert asyncio.iscoroutine(pending)
        await pending

    asyncio.run(main())
    assert [name for what, name in log if what in ("stop", "stop-begin", "stop-end")] == ["c", "b", "b", "a"]


def test_stop_service_calls_a_stop_service_that_was_overridden_on_the_class_or_the_instance():
    log: list = []

    class Own(MultiService):
        def stopService(self):
            log.append("own stopService")
            return MultiService.stopService(self)

    own = Own()
    own.startService()
    stopped = service.stop_service(own)  # the override's result, as it is: a Deferred here
    assert log == ["own stopService"] and stopped.called
    replaced = MultiService()
    replaced.startService()
    replaced.stopService = lambda: "replaced"
    assert service.stop_service(replaced) == "replaced"
    assert replaced.running  # the instance's stopService ran, not the class's


def test_stop_service_of_a_parent_calls_a_childs_overridden_stop_service():
    log: list = []

    class Own(Recorder):
        def stopService(self):
            return succeed_with(Recorder.stopService(self))

    def succeed_with(value):
        from twistdlite.defer import succeed
        return succeed(value)

    parent = tree(log, Recorder("a", log), Own("own", log))
    parent.startService()
    log.clear()
    assert service.stop_service(parent) is None  # the child's Deferred had fired: nothing left to await
    assert log == [("stop", "own"), ("stop", "a")]


def test_ports_stop_without_a_deferred_and_their_stop_service_still_returns_one():
    from twistdlite import internet
    from twistdlite.defer import Deferred
    from twistdlite.protocol import DatagramProtocol, Factory, Protocol

    async def main() -> list:
        outcomes = []
        for make in (lambda: internet.TCPServer(0, Factory.forProtocol(Protocol), interface="127.0.0.1"),
                     lambda: internet.UDPServer(0, DatagramProtocol(), interface="127.0.0.1")):
            plain, deferred = make(), make()
            for server in (plain, deferred):
                server.privilegedStartService()
                await server.startService()
            pending = service.stop_service(plain)
            assert asyncio.iscoroutine(pending)
            await pending
            stopped = deferred.stopService()
            assert isinstance(stopped, Deferred)
            await stopped
            outcomes.append((plain.running, plain._port, deferred.running, deferred._port))
            assert service.stop_service(plain) is None  # stopped already: nothing to await
        return outcomes

    assert asyncio.run(main()) == [(False, None, False, None)] * 2


def test_adding_and_disowning_asynchronous_children_while_running():
    log: list = []
    parent = tree(log)

    async def main() -> None:
        parent.startService()
        child = AsyncRecorder("late", log)
        child.setServiceParent(parent)
        assert child.running
        for _ in range(10):
            await asyncio.sleep(0)
        assert ("start-end", "late") in log
        pending = child.disownServiceParent()
        assert pending is not None  # the stop's task, for whoever wants to wait on it
        await pending
        assert log[-1] == ("stop-end", "late") and not child.running

    asyncio.run(main())


def test_maybe_await_passes_plain_values_through():
    async def main() -> None:
        assert await service.maybe_await(5) == 5
        assert await service.maybe_await(None) is None

        async def seven() -> int:
            return 7

        assert await service.maybe_await(seven()) == 7

    asyncio.run(main())


# -- interfaces and Application -------------------------------------------------------------------

def test_interfaces_adapt_like_twisted_interfaces():
    app = Application("app")
    assert IServiceCollection(app) is app
    assert IService(app) is app
    assert IProcess(app) is app
    svc = Service()
    assert IService(svc) is svc
    assert isinstance(svc, IService) and isinstance(MultiService(), IServiceCollection)
    with pytest.raises(TypeError):
        IService(object())
    with pytest.raises(TypeError):
        IServiceCollection(svc)  # a plain Service holds no services
    assert IService(object(), None) is None
    sentinel = object()
    assert IServiceCollection(svc, sentinel) is sentinel
    with pytest.raises(TypeError):
        IService()


def test_application_carries_name_uid_gid_and_components():
    app = Application("myapp", uid=1234, gid=5678)
    assert (app.name, app.uid, app.gid) == ("myapp", 1234, 5678)
    assert (IProcess(app).uid, IProcess(app).gid, IProcess(app).processName) == (1234, 5678, None)
    plain = Application("plain")
    assert (plain.uid, plain.gid) == (None, None)
    assert isinstance(app, MultiService)

    class ILogObserver:
        """A marker interface."""

    observer = object()
    assert app.getComponent(ILogObserver) is None
    assert app.getComponent(ILogObserver, "default") == "default"
    app.setComponent(ILogObserver, observer)
    assert app.getComponent(ILogObserver) is observer
    app.unsetComponent(ILogObserver)
    assert app.getComponent(ILogObserver) is None


def test_an_application_is_always_a_root():
    with pytest.raises(RuntimeError):
        Application("child").setServiceParent(MultiService())


def test_an_application_runs_its_tree():
    log: list = []
    app = Application("app")
    Recorder("a", log).setServiceParent(app)
    Recorder("b", log).setServiceParent(app)
    IService(app).privilegedStartService()
    IService(app).startService()
    IService(app).stopService()
    assert [what for what, _ in log] == ["privileged", "privileged", "start", "start", "stop", "stop"]
    assert [name for _, name in log] == ["a", "b", "a", "b", "b", "a"]


def test_repr_names_the_service():
    svc = Service()
    svc.setName("web")
    assert "web" in repr(svc) and "Service" in repr(svc)
