# TCP and UDP echo on 127.0.0.1, two services under one MultiService (the shape of the
# Twisted docs' DNS example). Run with: twistdlite -noy examples/echo.tac
# ECHO_PORT sets the TCP port (default 8007; 0 picks a free one); ECHO_UDP_PORT sets the
# UDP port (default: the same number as ECHO_PORT).
import os

from twistdlite import internet, service

import echoserv

tcp_port = int(os.environ.get("ECHO_PORT", "8007"))
udp_port = int(os.environ.get("ECHO_UDP_PORT", str(tcp_port)))

application = service.Application("echo")
echo = service.MultiService()
echo.setServiceParent(application)
internet.TCPServer(tcp_port, echoserv.EchoFactory(), interface="127.0.0.1").setServiceParent(echo)
internet.UDPServer(udp_port, echoserv.EchoUDP(), interface="127.0.0.1").setServiceParent(echo)
