"""Echo protocols for the examples: TCP (a Protocol and its factory) and UDP (a DatagramProtocol).

They live in a module beside the .tac files, not in the .tac itself, so a saved
application (a .tap) refers to them by name and can be loaded again.
"""

from twistdlite import protocol


class Echo(protocol.Protocol):
    """Sends back whatever it receives."""

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.ServerFactory):
    """Builds an Echo for each connection."""

    protocol = Echo


class EchoUDP(protocol.DatagramProtocol):
    """Sends each datagram back to where it came from."""

    def datagramReceived(self, datagram, address):
        self.transport.write(datagram, address)
