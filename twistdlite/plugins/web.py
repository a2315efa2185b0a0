"""``twistdlite web``: serve a directory, a Resource class or a WSGI application over HTTP/1.1.

    twistdlite -n web --path /srv/www --listen tcp:8080:interface=127.0.0.1
    twistdlite -n web --wsgi myapp.application --max-threads 20
    twistdlite -n web --class mysite.Root --logfile access.log

A thin command line over :mod:`twistdlite.web`, with ``twistd web``'s
options: the root resource is ``static.File(--path)`` (with ``--index``,
``--mime-type``, ``--ignore-ext``, ``--allow-ignore-ext``,
``--allow-symlinks-out``), or ``--class`` (a Resource class made with no
arguments), or ``--wsgi`` (a WSGI application run on a thread pool of
``--max-threads``). Each request is logged in the Combined Log Format, to
``--logfile`` or the application's log. The limits and timeouts of
``server.Site`` have options of their own. Needs httptools
(``pip install 'twistdlite[web]'``).
"""

from __future__ import annotations

import os
from typing import Any

import click

#: Where the server listens when no ``--listen`` is given (twistd web's default).
DEFAULT_LISTEN = "tcp:8080"

_INSTALL = "the web plugin needs an HTTP parser, httptools or h11: pip install 'twistdlite[web]'"

options = click.Command(
    "web",
    help="Serve a directory, a Resource class or a WSGI application over HTTP/1.1, logging each request "
         "in the Combined Log Format.",
    params=[
        click.Option(["--path"], metavar="DIR",
                     help="The directory (or file) to serve [default: .]."),
        click.Option(["--listen"], multiple=True, metavar="DESCRIPTION",
                     help="Where to listen, as an endpoint string: tcp:8080:interface=127.0.0.1, "
                          "unix:/run/web.sock, ssl:8443:privateKey=key.pem:certKey=cert.pem; "
                          f"may be given more than once [default: {DEFAULT_LISTEN}]."),
        click.Option(["-p", "--port"], metavar="PORT",
                     help="Older spelling of --listen: a port number or an endpoint string."),
        click.Option(["--https"], metavar="PORT",
                     help="Older spelling: also listen for HTTPS on PORT with --certificate and --privkey."),
        click.Option(["-c", "--certificate"], default="server.pem", show_default=True, metavar="FILE",
                     help="The certificate for --https."),
        click.Option(["-k", "--privkey"], default="server.pem", show_default=True, metavar="FILE",
                     help="The private key for --https."),
        click.Option(["-i", "--index"], multiple=True, metavar="NAME",
                     help="A file name that serves as a directory's index; may be given more than once "
                          "[default: index, index.html, index.htm]."),
        click.Option(["-m", "--mime-type"], default="text/html", show_default=True, metavar="TYPE",
                     help="The content type of files whose extension says none."),
        click.Option(["--ignore-ext"], multiple=True, metavar="EXT",
                     help="Let /name find name.EXT (tried in order); may be given more than once."),
        click.Option(["--allow-ignore-ext"], is_flag=True,
                     help="Let /name find name.anything."),
        click.Option(["--allow-symlinks-out"], is_flag=True,
                     help="Serve files behind symbolic links that lead outside --path (refused by default)."),
        click.Option(["-l", "--logfile"], metavar="FILE",
                     help="Write the access log (Combined Log Format) to FILE instead of the application's log."),
        click.Option(["--class", "resource_class"], metavar="MODULE.CLASS",
                     help="Serve an instance of this Resource class (made with no arguments) instead of --path."),
        click.Option(["--wsgi"], metavar="MODULE.APP",
                     help="Serve this WSGI application (module.attribute or module:attribute) instead of --path."),
        click.Option(["--max-threads"], type=click.IntRange(min=1), default=10, show_default=True,
                     help="Threads running the --wsgi application at once."),
        click.Option(["--display-tracebacks"], is_flag=True,
                     help="Show a rendering error's traceback in its 500 page (it may reveal private data)."),
        click.Option(["--max-head-size"], type=click.IntRange(min=256), default=16384, show_default=True,
                     metavar="BYTES", help="Largest request line and headers (431 beyond)."),
        click.Option(["--max-headers"], type=click.IntRange(min=1), default=100, show_default=True,
                     help="Most header fields in a request (431 beyond)."),
        click.Option(["--max-body-size"], type=click.IntRange(min=0), default=10 * 1024 * 1024,
                     show_default=True, metavar="BYTES", help="Largest request body (413 beyond)."),
        click.Option(["--head-timeout"], type=click.FloatRange(min=0, min_open=True), default=30.0,
                     show_default=True, metavar="SECONDS",
                     help="Close a client that takes longer to send a request's head (or pauses a body)."),
        click.Option(["--idle-timeout"], type=click.FloatRange(min=0, min_open=True), default=60.0,
                     show_default=True, metavar="SECONDS", help="Close a kept-alive connection idle this long."),
        click.Option(["--write-timeout"], type=click.FloatRange(min=0, min_open=True), default=60.0,
                     show_default=True, metavar="SECONDS",
                     help="Close a client that has read none of its response for this long."),
    ],
)


