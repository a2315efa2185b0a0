"""An echo protocol for the confinement tests (tests/test_confinement_e2e.py), in a module so it pickles."""

from twistdlite import protocol


class Echo(protocol.Protocol):
    """Sends back what it receives."""

    def dataReceived(self, data):
        self.transport.write(data)


def factory():
    """A factory of :class:`Echo`."""
    return protocol.Factory.forProtocol(Echo)
