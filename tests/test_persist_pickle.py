"""Pickling the service tree: shipped services drop their runtime state; what cannot be saved is named."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import sys
import threading

import pytest

from twistdlite import internet, protocol, service
from twistdlite.launch import loader, persist
from twistdlite.launch.errors import LaunchError
from twistdlite.launch.picklecheck import describe_unpicklable, service_paths

from support import EXAMPLES

if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))
import counter  # noqa: E402  examples/counter.py


class Held(service.Service):
    """A service with arbitrary attributes, defined in an importable module."""


class Box:
    """A plain object holding things."""

    def __init__(self, **things):
        self.__dict__.update(things)


def round_trip(obj):
    return pickle.loads(pickle.dumps(obj, protocol=persist.PICKLE_PROTOCOL))


# -- shipped services come back stopped -------------------------------------------------

def test_running_tcp_server_pickles_without_its_socket_and_comes_back_stopped():
    async def scenario():
        factory = counter.CounterFactory("hi")
        tcp = internet.TCPServer(0, factory, interface="127.0.0.1")
        tcp.privilegedStartService()
        await tcp.startService()
        port = tcp.getHost().port
        copy = round_trip(tcp)
        assert tcp.running and not copy.running
        assert copy._port is None and "numPorts" not in copy.factory.__dict__
        assert copy.port == 0 and copy.interface == "127.0.0.1" and copy.factory.greeting == "hi"
        with pytest.raises(RuntimeError, match="not listening"):
            copy.getHost()
        await tcp.stopService()
        # The copy starts again on its own socket.
        copy.privilegedStartService()
        await copy.startService()
        assert copy.getHost().port != 0
        reader, writer = await asyncio.open_connection("127.0.0.1", copy.getHost().port)
        writer.write(b"hello\n")
        assert await reader.readline() == b"hi\n"
        writer.close()
        await copy.stopService()
        return port

    assert asyncio.run(scenario()) > 0


def test_running_timer_service_pickles_without_its_loop_and_resumes_on_start():
    async def scenario():
        factory = counter.CounterFactory(step=0.01)
        timer = internet.TimerService(0.01, factory.tick)
        timer.startService()
        await asyncio.sleep(0.05)
        copy = round_trip(timer)
        timer.stopService()
        assert "_loop" not in copy.__dict__ and not copy.running
        saved = copy.call[0].__self__.ticks
        assert saved >= 1 and copy.step == 0.01
        copy.startService()  # the first call is at once, then every step
        for _ in range(200):
            if copy.call[0].__self__.ticks >= saved + 3:
                break
            await asyncio.sleep(0.01)
        copy.stopService()
        assert copy.call[0].__self__.ticks >= saved + 3

    asyncio.run(scenario())


def test_factory_and_datagram_protocol_drop_their_runtime_counters():
    factory = protocol.Factory()
    factory.numPorts = 3
    assert "numPorts" not in round_trip(factory).__dict__
    datagram = protocol.DatagramProtocol()
    datagram.transport = object()
    datagram.numPorts = 1
    copy = round_trip(datagram)
    assert copy.transport is None and "numPorts" not in copy.__dict__


def test_counter_tree_round_trip_keeps_names_parents_and_shared_factory():
    async def scenario():
        app = service.Application("Counter")
        counter.makeService(0, step=0.5).setServiceParent(app)
        app.privilegedStartService()
        await service.maybe_await(app.startService())
        copy = round_trip(app)
        await service.maybe_await(app.stopService())
        return copy

    copy = asyncio.run(scenario())
    top = copy.getServiceNamed("counter")
    tcp, ticker = top.getServiceNamed("tcp"), top.getServiceNamed("ticker")
    assert top.parent is copy and tcp.parent is top
    assert ticker.call[0].__self__ is tcp.factory  # one factory, shared as before
    assert not copy.running and not tcp.running and not ticker.running


# -- what cannot be saved is named ----------------------------------------------------------

def test_service_paths_name_unnamed_services_by_class_and_position():
    app = service.Application("App")
    top = service.MultiService()
    top.setName("web")
    top.setServiceParent(app)
    service.Service().setServiceParent(top)
    Held().setServiceParent(top)
    assert [path for path, _ in service_paths(app)] == ["App", "App/web", "App/web/Service[0]", "App/web/Held[1]"]


def test_unpicklable_attribute_is_named_with_the_service_path():
    app = service.Application("App")
    top = service.MultiService()
    top.setName("web")
    top.setServiceParent(app)
    holder = Held()
    holder.setName("holder")
    holder.lock = threading.Lock()
    holder.setServiceParent(top)
    assert describe_unpicklable(app) == (
        "service 'App/web/holder' attribute 'lock' cannot be pickled: TypeError: cannot pickle '_thread.lock' object")


def test_nested_unpicklable_attribute_gives_the_path_inside_it():
    app = service.Application("App")
    tcp = internet.TCPServer(0, counter.CounterFactory())
    tcp.factory.db = Box(conn=socket.socket())
    try:
        tcp.setServiceParent(app)
        assert describe_unpicklable(app) == (
            "service 'App/TCPServer[0]' attribute 'factory.db.conn' cannot be pickled: "
            "TypeError: cannot pickle 'socket' object")
    finally:
        tcp.factory.db.conn.close()


def test_lambda_in_a_container_is_named():
    app = service.Application("App")
    holder = Held()
    holder.setName("h")
    holder.callbacks = {"on_tick": lambda: None}
    holder.setServiceParent(app)
    message = describe_unpicklable(app)
    assert message.startswith("service 'App/h' attribute \"callbacks['on_tick']\" cannot be pickled: ")
    assert "lambda" in message


def test_attribute_of_the_application_itself():
    app = service.Application("App")
    app.lock = threading.RLock()
    assert describe_unpicklable(app).startswith("service 'App' attribute 'lock' cannot be pickled")


def test_everything_picklable_describes_nothing():
    app = service.Application("App")
    counter.makeService(0).setServiceParent(app)
    assert describe_unpicklable(app) is None


def test_save_error_names_service_and_attribute_and_keeps_the_previous_tap(tmp_path):
    path = tmp_path / "App-shutdown.tap"
    app = service.Application("App")
    holder = Held()
    holder.setName("holder")
    holder.setServiceParent(app)
    persist.save(app, str(path))
    before = path.read_bytes()
    holder.lock = threading.Lock()
    with pytest.raises(LaunchError) as info:
        persist.save(app, str(path))
    assert str(info.value) == (
        f"cannot save {path}: service 'App/holder' attribute 'lock' cannot be pickled: TypeError: cannot pickle "
        f"'_thread.lock' object; {path} was not changed")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["App-shutdown.tap"]


# -- classes and functions defined inside the .tac ------------------------------------------

TAC_WITH_CLASS = """\
from twistdlite import internet, protocol, service

