"""Endpoints, mirroring ``twisted.internet.endpoints``: where to listen or connect, as objects or strings.

A server endpoint has ``listen(factory)``, returning a Deferred (also
awaitable) of the listening port (``port.getHost()``, ``port.stopListening()``);
a client endpoint has ``connect(factory)``, returning a Deferred (also
awaitable) of the connected protocol, which fails with a
``twistdlite.error.ConnectError``.
The ``reactor`` argument that Twisted's constructors take first is accepted
for porting and may be left out: ``TCP4ServerEndpoint(reactor, 8080)`` and
``TCP4ServerEndpoint(8080)`` are the same.

Strings (``serverFromString([reactor,] description)``,
``clientFromString([reactor,] description)``) use Twisted's syntax: fields
separated by ``:``, ``name=value`` for keyword fields, ``\\`` escaping a ``:``
or ``=``. Servers: ``tcp:PORT[:interface=H][:backlog=N]``, ``tcp6:...``,
``unix:PATH[:mode=660][:lockfile=1][:backlog=N]``,
``ssl:PORT:privateKey=K[:certKey=C][:interface=H][:backlog=N]``,
``systemd:domain=INET:index=N`` (or ``name=NAME``). Clients:
``tcp:host=H:port=P[:timeout=T][:bindAddress=H]``, ``unix:path=P[:timeout=T][:lockfile=1]``,
``ssl:host=H:port=P[:hostname=N][:caCertsDir=D][:certKey=C][:privateKey=K]``.
A malformed string raises :class:`twistdlite.error.EndpointStringError` (a ValueError).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Optional

from twistdlite.error import EndpointStringError

__all__ = [
    "TCP4ServerEndpoint",
    "TCP6ServerEndpoint",
    "TCP4ClientEndpoint",
    "TCP6ClientEndpoint",
    "HostnameEndpoint",
    "UNIXServerEndpoint",
    "UNIXClientEndpoint",
    "SSL4ServerEndpoint",
    "SSL4ClientEndpoint",
    "AdoptedStreamServerEndpoint",
    "serverFromString",
    "clientFromString",
    "connectProtocol",
    "systemd_listen_fd",
]

_REQUIRED = object()


def _is_reactor(value: Any) -> bool:
    """True for what Twisted code passes as its reactor (our reactor module, a loop...)."""
    if isinstance(value, (int, float, str, bytes, os.PathLike)) or value is None:
        return False
    import types

    if isinstance(value, types.ModuleType):
        return True
    return hasattr(value, "callLater") or hasattr(value, "call_later")


def _bind(cls_name: str, args: tuple, kwargs: dict, spec: list) -> dict:
    """Bind ``args``/``kwargs`` to ``spec`` ([(name, default)...]), dropping a leading reactor."""
    if args and _is_reactor(args[0]):
        args = args[1:]
    kwargs = dict(kwargs)
    kwargs.pop("reactor", None)
    names = [name for name, _ in spec]
    if len(args) > len(names):
        raise TypeError(f"{cls_name}() takes at most {len(names)} arguments ({len(args)} given)")
    bound = dict(zip(names, args))
    for name, value in kwargs.items():
        if name not in names:
            raise TypeError(f"{cls_name}() got an unexpected keyword argument {name!r}")
        if name in bound:
            raise TypeError(f"{cls_name}() got multiple values for argument {name!r}")
        bound[name] = value
    for name, default in spec:
        if name not in bound:
            if default is _REQUIRED:
                raise TypeError(f"{cls_name}() missing required argument {name!r}")
            bound[name] = default
    return bound


def _listening(port: Any) -> Any:
    """Start ``port``: a task of the started port when a loop runs, else bind now and serve later."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        from twistdlite._aio import Done

        return Done(port.startListening())

    async def start() -> Any:
        await port.start()
        return port

    return loop.create_task(start())


def _connecting(connector: Any) -> Any:
    """Start ``connector`` with its outcome going to a Future (cancel it to stop connecting).

    Before the event loop exists the Future is a :class:`twistdlite._aio.LateFuture`
    and the attempt begins once the loop runs.
    """
    from twistdlite._aio import reactor_future

    future = reactor_future()
    connector.outcome = future

    def cancelled(done: Any) -> None:
        if done.cancelled() and connector.state == "connecting":
            connector.stopConnecting()

    future.add_done_callback(cancelled)
    connector.connect()
    return future


