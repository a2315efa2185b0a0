"""TLS context factories over the standard library's ``ssl`` module, mirroring ``twisted.internet.ssl``.

Wherever a ``contextFactory`` is asked for (``SSLServer``, ``listenSSL``,
``SSLClient``...), either an ``ssl.SSLContext`` or an object with a
``getContext()`` method returning one is accepted.

:class:`DefaultOpenSSLContextFactory` loads a private key and certificate
when it is made, so a missing, unreadable or mismatched pair fails at once
with a :class:`TLSConfigError` naming the files; it pickles without its
context, which is rebuilt from the files on first use: for a server, when its
port binds, in ``privilegedStartService``, before privileges are dropped.
"""

from __future__ import annotations

import os
from typing import Any, Optional

__all__ = [
    "TLSConfigError",
    "ContextFactory",
    "DefaultOpenSSLContextFactory",
    "ClientContextFactory",
    "optionsForClientTLS",
    "server_context",
    "client_context",
]


class TLSConfigError(ValueError):
    """A TLS key, certificate or context could not be loaded or used."""


def _check_file(path: Any, what: str) -> str:
    try:
        name = os.fsdecode(path)
    except TypeError:
        raise TLSConfigError(f"the {what} file name must be a path, not {path!r}") from None
    if not name:
        raise TLSConfigError(f"no {what} file given")
    if not os.path.exists(name):
        raise TLSConfigError(f"{what} file {name!r} does not exist")
    if os.path.isdir(name):
        raise TLSConfigError(f"{what} file {name!r} is a directory")
    try:
        with open(name, "rb"):
            pass
    except OSError as exc:
        raise TLSConfigError(f"cannot read {what} file {name!r}: {exc.strerror}") from None
    return name


def _describe_ssl_error(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason == "KEY_VALUES_MISMATCH":
        return "the private key does not match the certificate"
    if reason:
        return reason.replace("_", " ").lower()
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def load_cert_chain(context: Any, certificateFileName: Any, privateKeyFileName: Any) -> None:
    """Load a certificate and its key into ``context``; :class:`TLSConfigError` naming the files on failure."""
    import ssl

    key = _check_file(privateKeyFileName, "private key")
    cert = _check_file(certificateFileName, "certificate")
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TLSConfigError(
            f"cannot use TLS certificate {cert!r} with private key {key!r}: {_describe_ssl_error(exc)}"
        ) from None


class ContextFactory:
    """The base of context factories: ``getContext()`` returns an ``ssl.SSLContext``."""

    isClient = 0

    def getContext(self) -> Any:
        """Return the ``ssl.SSLContext`` to use."""
        raise NotImplementedError


class DefaultOpenSSLContextFactory(ContextFactory):
    """A server context from a PEM private key file and a PEM certificate (chain) file.

    ``sslmethod`` is accepted for porting and ignored: the context negotiates the
    best protocol both sides support (TLS 1.2 at least).
    """

    _context: Any = None

    def __init__(self, privateKeyFileName: Any, certificateFileName: Any, sslmethod: Any = None,
                 _contextFactory: Any = None) -> None:
        self.privateKeyFileName = privateKeyFileName
        self.certificateFileName = certificateFileName
        self.sslmethod = sslmethod
        self.cacheContext()

    def cacheContext(self) -> None:
        """Build the context from the files now (:class:`TLSConfigError` if they are unusable)."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        load_cert_chain(context, self.certificateFileName, self.privateKeyFileName)
        self._context = context

    def getContext(self) -> Any:
        """The server ``ssl.SSLContext`` (built again from the files after unpickling)."""
        if self._context is None:
            self.cacheContext()
        return self._context

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_context", None)
        return state

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} key={os.fsdecode(self.privateKeyFileName)!r} "
                f"cert={os.fsdecode(self.certificateFileName)!r}>")


class ClientContextFactory(ContextFactory):
    """A client context that does NOT verify the server (Twisted's legacy behaviour).

    Only for testing or for peers authenticated some other way; use
    :func:`optionsForClientTLS` to verify the server's certificate.
    """

    isClient = 1
    _context: Any = None

    def getContext(self) -> Any:
        """An unverifying client ``ssl.SSLContext``."""
        import ssl

        if self._context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._context = context
        return self._context

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_context", None)
        return state


class _ClientTLSOptions(ContextFactory):
    """A verifying client context factory (see :func:`optionsForClientTLS`)."""

    isClient = 1
    _context: Any = None

    def __init__(self, hostname: Optional[str], trustRoot: Any = None, clientCertificate: Any = None,
                 privateKey: Any = None) -> None:
        self.hostname = hostname
        self.trustRoot = trustRoot
        self.clientCertificate = clientCertificate
        self.privateKey = privateKey
        self.getContext()

    def getContext(self) -> Any:
        """The client ``ssl.SSLContext``: verifies the chain, and the host name when one was given."""
        import ssl

        if self._context is not None:
            return self._context
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = self.hostname is not None
        if self.trustRoot is not None:
            for path in _trust_files(self.trustRoot):
                try:
                    context.load_verify_locations(cafile=path)
                except (ssl.SSLError, OSError) as exc:
                    raise TLSConfigError(f"cannot load CA certificate {path!r}: {_describe_ssl_error(exc)}") from None
        if self.clientCertificate is not None:
            load_cert_chain(context, self.clientCertificate, self.privateKey or self.clientCertificate)
        self._context = context
        return context

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_context", None)
        return state


def _trust_files(trustRoot: Any) -> list:
    """The CA files of a trust root: a PEM file, or every ``*.pem``/``*.crt`` in a directory."""
    name = os.fsdecode(trustRoot)
    if os.path.isdir(name):
        files = sorted(os.path.join(name, entry) for entry in os.listdir(name)
                       if entry.endswith((".pem", ".crt")))
        if not files:
            raise TLSConfigError(f"no .pem or .crt CA certificates in directory {name!r}")
        return files
    return [_check_file(name, "CA certificate")]


def optionsForClientTLS(hostname: Optional[str], trustRoot: Any = None, clientCertificate: Any = None,
                        privateKey: Any = None) -> ContextFactory:
    """A client context factory that verifies the server's certificate for ``hostname``.

    ``trustRoot`` is a CA file or a directory of ``.pem`` files (default: the
    system's trust store); ``clientCertificate``/``privateKey`` are PEM files
    for client authentication.
    """
    return _ClientTLSOptions(hostname, trustRoot, clientCertificate, privateKey)


def _as_context(contextFactory: Any, side: str) -> Any:
    import ssl

    if isinstance(contextFactory, ssl.SSLContext):
        return contextFactory
    get_context = getattr(contextFactory, "getContext", None)
    if get_context is None:
        raise TLSConfigError(
            f"the {side} TLS context must be an ssl.SSLContext or have getContext(), "
            f"not {type(contextFactory).__name__}"
        )
    context = get_context()
    if not isinstance(context, ssl.SSLContext):
        raise TLSConfigError(f"{type(contextFactory).__name__}.getContext() returned "
                             f"{type(context).__name__}, not an ssl.SSLContext")
    return context


def server_context(contextFactory: Any) -> Any:
    """The ``ssl.SSLContext`` a server uses for ``contextFactory``."""
    return _as_context(contextFactory, "server")


def client_context(contextFactory: Any) -> Any:
    """The ``ssl.SSLContext`` a client uses for ``contextFactory``."""
    return _as_context(contextFactory, "client")