class Greeter(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"hi")

class GreeterFactory(protocol.ServerFactory):
    protocol = Greeter

application = service.Application("Inline")
tcp = internet.TCPServer(0, GreeterFactory(), interface="127.0.0.1")
tcp.setName("web")
tcp.setServiceParent(application)
"""

TAC_WITH_FUNCTION = """\
from twistdlite import internet, service

def tick():
    pass

application = service.Application("Inline")
internet.TimerService(5, tick).setServiceParent(application)
"""

TAC_WITH_SERVICE_CLASS = """\
from twistdlite import service

class Mine(service.Service):
    pass

application = service.Application("Inline")
s = Mine()
s.setName("mine")
s.setServiceParent(application)
"""


@pytest.mark.parametrize("source, expected", [
    (TAC_WITH_CLASS, "service 'Inline/web' attribute 'factory' cannot be pickled: it uses class 'GreeterFactory', "
                     "defined in the .tac file itself"),
    (TAC_WITH_FUNCTION, "service 'Inline/TimerService[0]' attribute 'call[0]' cannot be pickled: it uses "
                        "function 'tick', defined in the .tac file ({tac}) itself"),
    (TAC_WITH_SERVICE_CLASS, "service 'Inline/mine' (a Mine) cannot be pickled: it uses class 'Mine', "
                             "defined in the .tac file itself"),
])
def test_class_or_function_defined_in_the_tac_gives_the_fix(tmp_path, source, expected):
    tac = tmp_path / "inline.tac"
    tac.write_text(source)
    app = loader.load_tac(str(tac))
    path = tmp_path / "Inline-shutdown.tap"
    with pytest.raises(LaunchError) as info:
        persist.save(app, str(path))
    assert str(info.value) == (f"cannot save {path}: {expected.format(tac=tac)}, so it cannot be saved; move it "
                               f"into a module beside the .tac and import it from there; {path} was not changed")
    assert not path.exists()


def test_the_counter_example_saves(tmp_path):
    app = loader.load_tac(os.path.join(os.path.dirname(counter.__file__), "counter.tac"))
    persist.save(app, str(tmp_path / "Counter-shutdown.tap"), paths=[os.path.dirname(counter.__file__)])
    loaded, header = persist.load(str(tmp_path / "Counter-shutdown.tap"))
    assert header.name == "Counter" and loaded.getServiceNamed("counter").getServiceNamed("tcp").port == 8124
