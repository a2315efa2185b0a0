"""ReconnectingClientFactory on a fake clock with a fake connector."""

from __future__ import annotations

import logging

from twistdlite import protocol
from twistdlite.error import ConnectionRefusedError
from twistdlite.failure import Failure
from twistdlite.task import Clock


class FakeConnector:
    def __init__(self):
        self.state = "disconnected"
        self.connects = 0
        self.stopped = 0

    def connect(self):
        self.connects += 1
        self.state = "connecting"

    def stopConnecting(self):
        self.stopped += 1
        self.state = "disconnected"

    def __repr__(self):
        return "<FakeConnector>"


REFUSED = Failure(ConnectionRefusedError())


def make(**attrs):
    factory = protocol.ReconnectingClientFactory()
    factory.clock = Clock()
    factory.jitter = 0
    for name, value in attrs.items():
        setattr(factory, name, value)
    return factory


def next_delay(factory):
    (call,) = factory.clock.getDelayedCalls()
    return round(call.getTime() - factory.clock.seconds(), 6)


def test_delays_grow_by_factor_up_to_max_delay(caplog):
    factory = make(initialDelay=1.0, factor=2.0, maxDelay=5.0)
    connector = FakeConnector()
    delays = []
    with caplog.at_level(logging.INFO, logger="twistdlite"):
        for _ in range(5):
            connector.state = "disconnected"
            factory.clientConnectionFailed(connector, REFUSED)
            delays.append(next_delay(factory))
            factory.clock.advance(delays[-1])
    assert delays == [2.0, 4.0, 5.0, 5.0, 5.0]
    assert connector.connects == 5
    assert "<FakeConnector> will retry in 2 seconds" in caplog.text


def test_jitter_spreads_the_delay():
    factory = make(initialDelay=10.0, factor=1.0, maxDelay=100.0)
    factory.jitter = 0.1
    delays = set()
    for _ in range(20):
        factory.clientConnectionLost(FakeConnector(), REFUSED)
        delays.add(next_delay(factory))
        factory.clock.advance(1000)
        factory.delay = 10.0
    assert len(delays) > 1 and all(0 <= delay < 20 for delay in delays)


def test_max_retries_abandons(caplog):
    factory = make(maxRetries=2, initialDelay=0.1)
    connector = FakeConnector()
    with caplog.at_level(logging.INFO, logger="twistdlite"):
        for _ in range(3):
            factory.clientConnectionFailed(connector, REFUSED)
            factory.clock.advance(100)
    assert connector.connects == 2
    assert "Abandoning <FakeConnector> after 2 retries." in caplog.text


def test_stop_trying_cancels_the_pending_attempt_and_reset_delay_restores():
    factory = make(initialDelay=1.0, factor=3.0)
    connector = FakeConnector()
    factory.clientConnectionFailed(connector, REFUSED)
    assert factory.delay == 3.0 and factory.retries == 1
    factory.stopTrying()
    assert factory.clock.getDelayedCalls() == []
    factory.clock.advance(100)
    assert connector.connects == 0
    factory.clientConnectionLost(connector, REFUSED)  # no more retries once told to stop
    assert factory.clock.getDelayedCalls() == []

    connector.state = "connecting"
    factory.stopTrying()
    assert connector.stopped == 1
    factory.resetDelay()
    assert factory.delay == 1.0 and factory.retries == 0 and factory.continueTrying