class _ServerEndpoint:
    """What server endpoints share: ``listen(factory)`` over a port object."""

    _spec: list = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.update(_bind(type(self).__name__, args, kwargs, self._spec))

    def _make_port(self, factory: Any) -> Any:
        raise NotImplementedError

    def _service(self, factory: Any) -> Any:
        """The service that serves ``factory`` here (used by ``strports.service``)."""
        raise NotImplementedError

    def listen(self, protocolFactory: Any) -> Any:
        """Listen with ``protocolFactory``; returns a Deferred (also awaitable) of the listening port."""
        from twistdlite._aio import as_deferred

        return as_deferred(_listening(self._make_port(protocolFactory)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._spec)
        return f"{type(self).__name__}({fields})"


class _ClientEndpoint:
    """What client endpoints share: ``connect(factory)`` over a connector."""

    _spec: list = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.update(_bind(type(self).__name__, args, kwargs, self._spec))

    def _make_connector(self, factory: Any) -> Any:
        raise NotImplementedError

    def connect(self, protocolFactory: Any) -> Any:
        """Connect; returns a Deferred (also awaitable) of the connected protocol (cancel it to stop connecting)."""
        from twistdlite._aio import as_deferred

        return as_deferred(_connecting(self._make_connector(protocolFactory)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._spec
                           if name not in ("sslContextFactory",))
        return f"{type(self).__name__}({fields})"


class TCP4ServerEndpoint(_ServerEndpoint):
    """Listen on TCP: ``TCP4ServerEndpoint([reactor,] port, backlog=50, interface='')``."""

    _spec = [("port", _REQUIRED), ("backlog", 50), ("interface", "")]

    def _make_port(self, factory: Any) -> Any:
        from twistdlite._ports import TCPPort

        return TCPPort(self.port, factory, self.backlog, self.interface)

    def _service(self, factory: Any) -> Any:
        from twistdlite.internet import TCPServer

        return TCPServer(self.port, factory, self.backlog, self.interface)


class TCP6ServerEndpoint(TCP4ServerEndpoint):
    """Listen on TCP over IPv6: ``TCP6ServerEndpoint([reactor,] port, backlog=50, interface='::')``."""

    _spec = [("port", _REQUIRED), ("backlog", 50), ("interface", "::")]


class TCP4ClientEndpoint(_ClientEndpoint):
    """Connect over TCP: ``TCP4ClientEndpoint([reactor,] host, port, timeout=30, bindAddress=None)``."""

    _spec = [("host", _REQUIRED), ("port", _REQUIRED), ("timeout", 30), ("bindAddress", None)]

    def _make_connector(self, factory: Any) -> Any:
        from twistdlite._connectors import TCPConnector

        return TCPConnector(self.host, self.port, factory, self.timeout, self.bindAddress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host}:{self.port})"


class TCP6ClientEndpoint(TCP4ClientEndpoint):
    """Connect over TCP to an IPv6 address: same arguments as :class:`TCP4ClientEndpoint`."""


class HostnameEndpoint(TCP4ClientEndpoint):
    """Connect over TCP to a host name (IPv4 or IPv6, the first that answers): same arguments."""


class SSL4ServerEndpoint(_ServerEndpoint):
    """Listen over TLS: ``SSL4ServerEndpoint([reactor,] port, sslContextFactory, backlog=50, interface='')``."""

    _spec = [("port", _REQUIRED), ("sslContextFactory", _REQUIRED), ("backlog", 50), ("interface", "")]

    def _make_port(self, factory: Any) -> Any:
        from twistdlite._ports import SSLPort

        return SSLPort(self.port, factory, self.sslContextFactory, self.backlog, self.interface)

    def _service(self, factory: Any) -> Any:
        from twistdlite.internet import SSLServer

        return SSLServer(self.port, factory, self.sslContextFactory, self.backlog, self.interface)


class SSL4ClientEndpoint(_ClientEndpoint):
    """Connect over TLS: ``SSL4ClientEndpoint([reactor,] host, port, sslContextFactory, timeout=30, bindAddress=None)``."""

    _spec = [("host", _REQUIRED), ("port", _REQUIRED), ("sslContextFactory", _REQUIRED), ("timeout", 30),
             ("bindAddress", None)]

    def _make_connector(self, factory: Any) -> Any:
        from twistdlite._connectors import SSLConnector

        return SSLConnector(self.host, self.port, factory, self.sslContextFactory, self.timeout,
                            self.bindAddress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host}:{self.port})"


