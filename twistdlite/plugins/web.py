"""``twistdlite web``: serve the files under a directory over HTTP.

    twistdlite -n web --path /srv/www --listen tcp:8080:interface=127.0.0.1

The stdlib's ``http.server.SimpleHTTPRequestHandler`` answers each request
(directory listings, 404s, paths outside the directory refused, ``HEAD``,
``If-Modified-Since``), running in twistdlite's event loop; files are sent in
chunks as fast as the client reads them. One request per connection (HTTP/1.0).
Each request is logged in the Combined Log Format, as ``twistd web`` does.
See :mod:`twistdlite.plugins._static`.
"""

from __future__ import annotations

from typing import Any

import click

#: Where the server listens when no ``--listen`` is given (twistd web's default).
DEFAULT_LISTEN = "tcp:8080"

options = click.Command(
    "web",
    help="Serve the files under a directory over HTTP (directory listings, HEAD; "
         "one request per connection), logging each request.",
    params=[
        click.Option(["--path"], default=".", show_default=True, metavar="DIR",
                     help="The directory whose files to serve."),
        click.Option(["--listen"], multiple=True, metavar="DESCRIPTION",
                     help="Where to listen, as an endpoint string: tcp:8080:interface=127.0.0.1, "
                          "unix:/run/web.sock, ssl:8443:privateKey=key.pem:certKey=cert.pem; "
                          f"may be given more than once [default: {DEFAULT_LISTEN}]."),
    ],
)


class WebServiceMaker:
    """The ``web`` plugin (Twisted's ``IServiceMaker`` shape)."""

    tapname = "web"
    description = "Serve the files under a directory over HTTP."
    options = options

    def makeService(self, options: dict) -> Any:
        """A service serving ``options["path"]`` at each ``options["listen"]``."""
        import os

        from twistdlite import strports
        from twistdlite.plugins._static import StaticSite
        from twistdlite.service import MultiService

        given = options["path"]
        path = os.path.abspath(given)
        where = f"--path {given}" + (f" ({path})" if path != given else "")
        if not os.path.isdir(path):
            why = "not a directory" if os.path.exists(path) else "no such directory"
            raise click.ClickException(f"{where}: {why}")
        if not os.access(path, os.R_OK | os.X_OK):
            raise click.ClickException(f"{where}: permission denied")
        site = StaticSite(path)
        root = MultiService()
        for description in options["listen"] or (DEFAULT_LISTEN,):
            try:
                server = strports.service(description, site)
            except ValueError as exc:
                raise click.UsageError(f"invalid value for '--listen': {exc}") from None
            server.setServiceParent(root)
        return root


serviceMaker = WebServiceMaker()
