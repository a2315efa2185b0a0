"""The client of examples/client.tac: says hello on each connection and logs the echo."""

import logging

from twistdlite import basic, protocol

log = logging.getLogger("echoclient")


class Hello(basic.LineReceiver):
    """Sends one line when connected, logs each line the server sends back."""

    def connectionMade(self):
        self.factory.connections += 1
        self.sendLine(b"hello #%d from client.tac" % self.factory.connections)

    def lineReceived(self, line):
        log.info("Server echoed: %s", line.decode("utf-8", "replace"))


class HelloFactory(protocol.Factory):
    """Builds a Hello for each connection and counts the connections."""

    protocol = Hello

    def __init__(self):
        self.connections = 0
