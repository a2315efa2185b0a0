"""Every network service pickles while running and comes back stopped, with no runtime state,
and starts again (what a shutdown .tap relies on)."""

from __future__ import annotations

import pickle
import socket

from netsupport import make_cert, run
from twistdlite import endpoints, internet, protocol, strports
from twistdlite.ssl import ClientContextFactory, DefaultOpenSSLContextFactory

RUNTIME = ("_port", "_connection", "_loop", "_proto", "_attempt", "_retry", "_waiters", "running")


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class Datagrams(protocol.DatagramProtocol):
    pass


class Connected(protocol.ConnectedDatagramProtocol):
    pass


class Retrying(protocol.ReconnectingClientFactory):
    protocol = Echo
    initialDelay = 0.05


def tick():
    pass


def services(tmp_path, key, cert, server_port):
    """(service, start it?) for every class."""
    factory = protocol.Factory.forProtocol(Echo)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    timer = internet.TimerService(60, tick)
    return listener, [
        internet.TCPServer(0, factory, interface="127.0.0.1"),
        internet.SSLServer(0, factory, DefaultOpenSSLContextFactory(str(key), str(cert)), interface="127.0.0.1"),
        internet.UNIXServer(str(tmp_path / "s.sock"), factory, mode=0o600),
        internet.UDPServer(0, Datagrams(), interface="127.0.0.1"),
        internet.MulticastServer(0, Datagrams(), listenMultiple=True),
        internet.UNIXDatagramServer(str(tmp_path / "d.sock"), Datagrams()),
        internet.TCPClient("127.0.0.1", server_port, Retrying()),
        internet.SSLClient("127.0.0.1", server_port, Retrying(), ClientContextFactory()),
        internet.UNIXClient(str(tmp_path / "s.sock"), Retrying()),
        internet.UNIXDatagramClient(str(tmp_path / "d.sock"), Connected(), bindAddress=str(tmp_path / "c.sock")),
        timer,
        internet.ClientService(endpoints.TCP4ClientEndpoint("127.0.0.1", server_port), factory,
                               retryPolicy=internet.backoffPolicy(initialDelay=0.05)),
        strports.AdoptedStreamServer(listener.fileno(), socket.AF_INET, factory),
        internet.StreamServerEndpointService(endpoints.serverFromString("tcp:0:interface=127.0.0.1"), factory),
        strports.service(f"unix:{tmp_path / 'strports.sock'}:mode=600", factory),
    ]


def test_every_service_pickles_running_and_comes_back_stopped(tmp_path):
    key, cert = make_cert(tmp_path)

    async def main():
        server = internet.TCPServer(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
        server.privilegedStartService()
        await server.startService()
        listener, all_services = services(tmp_path, key, cert, server.getHost().port)
        try:
            saved = []
            for service in all_services:
                service.privilegedStartService()
                result = service.startService()
                if result is not None:
                    await result
                assert service.running
                saved.append(pickle.dumps(service))
            clones = [pickle.loads(data) for data in saved]
            for service in reversed(all_services):
                result = service.stopService()
                if result is not None:
                    await result
            for clone, original in zip(clones, all_services):
                assert type(clone) is type(original)
                assert not clone.running, clone
                for name in RUNTIME:
                    assert name not in clone.__dict__, (clone, name)
            # and they start again from scratch
            for clone in clones:
                clone.privilegedStartService()
                result = clone.startService()
                if result is not None:
                    await result
                assert clone.running
            for clone in reversed(clones):
                result = clone.stopService()
                if result is not None:
                    await result
        finally:
            listener.close()
            await server.stopService()

    run(main())


def test_reconnecting_client_factory_pickles_without_its_connector_and_timer():
    factory = Retrying()
    factory.connector = object()  # neither would pickle: __getstate__ must drop them
    factory._callID = object()
    factory.retries = 7
    factory.delay = 99
    factory.maxRetries = 3
    clone = pickle.loads(pickle.dumps(factory))
    assert clone.connector is None and clone._callID is None
    assert clone.retries == 0 and clone.delay == Retrying.initialDelay and clone.continueTrying
    assert clone.maxRetries == 3
