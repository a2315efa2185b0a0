"""The pool tests' application (tests/test_workers_e2e.py); see workers_services.py for WORKERS_MODE."""

import os

import workers_services
from workers_services import Echo, Misbehaving, MODE, PORT

from twistdlite import internet, protocol, service

VERSION = "1"
EXTRA_PORTS = 0  # the reload test adds a listening port, then takes it away
workers_services.VERSION = VERSION

application = service.Application("pool")
factory = protocol.ServerFactory()
factory.protocol = Echo
if MODE == "datagram":
    internet.UNIXDatagramServer(os.environ["WORKERS_PATH"], protocol.DatagramProtocol()).setServiceParent(application)
elif MODE == "client":
    internet.TCPClient("127.0.0.1", 9, protocol.ClientFactory()).setServiceParent(application)
else:
    internet.TCPServer(PORT, factory, interface="127.0.0.1").setServiceParent(application)
    for _ in range(EXTRA_PORTS):
        internet.TCPServer(0, factory, interface="127.0.0.1").setServiceParent(application)
    Misbehaving().setServiceParent(application)
