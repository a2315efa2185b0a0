"""The echo service of Twisted's application howto ("Writing your own service"), ported.

Only the imports differ from the Twisted version: ``from twisted.internet import
reactor, protocol`` became ``from twistdlite import reactor, protocol``, and
``from twisted.application import service`` became ``from twistdlite import service``.
"""

from twistdlite import protocol, reactor, service


class Echo(protocol.Protocol):
    """Writes back whatever it receives."""

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.Factory):
    """Makes an :class:`Echo` per connection."""

    protocol = Echo


class EchoService(service.Service):
    """Listens with reactor.listenTCP when started; stopService returns the port's stopListening() Deferred."""

    def __init__(self, portNum, interface="127.0.0.1"):
        self.portNum = portNum
        self.interface = interface

    def startService(self):
        service.Service.startService(self)
        self._port = reactor.listenTCP(self.portNum, EchoFactory(), interface=self.interface)

    def stopService(self):
        service.Service.stopService(self)
        return self._port.stopListening()
