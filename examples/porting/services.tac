# The howto's "Services provided by Twisted" and "Service Collection": a
# MultiService holding a TCPServer and a UDPServer (echo, where the howto's has
# DNS; twisted.names does not port) and a TimerService. Ports: $ECHO_PORT
# (TCP) and $UDP_PORT, 7001 by default. Only the twisted.* imports changed.
import os

from twistdlite import internet, service
from porting_echo import EchoFactory
from porting_idioms import Ticker, UDPEcho

tcpPort = int(os.environ.get("ECHO_PORT", "7001"))
udpPort = int(os.environ.get("UDP_PORT", "7001"))

echoService = service.MultiService()
internet.TCPServer(tcpPort, EchoFactory(), interface="127.0.0.1").setServiceParent(echoService)
internet.UDPServer(udpPort, UDPEcho(), interface="127.0.0.1").setServiceParent(echoService)
ticker = Ticker()
internet.TimerService(0.05, ticker.tick).setServiceParent(echoService)

application = service.Application("EchoExample")
echoService.setServiceParent(application)
