# A TCP echo server on 127.0.0.1. Run with: twistdlite -noy examples/echo.tac
# ECHO_PORT overrides the port (default 8007); 0 picks a free one.
import os

from twistdlite import internet, protocol, service


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo


port = int(os.environ.get("ECHO_PORT", "8007"))
application = service.Application("echo")
internet.TCPServer(port, EchoFactory(), interface="127.0.0.1").setServiceParent(application)
