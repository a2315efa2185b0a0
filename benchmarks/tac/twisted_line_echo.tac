# The Twisted counterpart of line_echo.tac: a LineReceiver echo server, for the throughput benchmark.
# Run with: twistd -noy benchmarks/tac/twisted_line_echo.tac   (ECHO_PORT=0 picks a free port)
import os

from twisted.application import internet, service
from twisted.internet import protocol
from twisted.protocols import basic


class LineEcho(basic.LineReceiver):
    """Send every received line straight back."""

    def lineReceived(self, line):
        self.sendLine(line)


class LineEchoFactory(protocol.ServerFactory):
    protocol = LineEcho


application = service.Application("line-echo")
internet.TCPServer(int(os.environ.get("ECHO_PORT", "8007")), LineEchoFactory(),
                   interface="127.0.0.1").setServiceParent(application)