def _import_object(spec: str, option: str) -> Any:
    """The object ``module.attr`` (or ``module:attr``) names; ClickException saying what is wrong."""
    import importlib
    import sys

    if ":" in spec:
        module_name, _, attr = spec.partition(":")
    else:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise click.UsageError(f"invalid value for '{option}': {spec!r} is not module.attribute")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as twistd does: modules beside the command import
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise click.ClickException(f"{option} {spec}: no module named {exc.name!r}") from None
        raise click.ClickException(f"{option} {spec}: importing {module_name} failed: "
                                   f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:
        raise click.ClickException(f"{option} {spec}: importing {module_name} failed: "
                                   f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.ClickException(f"{option} {spec}: {module_name} has no attribute {attr!r}") from None
    return obj


def _root_resource(options: dict) -> Any:
    """The resource to serve: a File, an instance of --class, or a WSGIResource of --wsgi."""
    chosen = [name for name, key in (("--path", "path"), ("--class", "resource_class"), ("--wsgi", "wsgi"))
              if options.get(key)]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be used together: each names what to serve")
    from twistdlite.web import resource

    if options.get("resource_class"):
        spec = options["resource_class"]
        cls = _import_object(spec, "--class")
        if not isinstance(cls, type) or not issubclass(cls, resource.Resource):
            raise click.ClickException(f"--class {spec}: {cls!r} is not a twistdlite.web.resource.Resource "
                                       "subclass")
        try:
            return cls()
        except Exception as exc:
            raise click.ClickException(f"--class {spec}: making an instance failed: {type(exc).__name__}: "
                                       f"{' '.join(str(exc).split())}") from None
    if options.get("wsgi"):
        spec = options["wsgi"]
        application = _import_object(spec, "--wsgi")
        if not callable(application) or isinstance(application, type(os)):
            raise click.ClickException(f"--wsgi {spec}: {type(application).__name__} object is not callable "
                                       "(a WSGI application is)")
        from twistdlite import reactor
        from twistdlite.threadpool import ThreadPool
        from twistdlite.web import wsgi

        return wsgi.WSGIResource(reactor, ThreadPool(0, options["max_threads"], "wsgi"), application)
    from twistdlite.web import static

    given = options.get("path") or "."
    path = os.path.abspath(given)
    where = f"--path {given}" + (f" ({path})" if path != given else "")
    if not os.path.exists(path):
        raise click.ClickException(f"{where}: no such file or directory")
    if not os.access(path, os.R_OK) or (os.path.isdir(path) and not os.access(path, os.X_OK)):
        raise click.ClickException(f"{where}: permission denied")
    root = static.File(path, defaultType=options.get("mime_type") or "text/html")
    if options.get("index"):
        root.indexNames = list(options["index"])
    for ext in options.get("ignore_ext") or ():
        root.ignoreExt(ext if ext.startswith(".") or ext == "*" else "." + ext)
    if options.get("allow_ignore_ext"):
        root.ignoreExt("*")
    if options.get("allow_symlinks_out"):
        root.allowSymlinksOut = True
    return root


def _listen_descriptions(options: dict) -> list:
    descriptions = list(options.get("listen") or ())
    port = options.get("port")
    if port:
        descriptions.append(f"tcp:{port}" if port.isdigit() else port)
    https = options.get("https")
    if https:
        if not https.isdigit():
            raise click.UsageError(f"invalid value for '--https': {https!r} is not a port number")
        key, cert = options.get("privkey") or "server.pem", options.get("certificate") or "server.pem"
        descriptions.append(f"ssl:{https}:privateKey={_escape_colons(key)}:certKey={_escape_colons(cert)}")
    return descriptions or [DEFAULT_LISTEN]


def _escape_colons(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


class WebServiceMaker:
    """The ``web`` plugin (Twisted's ``IServiceMaker`` shape)."""

    tapname = "web"
    description = "Serve files, a Resource or a WSGI application over HTTP/1.1."
    options = options

    def makeService(self, options: dict) -> Any:
        """A service serving the root resource the options name at each address they name."""
        try:
            from twistdlite.web import server
        except ModuleNotFoundError as exc:
            if exc.name in ("httptools", "h11"):
                raise click.ClickException(_INSTALL) from None
            raise
        from twistdlite import strports
        from twistdlite.service import MultiService

        root = _root_resource(options)
        logfile = options.get("logfile")
        site = server.Site(root, logPath=os.path.abspath(logfile) if logfile else None,
                           timeout=options.get("idle_timeout", 60.0),
                           maxHeadSize=options.get("max_head_size", 16384),
                           maxHeaders=options.get("max_headers", 100),
                           maxBodySize=options.get("max_body_size", 10 * 1024 * 1024),
                           headTimeout=options.get("head_timeout", 30.0),
                           writeTimeout=options.get("write_timeout", 60.0),
                           displayTracebacks=bool(options.get("display_tracebacks")))
        service = MultiService()
        for description in _listen_descriptions(options):
            try:
                listener = strports.service(description, site)
            except ValueError as exc:
                raise click.UsageError(f"invalid value for '--listen': {exc}") from None
            listener.setServiceParent(service)
        if options.get("wsgi"):
            from twistdlite.web.wsgi import ThreadPoolService

            ThreadPoolService(root._threadpool).setServiceParent(service)
        return service


serviceMaker = WebServiceMaker()
