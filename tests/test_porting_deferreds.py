"""What Twisted documents as returning a Deferred returns one here (in-process), and LoopingCall in a .tap."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from netsupport import until
from twistdlite import endpoints, internet, protocol, reactor, service, task
from twistdlite.defer import CancelledError, Deferred
from twistdlite.failure import Failure


@pytest.fixture(autouse=True)
def no_loop_installed():
    reactor.uninstall()
    yield
    reactor.uninstall()


def fired(d):
    """The result a Deferred has now (it must have one); a failure is returned, handled."""
    assert isinstance(d, Deferred), d
    seen = []
    d.addBoth(seen.append)
    assert seen, f"{d!r} has not fired"
    return seen[0]


def test_port_stop_listening_and_lose_connection_return_fired_deferreds():
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    stopped = []
    port.stopListening().addCallback(stopped.append)
    assert stopped == [None]
    assert fired(port.loseConnection()) is None


def test_defer_later_fires_with_the_calls_result_and_cancelling_it_cancels_the_call():
    clock = task.Clock()
    d = task.deferLater(clock, 2, lambda x: x * 2, 21)
    clock.advance(1)
    assert not d.called
    clock.advance(1)
    assert fired(d) == 42
    calls = []
    d = task.deferLater(clock, 1, calls.append, "never")
    d.cancel()
    assert fired(d).check(CancelledError) and clock.getDelayedCalls() == []
    clock.advance(5)
    assert calls == []
    failing = task.deferLater(clock, 1, int, "x")
    clock.advance(1)
    assert fired(failing).check(ValueError)


def test_looping_call_waits_for_a_deferred_and_its_failure_fails_start():
    clock = task.Clock()
    pending = []

    def work():
        d = Deferred()
        pending.append(d)
        return d

    lc = task.LoopingCall(work)
    lc.clock = clock
    ended = lc.start(1)
    clock.advance(3)  # the first call has not finished: no second one
    assert len(pending) == 1
    pending[0].callback(None)
    clock.advance(1)
    assert len(pending) == 2
    pending[1].errback(Failure(RuntimeError("work failed")))
    assert fired(ended).check(RuntimeError) and not lc.running


def test_stop_while_a_call_is_in_progress_fires_start_once_it_completes():
    clock = task.Clock()
    gate = Deferred()
    lc = task.LoopingCall(lambda: gate)
    lc.clock = clock
    ended = lc.start(1)
    lc.stop()
    assert not ended.called
    gate.callback(None)
    assert fired(ended) is lc


class Beeper(service.Service):
    """A service holding a LoopingCall on the default clock, as Twisted services do."""

    def __init__(self):
        self.beeps = 0
        self.loop = task.LoopingCall(self.beep)

    def beep(self):
        self.beeps += 1

    def startService(self):
        service.Service.startService(self)
        self.loop.start(0.01)

    def stopService(self):
        service.Service.stopService(self)
        self.loop.stop()


def test_a_service_holding_a_running_looping_call_pickles_and_starts_again():
    async def main():
        beeper = Beeper()
        beeper.startService()
        await until(lambda: beeper.beeps >= 2)
        copy = pickle.loads(pickle.dumps(beeper))
        beeper.stopService()
        assert not copy.loop.running and copy.loop.clock is None and copy.loop.call is None
        saved = copy.beeps
        copy.startService()
        await until(lambda: copy.beeps >= saved + 2)
        copy.stopService()

    asyncio.run(main())


def test_endpoints_listen_and_connect_and_when_connected_return_deferreds():
    class Hello(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(b"hi")

    async def main():
        listening = endpoints.TCP4ServerEndpoint(0, interface="127.0.0.1").listen(
            protocol.Factory.forProtocol(Hello))
        assert isinstance(listening, Deferred)
        port = await listening
        endpoint = endpoints.TCP4ClientEndpoint("127.0.0.1", port.getHost().port)
        connecting = endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
        assert isinstance(connecting, Deferred)
        proto = await connecting
        proto.transport.loseConnection()
        client = internet.ClientService(endpoint, protocol.Factory.forProtocol(protocol.Protocol))
        waiting = client.whenConnected()
        assert isinstance(waiting, Deferred) and not waiting.called
        connected = []
        waiting.addCallback(connected.append)
        client.startService()
        await until(lambda: connected)
        stopping = client.stopService()
        assert isinstance(stopping, Deferred)
        await stopping
        assert fired(client.whenConnected()).check(CancelledError)  # stopped: cancelled at once
        await port.stopListening()

    asyncio.run(main())


def test_multiservice_stop_returns_a_deferred_that_fires_once_every_child_has_stopped():
    async def main():
        parent = service.MultiService()
        gate = asyncio.get_running_loop().create_future()

        class Slow(service.Service):
            def stopService(self):
                service.Service.stopService(self)
                return gate

        Slow().setServiceParent(parent)
        service.Service().setServiceParent(parent)
        parent.startService()
        stopped = parent.stopService()
        assert isinstance(stopped, Deferred) and not stopped.called
        gate.set_result(None)
        await stopped

    asyncio.run(main())
