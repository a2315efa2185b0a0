"""TLS over the stdlib ssl module, in process on asyncio and uvloop: servers, clients, context
factories, and faults (missing, unreadable, mismatched or garbage key/cert; a client sending garbage)."""

from __future__ import annotations

import asyncio
import os
import pickle
import ssl
import subprocess

import pytest

from netsupport import loop_param, make_cert, run, until
from twistdlite import endpoints, internet, protocol, reactor, strports
from twistdlite.internet import ClientService
from twistdlite.error import ConnectError, EndpointStringError
from twistdlite.ssl import (ClientContextFactory, DefaultOpenSSLContextFactory, TLSConfigError,
                            optionsForClientTLS)


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def echo_factory():
    return protocol.Factory.forProtocol(Echo)


@pytest.fixture
def tls(tmp_path):
    key, cert = make_cert(tmp_path)
    return key, cert


class Talker(protocol.Protocol):
    """Sends a greeting and records the echo."""

    def connectionMade(self):
        self.received = b""
        self.transport.write(b"over tls")

    def dataReceived(self, data):
        self.received += data


async def tls_roundtrip(port: int, cert) -> bytes:
    context = ssl.create_default_context(cafile=str(cert))
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    writer.write(b"secret")
    data = await reader.readexactly(6)
    writer.close()
    return data


@loop_param()
def test_ssl_server_and_clients(loop, tls):
    key, cert = tls

    async def main():
        service = internet.SSLServer(0, echo_factory(), DefaultOpenSSLContextFactory(str(key), str(cert)),
                                     interface="127.0.0.1")
        service.privilegedStartService()
        number = service.getHost().port
        await service.startService()
        assert await tls_roundtrip(number, cert) == b"secret"

        endpoint = endpoints.SSL4ClientEndpoint("127.0.0.1", number, optionsForClientTLS("localhost", str(cert)))
        proto = await endpoint.connect(protocol.Factory.forProtocol(Talker))
        await until(lambda: proto.received == b"over tls")
        assert proto.transport.getPeerCertificate()["subject"] == ((("commonName", "localhost"),),)
        proto.transport.loseConnection()

        client_factory = protocol.ClientFactory.forProtocol(Talker)
        client = internet.SSLClient("127.0.0.1", number, client_factory, ClientContextFactory())
        client.startService()
        await until(lambda: client._connection.state == "connected")
        await until(lambda: client._connection.transport is not None)
        await client.stopService()

        untrusted = endpoints.SSL4ClientEndpoint("127.0.0.1", number, optionsForClientTLS("localhost"))
        with pytest.raises(ConnectError) as info:
            await untrusted.connect(protocol.Factory.forProtocol(Talker))
        assert "certificate verify failed" in str(info.value)
        await service.stopService()

    run(main(), loop)


@loop_param()
def test_a_bare_ssl_context_is_a_context_factory_but_cannot_be_saved(loop, tls):
    key, cert = tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))

    async def main():
        port = reactor.listenSSL(0, echo_factory(), context, interface="127.0.0.1")
        await until(lambda: port.server is not None)
        assert await tls_roundtrip(port.getHost().port, cert) == b"secret"
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)
    with pytest.raises(TypeError) as info:
        pickle.dumps(internet.SSLServer(0, echo_factory(), context))
    assert "use twistdlite.ssl.DefaultOpenSSLContextFactory" in str(info.value)


def test_default_context_factory_pickles_without_its_context(tls):
    key, cert = tls
    factory = DefaultOpenSSLContextFactory(str(key), str(cert))
    assert isinstance(factory.getContext(), ssl.SSLContext)
    clone = pickle.loads(pickle.dumps(factory))
    assert "_context" not in clone.__dict__
    assert isinstance(clone.getContext(), ssl.SSLContext)
    service = pickle.loads(pickle.dumps(internet.SSLServer(443, echo_factory(), factory)))
    assert service.contextFactory.privateKeyFileName == str(key) and not service.running


@loop_param()
def test_a_server_restored_from_a_tap_reads_its_key_when_it_binds(loop, tls):
    # A .tap keeps the file names, not the context: the key must be read in
    # privilegedStartService (as root, say), not in startService (after the drop to -u).
    key, cert = tls
    saved = pickle.dumps(internet.SSLServer(0, echo_factory(), DefaultOpenSSLContextFactory(str(key), str(cert)),
                                            interface="127.0.0.1"))
    restored = pickle.loads(saved)

    async def main():
        restored.privilegedStartService()
        os.rename(key, f"{key}.away")  # from here on the key cannot be read
        try:
            await restored.startService()
            assert await tls_roundtrip(restored.getHost().port, cert) == b"secret"
        finally:
            os.rename(f"{key}.away", key)
            await restored.stopService()

    run(main(), loop)


@loop_param()
def test_a_client_restored_from_a_tap_reads_its_ca_file_before_the_drop(loop, tls):
    key, cert = tls
    trusting = pickle.loads(pickle.dumps(internet.SSLClient(
        "127.0.0.1", 0, protocol.ClientFactory.forProtocol(Talker), optionsForClientTLS("localhost", str(cert)))))

    async def main():
        server = reactor.listenSSL(0, echo_factory(), DefaultOpenSSLContextFactory(str(key), str(cert)),
                                   interface="127.0.0.1")
        await until(lambda: server.server is not None)
        trusting.port = server.getHost().port
        trusting.privilegedStartService()  # as root, say: the CA file is read now
        os.rename(cert, f"{cert}.away")
        try:
            trusting.startService()  # after the drop to -u: the file is out of reach
            await until(lambda: trusting._connection.state == "connected")
            await trusting.stopService()
        finally:
            os.rename(f"{cert}.away", cert)
            await server.stopListening()

    run(main(), loop)


