"""Endpoint strings and classes: what each description builds, clear errors for malformed ones,
strports services, and systemd socket activation end to end (an inherited socket, LISTEN_FDS)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from netsupport import make_cert, run, until
from support import LineReader, connect, env, recv_until, run as run_twistdlite, stop_process, wait_exit
from twistdlite import endpoints, internet, protocol, reactor, strports
from twistdlite.error import EndpointStringError


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def test_server_strings_build_the_matching_endpoints(tmp_path):
    tcp = endpoints.serverFromString("tcp:8080:interface=127.0.0.1:backlog=5")
    assert type(tcp) is endpoints.TCP4ServerEndpoint
    assert (tcp.port, tcp.interface, tcp.backlog) == (8080, "127.0.0.1", 5)
    assert vars(endpoints.serverFromString(reactor, "tcp:port=80")) == vars(endpoints.TCP4ServerEndpoint(80))
    assert endpoints.serverFromString("8080").port == 8080  # a bare port is tcp, as in Twisted
    assert endpoints.serverFromString("tcp6:0").interface == "::"
    unix = endpoints.serverFromString(r"unix:/tmp/a\:b.sock:mode=660:lockfile=1")
    assert (unix.address, unix.mode, unix.wantPID) == ("/tmp/a:b.sock", 0o660, 1)
    assert endpoints.serverFromString("unix:address=/x.sock").mode == 0o666
    key, cert = make_cert(tmp_path)
    tls = endpoints.serverFromString(f"ssl:8443:privateKey={key}:certKey={cert}")
    assert type(tls) is endpoints.SSL4ServerEndpoint and tls.port == 8443
    assert tls.sslContextFactory.certificateFileName == str(cert)


def test_client_strings_build_the_matching_endpoints(tmp_path):
    tcp = endpoints.clientFromString("tcp:host=example.org:port=80:timeout=5:bindAddress=127.0.0.1")
    assert type(tcp) is endpoints.TCP4ClientEndpoint
    assert (tcp.host, tcp.port, tcp.timeout, tcp.bindAddress) == ("example.org", 80, 5.0, ("127.0.0.1", 0))
    assert endpoints.clientFromString(reactor, "tcp:localhost:8007").port == 8007
    unix = endpoints.clientFromString("unix:path=/run/x.sock:lockfile=1")
    assert (unix.path, unix.checkPID) == ("/run/x.sock", 1)
    key, cert = make_cert(tmp_path)
    cas = tmp_path / "cas"
    cas.mkdir()
    (cas / "ca.pem").write_bytes(cert.read_bytes())
    tls = endpoints.clientFromString(f"ssl:host=127.0.0.1:port=8443:hostname=localhost:caCertsDir={cas}")
    assert type(tls) is endpoints.SSL4ClientEndpoint and tls.sslContextFactory.hostname == "localhost"


@pytest.mark.parametrize("description,reason", [
    ("", "empty server endpoint description"),
    ("foo:1", "unknown endpoint type 'foo' (known: tcp, tcp6, unix, ssl, systemd)"),
    ("tcp:abc", "the port must be a number from 0 to 65535, not 'abc'"),
    ("tcp:70000", "the port must be a number from 0 to 65535, not '70000'"),
    ("tcp", "tcp needs port"),
    ("tcp:8080:bogus=1", "unknown parameter 'bogus' for tcp (known: port, interface, backlog)"),
    ("tcp:8080:backlog=-1", "backlog must not be negative, not '-1'"),
    ("tcp:0:interface=127.0.0.1:backlog=99999999999999999999",
     "backlog must be at most 2147483647, not '99999999999999999999'"),
    ("tcp:0:backlog=2147483648", "backlog must be at most 2147483647, not '2147483648'"),
    ("unix:/p.sock:backlog=2147483648", "backlog must be at most 2147483647, not '2147483648'"),
    ("tcp:99999999999999999999", "the port must be a number from 0 to 65535, not '99999999999999999999'"),
    ("unix:/p.sock:mode=99999999999999999999", "mode must be octal digits such as 660, not '99999999999999999999'"),
    ("tcp6:0:interface=127.0.0.1", "tcp6 listens on IPv6, and interface 127.0.0.1 is an IPv4 address: use "
                                   "tcp:0:interface=127.0.0.1 for IPv4, or an IPv6 address (such as ::1 or "
                                   "::ffff:127.0.0.1, escaping each colon with a backslash)"),
    ("tcp:8080:9090", "unexpected field '9090' (tcp takes port positional field)"),
    ("tcp:port=1:interface=x:9", "a positional field comes after a name=value field; if the value of "
                                 "interface has colons in it, escape each one with a backslash: interface=x\\:9"),
    ("tcp:80:interface=::1", "a positional field comes after a name=value field; if the value of "
                             "interface has colons in it, escape each one with a backslash: interface=\\:\\:1"),
    ("tcp:80:interface=fe80::1:backlog=5", "a positional field comes after a name=value field; if the value "
                                           "of interface has colons in it, escape each one with a backslash: "
                                           "interface=fe80\\:\\:1"),
    ("tcp:\uff18\uff10", "the port must be a number from 0 to 65535, not '\uff18\uff10'"),
    ("\uff18\uff10", "the port must be a number from 0 to 65535, not '\uff18\uff10'"),
    ("tcp:+80", "the port must be a number from 0 to 65535, not '+80'"),
    ("tcp:80:backlog=\u0665", "backlog must be a whole number, not '\u0665'"),
    ("unix:/p.sock:mode=\uff16\uff16\uff10", "mode must be octal digits such as 660, not '\uff16\uff16\uff10'"),
    ("tcp:port=1:port=2", "'port' is given twice"),
    ("tcp:8080\\", "it ends with a lone backslash"),
    ("unix:", "unix needs address"),
    ("unix:/p.sock:mode=999", "mode must be octal digits such as 660, not '999'"),
    ("unix:/p.sock:lockfile=yes", "lockfile must be 0 or 1, not 'yes'"),
    ("ssl:8443:privateKey=/nonexistent.pem", "private key file '/nonexistent.pem' does not exist"),
    ("systemd:domain=INET", "systemd needs index=N or name=NAME"),
    ("systemd:domain=FOO:index=0", "domain must be one of INET, INET6, UNIX, not 'FOO'"),
    ("systemd:domain=INET:index=0:name=x", "give index or name, not both"),
])
def test_malformed_server_strings_are_clear_value_errors(description, reason, monkeypatch):
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    with pytest.raises(EndpointStringError) as info:
        strports.service(description, protocol.Factory.forProtocol(Echo))
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    if description:
        assert message == f"bad server endpoint description {description!r}: {reason}"
    else:
        assert message == reason
    assert "\n" not in message


@pytest.mark.parametrize("description,reason", [
    ("tcp:host=h", "tcp needs port"),
    ("tcp:port=80", "tcp needs host"),
    ("tcp:h:80:timeout=soon", "timeout must be a number, not 'soon'"),
    ("unix:timeout=1", "unix needs path"),
    ("udp:h:1", "unknown endpoint type 'udp' (known: tcp, tcp6, unix, ssl)"),
    ("ssl:host=h:port=1:caCertsDir=/nonexistent",
     "caCertsDir '/nonexistent' does not exist (it names a directory of CA certificates)"),
    ("tcp:host=h:port=\uff18\uff10", "the port must be a number from 0 to 65535, not '\uff18\uff10'"),
    ("tcp:h:80:timeout=\uff15", "timeout must be a number, not '\uff15'"),
    ("tcp:h:80:timeout=nan", "timeout must be a number, not 'nan'"),
    ("tcp:h:80:timeout=inf", "timeout must be at most 86400 seconds, not 'inf'"),
    ("tcp:h:80:timeout=1e400", "timeout must be at most 86400 seconds, not '1e400'"),
    ("tcp:h:80:timeout=1e12", "timeout must be at most 86400 seconds, not '1e12'"),
    ("tcp:h:80:timeout=-1", "timeout must not be negative, not '-1'"),
])
def test_malformed_client_strings_are_clear_value_errors(description, reason):
    with pytest.raises(EndpointStringError) as info:
        endpoints.clientFromString(description)
    assert str(info.value) == f"bad client endpoint description {description!r}: {reason}"


def test_tcp6_listens_on_ipv6_or_not_at_all():
    """An IPv4 interface for tcp6 is refused above; an IPv6 one (v4-mapped included) listens on IPv6."""
    async def main():
        for description in ("tcp6:0:interface=\\:\\:1", "tcp6:0:interface=\\:\\:ffff\\:127.0.0.1"):
            port = strports.listen(description, protocol.Factory.forProtocol(Echo))
            try:
                assert port.getHost().type == "TCP" and ":" in port.getHost().host, port.getHost()
            finally:
                await port.stopListening()

    run(main())


def test_escaped_colons_and_ascii_ports(tmp_path):
    assert endpoints.serverFromString(r"tcp:8080:interface=\:\:1").interface == "::1"
    assert endpoints.serverFromString("tcp: 8080 ").port == 8080  # spaces around the digits, as int() allows
    cert_file = tmp_path / "ca.pem"
    cert_file.write_text("")
    with pytest.raises(EndpointStringError) as info:
        endpoints.clientFromString(f"ssl:host=h:port=1:caCertsDir={cert_file}")
    assert str(info.value).endswith(f"caCertsDir '{cert_file}' is not a directory "
                                    "(it names a directory of CA certificates)")
    assert "file" not in str(info.value).split(": ", 1)[1].replace(str(cert_file), "")


def test_endpoint_classes_accept_or_omit_the_reactor():
    for args in ((reactor, 8080), (8080,)):
        endpoint = endpoints.TCP4ServerEndpoint(*args, interface="127.0.0.1")
        assert (endpoint.port, endpoint.interface, endpoint.backlog) == (8080, "127.0.0.1", 50)
    assert endpoints.TCP4ClientEndpoint(reactor, "h", 1, timeout=3).timeout == 3
    with pytest.raises(TypeError):
        endpoints.TCP4ClientEndpoint("h")
    with pytest.raises(TypeError):
        endpoints.TCP4ServerEndpoint(8080, nonsense=1)


def test_strports_service_and_listen():
    factory = protocol.Factory.forProtocol(Echo)
    service = strports.service("tcp:0:interface=127.0.0.1", factory)
    assert type(service) is internet.TCPServer

    async def main():
        service.privilegedStartService()
        number = service.getHost().port
        await service.startService()
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        writer.write(b"via strports\n")
        assert await reader.readline() == b"via strports\n"
        writer.close()
        await service.stopService()

        port = strports.listen("tcp:0:interface=127.0.0.1", factory)
        await until(lambda: port.server is not None)
        assert port.getHost().port > 0
        await port.stopListening()

    run(main())


def test_systemd_listen_fd_checks_the_environment():
    fd = endpoints.systemd_listen_fd
    assert fd(1, environ={"LISTEN_FDS": "2", "LISTEN_PID": "42"}, pid=42) == 4
    assert fd(name="web", environ={"LISTEN_FDS": "2", "LISTEN_PID": "42", "LISTEN_FDNAMES": "ctl:web"}, pid=42) == 4
    with pytest.raises(ValueError, match="LISTEN_FDS is not set"):
        fd(0, environ={}, pid=42)
    with pytest.raises(ValueError, match=r"passed to PID 41, not to this process \(42\)"):
        fd(0, environ={"LISTEN_FDS": "1", "LISTEN_PID": "41"}, pid=42)
    with pytest.raises(ValueError, match="index 1 is out of range: 1 socket passed"):
        fd(1, environ={"LISTEN_FDS": "1", "LISTEN_PID": "42"}, pid=42)
    with pytest.raises(ValueError, match="no socket named 'db'"):
        fd(name="db", environ={"LISTEN_FDS": "1", "LISTEN_PID": "42", "LISTEN_FDNAMES": "web"}, pid=42)


SYSTEMD_TAC = textwrap.dedent("""\
    from twistdlite import protocol, service, strports

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    application = service.Application("activated")
    strports.service("systemd:domain=INET:index=0", protocol.Factory.forProtocol(Echo)).setServiceParent(application)
