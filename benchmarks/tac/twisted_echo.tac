# The Twisted counterpart of examples/echo.tac: TCP and UDP echo on 127.0.0.1 under one
# MultiService, for the benchmarks. Run with: twistd -noy benchmarks/tac/twisted_echo.tac
# ECHO_PORT sets the TCP port (0 picks a free one); ECHO_UDP_PORT the UDP port (default: the same number).
import os

from twisted.application import internet, service
from twisted.internet import protocol


class Echo(protocol.Protocol):
    """Write back whatever arrives."""

    def dataReceived(self, data):
        self.transport.write(data)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo


class EchoUDP(protocol.DatagramProtocol):
    """Send every datagram back to where it came from."""

    def datagramReceived(self, data, addr):
        self.transport.write(data, addr)


tcp_port = int(os.environ.get("ECHO_PORT", "8007"))
udp_port = int(os.environ.get("ECHO_UDP_PORT", str(tcp_port)))

application = service.Application("echo")
echo = service.MultiService()
echo.setServiceParent(application)
internet.TCPServer(tcp_port, EchoFactory(), interface="127.0.0.1").setServiceParent(echo)
internet.UDPServer(udp_port, EchoUDP(), interface="127.0.0.1").setServiceParent(echo)
