"""ClientService: back-off on a fake clock with a fake endpoint (exact delays, no busy loop,
logging, whenConnected, stop), then for real against a server that comes and goes."""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket

import pytest

from netsupport import FakeTransport, loop_param, run, until
from twistdlite import endpoints, internet, protocol, reactor
from twistdlite.error import ConnectionDone, ConnectionRefusedError
from twistdlite.failure import Failure
from twistdlite.task import Clock


class Proto(protocol.Protocol):
    def connectionMade(self):
        self.lost = None

    def connectionLost(self, reason=protocol.connectionDone):
        self.lost = reason


class ClosingTransport(FakeTransport):
    """A fake transport whose loseConnection ends the connection on the next loop turn."""

    def __init__(self, proto):
        super().__init__()
        self.proto = proto

    def loseConnection(self):
        super().loseConnection()
        asyncio.get_running_loop().call_soon(self.proto.connectionLost, Failure(ConnectionDone()))


class FakeEndpoint:
    """connect() returns a future the test resolves with accept() or refuse()."""

    def __init__(self):
        self.attempts = []

    def connect(self, factory):
        future = asyncio.get_running_loop().create_future()
        self.attempts.append((future, factory))
        return future

    def refuse(self):
        future, _ = self.attempts[-1]
        future.set_exception(ConnectionRefusedError(string="nobody home"))

    def accept(self):
        future, factory = self.attempts[-1]
        proto = factory.buildProtocol(None)
        proto.makeConnection(ClosingTransport(proto))
        future.set_result(proto)
        return proto

    def __repr__(self):
        return "<FakeEndpoint>"


async def turn():
    for _ in range(3):
        await asyncio.sleep(0)


def make_service(**kwargs):
    clock = Clock()
    endpoint = FakeEndpoint()
    policy = internet.backoffPolicy(initialDelay=1.0, maxDelay=10.0, factor=2.0, jitter=lambda: 0.0)
    service = internet.ClientService(endpoint, protocol.Factory.forProtocol(Proto), retryPolicy=policy,
                                     clock=clock, **kwargs)
    return service, endpoint, clock


def test_a_server_down_at_start_is_retried_with_capped_exponential_back_off(caplog):
    async def main():
        service, endpoint, clock = make_service()
        service.startService()
        assert len(endpoint.attempts) == 1  # the first attempt is made at once
        delays = []
        for _ in range(6):
            endpoint.refuse()
            await turn()
            (call,) = clock.getDelayedCalls()
            delay = call.getTime() - clock.seconds()
            delays.append(round(delay, 6))
            attempts = len(endpoint.attempts)
            clock.advance(delay * 0.99)  # nothing happens before the delay is up: no busy loop
            await turn()
            assert len(endpoint.attempts) == attempts
            clock.advance(delay * 0.011)
            await turn()
            assert len(endpoint.attempts) == attempts + 1
        assert delays == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
        assert service.factory.numPorts == 1  # started once for the run, not once per attempt
        endpoint.accept()
        await turn()
        assert clock.getDelayedCalls() == []
        await service.stopService()
        assert service.factory.numPorts == 0

    with caplog.at_level(logging.INFO, logger="twistdlite"):
        run(main())
    assert "Connecting to <FakeEndpoint> failed (Connection was refused by other side: nobody home); " \
           "retry 1 in 2.00 s" in caplog.text
    assert "retry 6 in 10.00 s" in caplog.text
    assert "Connected to <FakeEndpoint>" in caplog.text


def was_cancelled(d) -> bool:
    """True when the Deferred ``d`` has failed with CancelledError (the failure is taken: handled)."""
    from twistdlite.defer import CancelledError

    seen = []
    d.addErrback(lambda failure: seen.append(failure.check(CancelledError)))
    return bool(seen and seen[0])


def test_when_connected_reconnect_after_loss_and_fail_after_failures():
    async def main():
        service, endpoint, clock = make_service()
        waiting = service.whenConnected()
        doomed = service.whenConnected(failAfterFailures=2)
        service.startService()
        endpoint.refuse()
        await turn()
        assert not doomed.called  # a Deferred, as Twisted's
        clock.advance(2.0)
        endpoint.refuse()
        await turn()
        with pytest.raises(ConnectionRefusedError):
            await doomed
        assert not waiting.called
        clock.advance(4.0)
        proto = endpoint.accept()
        await turn()
        assert waiting.called and waiting.result is proto
        assert (await service.whenConnected()) is proto

        proto.connectionLost(Failure(ConnectionDone()))  # the server went away
        assert proto.lost is not None  # the protocol's own connectionLost still runs
        (call,) = clock.getDelayedCalls()
        assert call.getTime() - clock.seconds() == 2.0  # failures were reset by the success
        clock.advance(2.0)
        again = endpoint.accept()
        await turn()
        assert (await service.whenConnected()) is again

        pending = None
        await service.stopService()  # closes the connection and waits for the loss
        assert again.transport.lost == 1 and again.lost is not None
        assert clock.getDelayedCalls() == []
        pending = service.whenConnected()
        assert was_cancelled(pending)

    run(main())