@loop_param()
def test_a_client_service_over_tls_reads_its_ca_file_before_the_drop(loop, tls):
    key, cert = tls

    async def main():
        server = reactor.listenSSL(0, echo_factory(), DefaultOpenSSLContextFactory(str(key), str(cert)),
                                   interface="127.0.0.1")
        await until(lambda: server.server is not None)
        endpoint = endpoints.clientFromString(f"ssl:host=127.0.0.1:port={server.getHost().port}:"
                                              f"caCertsDir={cert.parent}:hostname=localhost")
        client = pickle.loads(pickle.dumps(ClientService(endpoint, protocol.Factory.forProtocol(Talker))))
        client.privilegedStartService()
        os.rename(cert, f"{cert}.away")
        try:
            client.startService()
            proto = await asyncio.wait_for(client.whenConnected(), 10)
            assert proto.transport.getPeerCertificate()["subject"] == ((("commonName", "localhost"),),)
            await client.stopService()
        finally:
            os.rename(f"{cert}.away", cert)
            await server.stopListening()

    run(main(), loop)


def test_an_unusable_tls_context_fails_the_bind_and_binds_nothing(tls):
    key, cert = tls
    restored = pickle.loads(pickle.dumps(internet.SSLServer(0, echo_factory(),
                                                            DefaultOpenSSLContextFactory(str(key), str(cert)))))
    os.remove(key)
    with pytest.raises(TLSConfigError, match="does not exist"):
        restored.privilegedStartService()
    assert restored._getPort().socket is None


@loop_param()
def test_a_client_sending_garbage_does_not_stop_the_server(loop, tls):
    key, cert = tls

    async def main():
        port = reactor.listenSSL(0, echo_factory(), DefaultOpenSSLContextFactory(str(key), str(cert)),
                                 interface="127.0.0.1")
        await until(lambda: port.server is not None)
        number = port.getHost().port
        for garbage in (b"GET / HTTP/1.0\r\n\r\n", os.urandom(4096), b"\x16\x03\x01\x00\x05hello"):
            reader, writer = await asyncio.open_connection("127.0.0.1", number)
            writer.write(garbage)
            try:
                await asyncio.wait_for(reader.read(), 10)  # the server hangs up on it
            except ConnectionResetError:
                pass
            writer.close()
        assert await tls_roundtrip(number, cert) == b"secret"
        await port.stopListening()
        await port.loseAllConnections()

    run(main(), loop)


def test_missing_garbage_and_mismatched_key_or_cert_are_clear(tmp_path, tls):
    key, cert = tls
    other_key, other_cert = make_cert(tmp_path, "other")
    with pytest.raises(TLSConfigError) as info:
        DefaultOpenSSLContextFactory(str(tmp_path / "nope.key"), str(cert))
    assert str(info.value) == f"private key file '{tmp_path / 'nope.key'}' does not exist"
    with pytest.raises(TLSConfigError) as info:
        DefaultOpenSSLContextFactory(str(key), str(tmp_path))
    assert "is a directory" in str(info.value)
    with pytest.raises(TLSConfigError) as info:
        DefaultOpenSSLContextFactory(str(other_key), str(cert))
    assert str(info.value) == (f"cannot use TLS certificate '{cert}' with private key '{other_key}': "
                               "the private key does not match the certificate")
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key at all\n")
    with pytest.raises(TLSConfigError) as info:
        DefaultOpenSSLContextFactory(str(garbage), str(cert))
    assert str(info.value).startswith(f"cannot use TLS certificate '{cert}' with private key '{garbage}': ")
    assert "\n" not in str(info.value)
    with pytest.raises(EndpointStringError) as info:
        strports.service(f"ssl:0:privateKey={other_key}:certKey={cert}", echo_factory())
    assert "the private key does not match the certificate" in str(info.value)


def test_an_unreadable_key_is_clear(tmp_path, tls):
    key, cert = tls
    os.chmod(key, 0o600)
    if os.geteuid() != 0:
        os.chmod(key, 0)
        with pytest.raises(TLSConfigError) as info:
            DefaultOpenSSLContextFactory(str(key), str(cert))
        assert str(info.value) == f"cannot read private key file '{key}': Permission denied"
        return
    # root reads every file: ask as nobody, in a directory nobody may enter but not read the key from.
    helpers = pytest.importorskip("daemon_helpers")
    python, why = helpers.unprivileged_python()
    if python is None:
        pytest.skip(why)
    work = helpers.public_dir()
    try:
        os.rename(key, work / "server.key")
        os.rename(cert, work / "server.crt")
        os.chmod(work / "server.crt", 0o644)
        code = ("from twistdlite.ssl import DefaultOpenSSLContextFactory as F\n"
                "try:\n    F('server.key', 'server.crt')\nexcept Exception as e:\n    print(e)\n")
        launch_env = getattr(helpers, "launch_env", None) or getattr(helpers, "test_env")
        done = subprocess.run([python, "-c", code], cwd=work, env=launch_env(python),
                              capture_output=True, text=True, timeout=60, **helpers._user_kwargs(helpers.NOBODY))
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    assert done.stdout.strip() == "cannot read private key file 'server.key': Permission denied", done.stderr
