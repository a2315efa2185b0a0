"""UDP and multicast in process, on asyncio and uvloop: echo, oversized datagrams, raising
protocols, ports in use, stopping, joining groups."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from netsupport import loop_param, run, until
from twistdlite import internet, protocol, reactor
from twistdlite._datagram import UDPPort
from twistdlite.error import CannotListenError, MulticastJoinError


class Echo(protocol.DatagramProtocol):
    def __init__(self):
        self.started = 0
        self.stopped = 0

    def startProtocol(self):
        self.started += 1

    def stopProtocol(self):
        self.stopped += 1

    def datagramReceived(self, data, addr):
        if data == b"boom":
            raise ValueError("bad datagram")
        self.transport.write(data, addr)


class Collector(asyncio.DatagramProtocol):
    def __init__(self):
        self.received = []

    def datagram_received(self, data, addr):
        self.received.append(data)


async def udp_client():
    loop = asyncio.get_running_loop()
    transport, collector = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
    return transport, collector


@loop_param()
def test_udp_server_echoes_and_stops(loop):
    async def main():
        proto = Echo()
        service = internet.UDPServer(0, proto, interface="127.0.0.1")
        service.privilegedStartService()
        assert type(service._port) is UDPPort
        number = service.getHost().port
        assert number > 0 and service.getHost().type == "UDP"
        await service.startService()
        assert proto.started == 1
        transport, collector = await udp_client()
        transport.sendto(b"hello", ("127.0.0.1", number))
        await until(lambda: collector.received == [b"hello"])
        await service.stopService()
        assert proto.stopped == 1 and proto.transport is None
        transport.close()

    run(main(), loop)


@loop_param()
def test_oversized_datagrams_are_dropped_and_logged_and_errors_do_not_stop_the_port(loop, caplog):
    async def main():
        port = reactor.listenUDP(0, Echo(), interface="127.0.0.1", maxPacketSize=100)
        await until(lambda: port.transport is not None)
        number = port.getHost().port
        transport, collector = await udp_client()
        transport.sendto(b"x" * 101, ("127.0.0.1", number))
        transport.sendto(b"boom", ("127.0.0.1", number))
        transport.sendto(b"y" * 100, ("127.0.0.1", number))
        await until(lambda: collector.received == [b"y" * 100])
        transport.close()
        await port.stopListening()

    with caplog.at_level(logging.WARNING, logger="twistdlite"):
        run(main(), loop)
    assert "Dropped a 101-byte datagram from ('127.0.0.1'," in caplog.text
    assert "larger than maxPacketSize 100" in caplog.text
    errors = [r for r in caplog.records if "Unhandled error in Echo.datagramReceived" in r.getMessage()]
    assert errors and "bad datagram" in str(errors[0].exc_info[1])


def test_udp_port_in_use_is_a_cannot_listen_error():
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    number = holder.getsockname()[1]
    try:
        with pytest.raises(CannotListenError) as info:
            internet.UDPServer(number, Echo(), interface="127.0.0.1").privilegedStartService()
        assert str(info.value).startswith(f"Couldn't listen on 127.0.0.1:{number}: Address already in use")
    finally:
        holder.close()


GROUP = "228.0.0.5"


class Listener(protocol.DatagramProtocol):
    def __init__(self):
        self.received = []

    def startProtocol(self):
        self.transport.setLoopbackMode(True)
        self.transport.setTTL(1)
        self.transport.joinGroup(GROUP, "127.0.0.1")

    def datagramReceived(self, data, addr):
        self.received.append(data)


@loop_param()
def test_multicast_server_joins_a_group_on_loopback(loop):
    async def main():
        proto = Listener()
        service = internet.MulticastServer(0, proto, listenMultiple=True)
        service.privilegedStartService()
        number = service.getHost().port
        try:
            await service.startService()
        except MulticastJoinError as exc:
            pytest.skip(f"multicast is not available on loopback here: {exc}")
        assert proto.transport.getLoopbackMode() and proto.transport.getTTL() == 1
        # a second listener on the same port is allowed with listenMultiple
        twin = reactor.listenMulticast(number, protocol.DatagramProtocol(), listenMultiple=True)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        try:
            for _ in range(50):
                sender.sendto(b"to the group", (GROUP, number))
                await asyncio.sleep(0.01)
                if proto.received:
                    break
        finally:
            sender.close()
        assert proto.received and proto.received[0] == b"to the group"
        proto.transport.leaveGroup(GROUP, "127.0.0.1")
        with pytest.raises(MulticastJoinError):
            proto.transport.joinGroup("10.0.0.1", "127.0.0.1")  # not a multicast address
        await twin.stopListening()
        await service.stopService()

    run(main(), loop)


class BadStart(protocol.DatagramProtocol):
    def startProtocol(self):
        raise MulticastJoinError(19, "cannot join multicast group 228.0.0.5 on 127.0.0.1: No such device")


@loop_param()
def test_a_failing_start_protocol_fails_the_start_and_closes_the_socket(loop):
    async def main():
        service = internet.MulticastServer(0, BadStart())
        service.privilegedStartService()
        port = service._getPort()
        with pytest.raises(MulticastJoinError):
            await service.startService()
        assert port.socket is None and port.transport is None
        assert service._getPort() is None  # released: a new start binds afresh

    run(main(), loop)
