# The LineReceiver echo server of the throughput benchmark, on twistdlite.
# Run with: twistdlite -noy benchmarks/tac/line_echo.tac   (ECHO_PORT=0 picks a free port)
import os

from twistdlite import basic, internet, protocol, service


class LineEcho(basic.LineReceiver):
    """Send every received line straight back."""

    def lineReceived(self, line):
        self.sendLine(line)


class LineEchoFactory(protocol.ServerFactory):
    protocol = LineEcho


application = service.Application("line-echo")
internet.TCPServer(int(os.environ.get("ECHO_PORT", "8007")), LineEchoFactory(),
                   interface="127.0.0.1").setServiceParent(application)
