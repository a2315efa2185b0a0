# The Twisted counterpart of examples/echo.tac (TCP part only), for the benchmarks.
# Run with: twistd -noy benchmarks/tac/twisted_echo.tac   (ECHO_PORT=0 picks a free port)
import os

from twisted.application import internet, service
from twisted.internet import protocol


class Echo(protocol.Protocol):
    """Write back whatever arrives."""

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo


application = service.Application("echo")
internet.TCPServer(int(os.environ.get("ECHO_PORT", "8007")), EchoFactory(),
                   interface="127.0.0.1").setServiceParent(application)