class UNIXServerEndpoint(_ServerEndpoint):
    """Listen on a UNIX socket: ``UNIXServerEndpoint([reactor,] address, backlog=50, mode=0o666, wantPID=0)``."""

    _spec = [("address", _REQUIRED), ("backlog", 50), ("mode", 0o666), ("wantPID", 0)]

    def _make_port(self, factory: Any) -> Any:
        from twistdlite._ports import UNIXPort

        return UNIXPort(self.address, factory, self.backlog, self.mode, bool(self.wantPID))

    def _service(self, factory: Any) -> Any:
        from twistdlite.internet import UNIXServer

        return UNIXServer(self.address, factory, self.backlog, self.mode, bool(self.wantPID))


class UNIXClientEndpoint(_ClientEndpoint):
    """Connect to a UNIX socket: ``UNIXClientEndpoint([reactor,] path, timeout=30, checkPID=0)``."""

    _spec = [("path", _REQUIRED), ("timeout", 30), ("checkPID", 0)]

    def _make_connector(self, factory: Any) -> Any:
        from twistdlite._connectors import UNIXConnector

        return UNIXConnector(self.path, factory, self.timeout, bool(self.checkPID))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({os.fsdecode(self.path)!r})"


class AdoptedStreamServerEndpoint(_ServerEndpoint):
    """Listen on an inherited listening socket: ``AdoptedStreamServerEndpoint([reactor,] fileno, addressFamily)``."""

    _spec = [("fileno", _REQUIRED), ("addressFamily", _REQUIRED)]

    def _make_port(self, factory: Any) -> Any:
        from twistdlite._ports import AdoptedPort

        return AdoptedPort(self.fileno, self.addressFamily, factory)

    def _service(self, factory: Any) -> Any:
        from twistdlite.internet import AdoptedStreamServer

        return AdoptedStreamServer(self.fileno, self.addressFamily, factory)


def connectProtocol(endpoint: Any, protocol: Any) -> Any:
    """Connect an already-built ``protocol`` through ``endpoint``; returns the awaitable of it."""
    from twistdlite.protocol import Factory

    factory = Factory()
    factory.noisy = False
    factory.buildProtocol = lambda addr: protocol  # type: ignore[method-assign]
    return endpoint.connect(factory)


# -- endpoint strings ------------------------------------------------------------------


