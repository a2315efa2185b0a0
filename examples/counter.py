"""A counter whose state changes while it runs: the example of a shutdown ``.tap`` round trip.

Connect (``nc 127.0.0.1 8124``) and send lines:

    count         ->  connections N   (connections so far, this one included)
    hello         ->  the greeting
    greet TEXT    ->  ok              (TEXT is the greeting from now on)
    status        ->  one JSON line: connections, greeting, ticks, step
    quit          ->  the server closes the connection

A TimerService adds 1 to ``ticks`` every ``step`` seconds. Everything lives on
the factory, which the TCPServer holds, so it is in the application's pickle:
stop the server (it saves ``Counter-shutdown.tap``), start it again with
``twistdlite -f Counter-shutdown.tap``, and the counts, greeting and timer
carry on where they were. Classes live here, in a module beside the ``.tac``,
because a class defined inside a ``.tac`` cannot be saved.
"""

import json

from twistdlite import basic, internet, protocol, service


class CounterProtocol(basic.LineReceiver):
    """Counts itself in, then answers commands, one per line."""

    delimiter = b"\n"

    def connectionMade(self):
        self.factory.connections += 1

    def lineReceived(self, line):
        command, _, argument = line.decode("utf-8", "replace").rstrip("\r").partition(" ")
        factory = self.factory
        if command == "count":
            self.sendLine(f"connections {factory.connections}".encode())
        elif command == "hello":
            self.sendLine(factory.greeting.encode())
        elif command == "greet" and argument:
            factory.greeting = argument
            self.sendLine(b"ok")
        elif command == "status":
            self.sendLine(json.dumps(factory.status(), sort_keys=True).encode())
        elif command == "quit":
            self.transport.loseConnection()
        else:
            self.sendLine(b"unknown command")


class CounterFactory(protocol.ServerFactory):
    """The counter's state: connections seen, the greeting, timer ticks."""

    protocol = CounterProtocol

    def __init__(self, greeting="hello", step=1.0):
        self.connections = 0
        self.greeting = greeting
        self.ticks = 0
        self.step = step

    def tick(self):
        """Called by the TimerService every ``step`` seconds."""
        self.ticks += 1

    def status(self):
        """The state, as a dict."""
        return {"connections": self.connections, "greeting": self.greeting,
                "ticks": self.ticks, "step": self.step}


def makeService(port, interface="127.0.0.1", step=1.0, greeting="hello"):
    """The counter: a MultiService named 'counter' holding its TCPServer ('tcp') and TimerService ('ticker')."""
    factory = CounterFactory(greeting, step)
    counter = service.MultiService()
    counter.setName("counter")
    tcp = internet.TCPServer(port, factory, interface=interface)
    tcp.setName("tcp")
    tcp.setServiceParent(counter)
    ticker = internet.TimerService(step, factory.tick)
    ticker.setName("ticker")
    ticker.setServiceParent(counter)
    return counter