def test_stop_while_waiting_cancels_the_retry_and_the_waiters():
    async def main():
        service, endpoint, clock = make_service()
        service.startService()
        waiter = service.whenConnected()
        endpoint.refuse()
        await turn()
        assert len(clock.getDelayedCalls()) == 1
        stopping = service.stopService()  # nothing to wait for, but awaitable all the same
        assert clock.getDelayedCalls() == [] and was_cancelled(waiter)
        await stopping
        clock.advance(100)
        await turn()
        assert len(endpoint.attempts) == 1

        service.startService()  # and it can start again
        assert len(endpoint.attempts) == 2
        endpoint.attempts[-1][0].cancel()
        await service.stopService()

    run(main())


def test_prepare_connection_is_awaited_before_connected():
    async def main():
        gate = asyncio.get_running_loop().create_future()
        prepared = []

        async def prepare(proto):
            prepared.append(proto)
            await gate

        service, endpoint, clock = make_service(prepareConnection=prepare)
        service.startService()
        waiter = service.whenConnected()
        proto = endpoint.accept()
        await turn()
        assert prepared == [proto] and not waiter.called
        gate.set_result(None)
        await turn()
        assert waiter.called and waiter.result is proto
        await service.stopService()

    run(main())


def test_default_policy_is_jittered_and_capped():
    policy = internet.backoffPolicy()
    samples = [policy(1) for _ in range(50)]
    assert all(1.5 <= value < 2.5 for value in samples)
    assert len(set(samples)) > 1  # jittered
    assert all(60.0 <= policy(attempt) < 61.0 for attempt in (20, 100, 10 ** 6))


def test_client_service_pickles_stopped():
    async def main():
        endpoint = endpoints.TCP4ClientEndpoint("127.0.0.1", 9)
        service = internet.ClientService(endpoint, protocol.Factory.forProtocol(Proto),
                                         retryPolicy=internet.backoffPolicy(initialDelay=0.5))
        service.startService()
        data = pickle.dumps(service)
        await service.stopService()
        return data

    clone = pickle.loads(run(main()))
    assert not clone.running and clone._proto is None and clone._retry is None
    assert clone.endpoint.port == 9 and clone.retryPolicy.initialDelay == 0.5


class Hello(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"hello")


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


@loop_param()
def test_keeps_reconnecting_to_a_server_that_comes_and_goes(loop):
    async def main():
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        number = holder.getsockname()[1]
        holder.close()
        attempts = []

        class CountingEndpoint(endpoints.TCP4ClientEndpoint):
            def connect(self, factory):
                attempts.append(asyncio.get_running_loop().time())
                return super().connect(factory)

        service = internet.ClientService(
            CountingEndpoint("127.0.0.1", number), protocol.Factory.forProtocol(Hello),
            retryPolicy=internet.backoffPolicy(initialDelay=0.02, maxDelay=0.1, factor=2.0, jitter=lambda: 0.0))
        service.startService()
        await until(lambda: len(attempts) >= 3, what="retries while the server is down")
        # no busy loop: the attempts are spaced by the policy
        assert all(b - a >= 0.03 for a, b in zip(attempts[1:], attempts[2:]))

        for _ in range(2):  # the server comes and goes twice
            server = reactor.listenTCP(number, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
            proto = await asyncio.wait_for(service.whenConnected(), 10)
            assert isinstance(proto, Hello)
            await server.stopListening()
            await server.loseAllConnections()
            await until(lambda: service._proto is None, what="the loss to be noticed")
        await service.stopService()

    run(main(), loop)


@loop_param()
def test_when_connected_and_connect_can_be_asked_before_the_loop_exists(loop):
    # As in a .tac: Twisted returns a Deferred at any time, and so do we (fired once the
    # reactor's loop runs and the connection is made).
    from netsupport import new_loop

    reactor.uninstall()
    reactor._when_running.clear()
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    endpoint = endpoints.TCP4ClientEndpoint("127.0.0.1", port.getHost().port)
    service = internet.ClientService(endpoint, protocol.Factory.forProtocol(Hello))
    waiter = service.whenConnected()
    early = endpoint.connect(protocol.Factory.forProtocol(Hello))
    cancelled = endpoint.connect(protocol.Factory.forProtocol(Hello))
    assert not waiter.called and not early.called
    cancelled.cancel()  # stops that attempt before it begins (it fails once the loop runs)
    called = []
    waiter.addBoth(lambda result: called.append(result) or result)

    async def main():
        service.startService()
        proto = await asyncio.wait_for(waiter, 10)
        assert isinstance(proto, Hello)
        other = await asyncio.wait_for(early, 10)
        assert isinstance(other, Hello) and other is not proto
        await until(lambda: called == [proto], what="the callback, called with the protocol")
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        other.transport.loseConnection()
        await service.stopService()
        await port.stopListening()
        await port.loseAllConnections()

    event_loop = new_loop(loop)
    reactor.install(event_loop)
    try:
        event_loop.run_until_complete(asyncio.wait_for(main(), 15))
    finally:
        reactor.uninstall()
        event_loop.close()
