"""Plain asyncio for examples/asyncio_native.tac: an asyncio.Protocol and a service whose start is
an ``async def`` (the launcher awaits it), with no Twisted-style protocol classes."""

import asyncio
import logging

from twistdlite import service

log = logging.getLogger("nativeecho")


class UpperEcho(asyncio.Protocol):
    """Sends back what it receives, in upper case."""

    def __init__(self, connections):
        self.connections = connections

    def connection_made(self, transport):
        self.transport = transport
        self.connections.add(transport)

    def data_received(self, data):
        self.transport.write(data.upper())

    def connection_lost(self, exc):
        self.connections.discard(self.transport)


class NativeEchoService(service.Service):
    """Serves UpperEcho with ``loop.create_server``, started and stopped with coroutines."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.server = None
        self.connections = set()

    def __getstate__(self):
        state = service.Service.__getstate__(self)
        state["server"] = None  # live sockets are not saved; a restart makes new ones
        state["connections"] = set()
        return state

    async def startService(self):
        service.Service.startService(self)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: UpperEcho(self.connections), self.host, self.port)
        port = self.server.sockets[0].getsockname()[1]
        log.info("UpperEcho starting on %d", port)

    async def stopService(self):
        service.Service.stopService(self)
        server, self.server = self.server, None
        if server is not None:
            server.close()
            for transport in list(self.connections):
                transport.close()
            await server.wait_closed()