def _tokens(description: str) -> tuple[list, dict]:
    """Split ``description`` into positional fields and ``name=value`` fields (``\\`` escapes)."""
    fields: list = []
    current: list = []
    escaped = False
    for char in description:
        if escaped:
            current.append(("", char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = []
        else:
            current.append((char, char))
    if escaped:
        raise ValueError("it ends with a lone backslash")
    fields.append(current)
    args: list = []
    kwargs: dict = {}
    last_name = ""
    for index, field in enumerate(fields):
        plain = [marker for marker, _ in field]
        if "=" in plain:
            split = plain.index("=")
            name = "".join(char for _, char in field[:split])
            value = "".join(char for _, char in field[split + 1:])
            if not name:
                raise ValueError(f"field {'='+value!r} has no name")
            if name in kwargs:
                raise ValueError(f"{name!r} is given twice")
            kwargs[name] = value
            last_name = name
        else:
            if kwargs:
                raise ValueError("a positional field comes after a name=value field"
                                 + _colon_hint(last_name, kwargs[last_name], fields[index:]))
            args.append("".join(char for _, char in field))
    return args, kwargs


def _colon_hint(name: str, value: str, rest: list) -> str:
    """The hint for ``name=value`` followed by positional fields: a value with colons (``::1``) needs ``\\:``."""
    parts = [value]
    for field in rest:
        if "=" in [marker for marker, _ in field]:
            break
        parts.append("".join(char for _, char in field))
    escaped = "\\:".join(part.replace("\\", "\\\\") for part in parts)
    return f"; if the value of {name} has colons in it, escape each one with a backslash: {name}={escaped}"


def _ascii_digits(value: Any) -> bool:
    """True for a string of ASCII digits 0-9 (``int()`` also takes other scripts' digits, such as "８０")."""
    return isinstance(value, str) and value.isascii() and value.isdigit()


def _port_number(value: Any) -> int:
    text = value.strip() if isinstance(value, str) else value
    if not _ascii_digits(text) or not 0 <= int(text) <= 65535:
        raise ValueError(f"the port must be a number from 0 to 65535, not {value!r}")
    return int(text)


#: The largest backlog ``listen()`` takes (a C int; the kernel lowers it to ``somaxconn``).
_MAX_BACKLOG = 2**31 - 1
#: The longest client ``timeout`` an endpoint string may give, in seconds (one day).
_MAX_TIMEOUT = 86400.0


def _positive_int(name: str, value: Any, maximum: Optional[int] = None) -> int:
    number = _whole_number(name, value)
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum}, not {value!r}")
    return number


def _whole_number(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and text.startswith("-") and _ascii_digits(text[1:]):
            raise ValueError(f"{name} must not be negative, not {value!r}")
        if not _ascii_digits(text):
            raise ValueError(f"{name} must be a whole number, not {value!r}")
        number = int(text)
    if number < 0:
        raise ValueError(f"{name} must not be negative, not {value!r}")
    return number


def _number(name: str, value: Any, maximum: float = _MAX_TIMEOUT) -> float:
    import math

    if isinstance(value, str) and not value.isascii():
        raise ValueError(f"{name} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if number < 0:
        raise ValueError(f"{name} must not be negative, not {value!r}")
    if number > maximum:  # infinity too
        raise ValueError(f"{name} must be at most {maximum:g} seconds, not {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if value in ("0", "1"):
        return value == "1"
    raise ValueError(f"{name} must be 0 or 1, not {value!r}")


def _mode(value: Any) -> int:
    try:
        if not value.isascii():
            raise ValueError(value)
        mode = int(value, 8)
    except (TypeError, ValueError):
        raise ValueError(f"mode must be octal digits such as 660, not {value!r}") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode must be at most 7777, not {value!r}")
    return mode


def _take(kind: str, args: list, kwargs: dict, positional: list, allowed: list) -> dict:
    """Map positional fields onto ``positional`` names and check every name is ``allowed``."""
    if len(args) > len(positional):
        extra = args[len(positional)]
        raise ValueError(f"unexpected field {extra!r} ({kind} takes "
                         f"{' and '.join(positional) or 'no'} positional field{'s' if len(positional) != 1 else ''})")
    values = dict(kwargs)
    for name, value in zip(positional, args):
        if name in values:
            raise ValueError(f"{name} is given twice")
        values[name] = value
    for name in values:
        if name not in allowed:
            raise ValueError(f"unknown parameter {name!r} for {kind} (known: {', '.join(allowed)})")
    return values


def _require(kind: str, values: dict, name: str) -> Any:
    if name not in values or values[name] == "":
        raise ValueError(f"{kind} needs {name}")
    return values[name]


def _server_tcp(args: list, kwargs: dict, kind: str = "tcp") -> Any:
    values = _take(kind, args, kwargs, ["port"], ["port", "interface", "backlog"])
    port = _port_number(_require(kind, values, "port"))
    backlog = _positive_int("backlog", values.get("backlog", 50), _MAX_BACKLOG)
    default_interface = "::" if kind == "tcp6" else ""
    interface = values.get("interface", default_interface)
    if kind == "tcp6" and _is_ipv4(interface):
        raise ValueError(f"tcp6 listens on IPv6, and interface {interface} is an IPv4 address: use "
                         f"tcp:{port}:interface={interface} for IPv4, or an IPv6 address (such as ::1 or "
                         f"::ffff:{interface}, escaping each colon with a backslash)")
    cls = TCP6ServerEndpoint if kind == "tcp6" else TCP4ServerEndpoint
    return cls(port, backlog, interface)


def _is_ipv4(address: str) -> bool:
    """True for an IPv4 address literal (``127.0.0.1``)."""
    try:
        socket.inet_pton(socket.AF_INET, address)
    except (OSError, ValueError):
        return False
    return True


def _server_unix(args: list, kwargs: dict) -> Any:
    values = _take("unix", args, kwargs, ["address"], ["address", "mode", "lockfile", "backlog"])
    address = _require("unix", values, "address")
    mode = _mode(values["mode"]) if "mode" in values else 0o666
    want_pid = _flag("lockfile", values["lockfile"]) if "lockfile" in values else False
    backlog = _positive_int("backlog", values.get("backlog", 50), _MAX_BACKLOG)
    return UNIXServerEndpoint(address, backlog, mode, want_pid)


def _server_ssl(args: list, kwargs: dict) -> Any:
    values = _take("ssl", args, kwargs, ["port"],
                   ["port", "privateKey", "certKey", "interface", "backlog", "sslmethod"])
    port = _port_number(_require("ssl", values, "port"))
    backlog = _positive_int("backlog", values.get("backlog", 50), _MAX_BACKLOG)
    key = values.get("privateKey", "server.pem")
    cert = values.get("certKey", key)
    from twistdlite.ssl import DefaultOpenSSLContextFactory, TLSConfigError

    try:
        context = DefaultOpenSSLContextFactory(key, cert)
    except TLSConfigError as exc:
        raise ValueError(str(exc)) from None
    return SSL4ServerEndpoint(port, context, backlog, values.get("interface", ""))


_FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}


def systemd_listen_fd(index: Optional[int] = None, name: Optional[str] = None,
                      environ: Optional[dict] = None, pid: Optional[int] = None) -> int:
    """The file descriptor of a socket passed by systemd (``LISTEN_FDS``/``LISTEN_PID``/``LISTEN_FDNAMES``).

    ``ValueError`` with the reason when no such socket was passed to this process.
    """
    environ = os.environ if environ is None else environ
    pid = os.getpid() if pid is None else pid
    count_text = environ.get("LISTEN_FDS")
    if not count_text:
        raise ValueError("no sockets were passed to this process (LISTEN_FDS is not set; "
                         "start it from a systemd socket unit)")
    listen_pid = environ.get("LISTEN_PID", "")
    if listen_pid.strip() != str(pid):
        raise ValueError(f"the sockets in LISTEN_FDS were passed to PID {listen_pid or '(unset)'}, "
                         f"not to this process ({pid})")
    try:
        count = int(count_text)
    except ValueError:
        raise ValueError(f"LISTEN_FDS must be a number, not {count_text!r}") from None
    if name is not None:
        names = environ.get("LISTEN_FDNAMES", "").split(":")
        if name not in names[:count]:
            raise ValueError(f"no socket named {name!r} was passed (LISTEN_FDNAMES={environ.get('LISTEN_FDNAMES', '')!r})")
        index = names.index(name)
    if index is None:
        raise ValueError("systemd needs index or name")
    if not 0 <= index < count:
        raise ValueError(f"index {index} is out of range: {count} socket{'s' if count != 1 else ''} "
                         f"passed (LISTEN_FDS={count})")
    return 3 + index


def _server_systemd(args: list, kwargs: dict) -> Any:
    values = _take("systemd", args, kwargs, [], ["domain", "index", "name"])
    domain = _require("systemd", values, "domain")
    if domain not in _FAMILIES:
        raise ValueError(f"domain must be one of {', '.join(_FAMILIES)}, not {domain!r}")
    if "index" in values and "name" in values:
        raise ValueError("give index or name, not both")
    if "index" not in values and "name" not in values:
        raise ValueError("systemd needs index=N or name=NAME")
    index = _positive_int("index", values["index"]) if "index" in values else None
    fileno = systemd_listen_fd(index, values.get("name"))
    return AdoptedStreamServerEndpoint(fileno, _FAMILIES[domain])


_SERVERS: dict = {
    "tcp": _server_tcp,
    "tcp6": lambda args, kwargs: _server_tcp(args, kwargs, "tcp6"),
    "unix": _server_unix,
    "ssl": _server_ssl,
    "systemd": _server_systemd,
}


def _client_tcp(args: list, kwargs: dict, kind: str = "tcp") -> dict:
    values = _take(kind, args, kwargs, ["host", "port"], ["host", "port", "timeout", "bindAddress"]
                   + (["hostname", "caCertsDir", "certKey", "privateKey"] if kind == "ssl" else []))
    host = _require(kind, values, "host")
    port = _port_number(_require(kind, values, "port"))
    timeout = _number("timeout", values.get("timeout", 30))
    bind = values.get("bindAddress")
    bind_address = (bind, 0) if bind else None
    return {"host": host, "port": port, "timeout": timeout, "bindAddress": bind_address, "values": values}


def _client_ssl(args: list, kwargs: dict) -> Any:
    parsed = _client_tcp(args, kwargs, "ssl")
    values = parsed.pop("values")
    from twistdlite.ssl import ClientContextFactory, TLSConfigError, optionsForClientTLS

    hostname = values.get("hostname")
    ca_dir = values.get("caCertsDir")
    if ca_dir is not None and not os.path.isdir(ca_dir):
        what = "is not a directory" if os.path.exists(ca_dir) else "does not exist"
        raise ValueError(f"caCertsDir {ca_dir!r} {what} (it names a directory of CA certificates)")
    try:
        if hostname is not None or "caCertsDir" in values or "certKey" in values:
            context: Any = optionsForClientTLS(hostname, values.get("caCertsDir"), values.get("certKey"),
                                               values.get("privateKey"))
        else:
            context = ClientContextFactory()  # as Twisted: no hostname, no CA -> no verification
    except TLSConfigError as exc:
        raise ValueError(str(exc)) from None
    return SSL4ClientEndpoint(parsed["host"], parsed["port"], context, parsed["timeout"], parsed["bindAddress"])


def _client_tcp_endpoint(args: list, kwargs: dict, kind: str = "tcp") -> Any:
    parsed = _client_tcp(args, kwargs, kind)
    parsed.pop("values")
    cls = TCP6ClientEndpoint if kind == "tcp6" else TCP4ClientEndpoint
    return cls(**parsed)


def _client_unix(args: list, kwargs: dict) -> Any:
    values = _take("unix", args, kwargs, ["path"], ["path", "timeout", "lockfile"])
    path = _require("unix", values, "path")
    timeout = _number("timeout", values.get("timeout", 30))
    check_pid = _flag("lockfile", values["lockfile"]) if "lockfile" in values else False
    return UNIXClientEndpoint(path, timeout, check_pid)


_CLIENTS: dict = {
    "tcp": _client_tcp_endpoint,
    "tcp6": lambda args, kwargs: _client_tcp_endpoint(args, kwargs, "tcp6"),
    "unix": _client_unix,
    "ssl": _client_ssl,
}


def _parse(description: Any, table: dict, side: str) -> Any:
    if not isinstance(description, str):
        raise EndpointStringError(f"an endpoint description must be a string, not {type(description).__name__}")
    text = description.strip()
    if not text:
        raise EndpointStringError(f"empty {side} endpoint description")
    if side == "server" and text.isdigit():
        text = "tcp:" + text  # a bare port number, as Twisted's strports accepts
    try:
        args, kwargs = _tokens(text)
    except ValueError as exc:
        raise EndpointStringError(f"bad {side} endpoint description {description!r}: {exc}") from None
    kind = args.pop(0).strip().lower() if args else ""
    parser: Optional[Callable[..., Any]] = table.get(kind)
    if parser is None:
        raise EndpointStringError(
            f"bad {side} endpoint description {description!r}: unknown endpoint type {kind!r} "
            f"(known: {', '.join(table)})"
        )
    try:
        return parser(args, kwargs)
    except ValueError as exc:
        raise EndpointStringError(f"bad {side} endpoint description {description!r}: {exc}") from None


def serverFromString(*args: Any) -> Any:
    """The server endpoint a description names: ``serverFromString([reactor,] 'tcp:8080:interface=127.0.0.1')``."""
    description = _description("serverFromString", args)
    return _parse(description, _SERVERS, "server")


def clientFromString(*args: Any) -> Any:
    """The client endpoint a description names: ``clientFromString([reactor,] 'tcp:host=example.org:port=80')``."""
    description = _description("clientFromString", args)
    return _parse(description, _CLIENTS, "client")


def _description(name: str, args: tuple) -> Any:
    if len(args) == 2 and _is_reactor(args[0]):
        return args[1]
    if len(args) == 1:
        return args[0]
    raise TypeError(f"{name}() takes ([reactor,] description)")