""")

# Puts the inherited socket at fd 3 and names this very process in LISTEN_PID, as systemd does.
ACTIVATE = textwrap.dedent("""\
    import os, sys
    fd = int(sys.argv[1])
    os.dup2(fd, 3)
    os.close(fd)
    os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
    os.execv(sys.executable, [sys.executable, "-m", "twistdlite", *sys.argv[2:]])
""")


def test_systemd_socket_activation_serves_the_inherited_socket(tmp_path):
    tac = tmp_path / "activated.tac"
    tac.write_text(SYSTEMD_TAC)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    number = listener.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", ACTIVATE, str(listener.fileno()), "-noy", str(tac)],
                            cwd=tmp_path, env=env(), pass_fds=[listener.fileno()],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    listener.close()  # only the child holds it now
    try:
        out = LineReader(proc)
        out.wait_for(rf"Factory starting on {number}")
        with connect(number) as sock:
            sock.sendall(b"activated\n")
            assert recv_until(sock) == b"activated\n"
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0, out.rest()
    finally:
        stop_process(proc)


def test_systemd_string_without_activation_fails_to_load_with_one_line(tmp_path):
    tac = tmp_path / "activated.tac"
    tac.write_text(SYSTEMD_TAC)
    done = run_twistdlite(["-noy", str(tac)], cwd=tmp_path, LISTEN_FDS="", LISTEN_PID="")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "twistdlite: error: error while running " + str(tac) + ": EndpointStringError: bad server endpoint "
        "description 'systemd:domain=INET:index=0': no sockets were passed to this process (LISTEN_FDS is not "
        "set; start it from a systemd socket unit)")


def test_a_tac_with_a_malformed_string_fails_to_load_with_one_line(tmp_path):
    tac = tmp_path / "bad.tac"
    tac.write_text("from twistdlite import protocol, service, strports\n"
                   "application = service.Application('bad')\n"
                   "strports.service('tcp:eighty', protocol.Factory()).setServiceParent(application)\n")
    done = run_twistdlite(["-noy", str(tac)], cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"twistdlite: error: error while running {tac}: EndpointStringError: bad server endpoint description "
        "'tcp:eighty': the port must be a number from 0 to 65535, not 'eighty'")
    assert not (tmp_path / "twistd.pid").exists()


def test_a_backlog_too_large_for_listen_is_named_as_the_backlog():
    from twistdlite.error import CannotListenError

    server = internet.TCPServer(0, protocol.Factory.forProtocol(Echo), backlog=2**40, interface="127.0.0.1")
    with pytest.raises(CannotListenError, match=r"^Couldn't listen on 127.0.0.1:0: invalid backlog 1099511627776: "):
        server.privilegedStartService()
