"""``twistdlite portforward``: forward TCP connections to another host and port.

    twistdlite -n portforward --port tcp:6666:interface=127.0.0.1 --host example.org --dest_port 80

Each connection accepted at ``--port`` is joined to a new connection to
``--host``:``--dest_port``; bytes flow both ways with back-pressure (a side that
reads slowly pauses reading from the other), and when either side closes, so
does the other. The options are those of Twisted's ``twistd portforward``
(``-h`` is ``--host`` here, as there; ``--help`` shows the help).
See :mod:`twistdlite.plugins._proxy`.
"""

from __future__ import annotations

from typing import Any

import click

options = click.Command(
    "portforward",
    help="Forward each TCP connection made to --port to --host:--dest_port, with back-pressure "
         "both ways.",
    context_settings={"help_option_names": ["--help"]},  # -h is --host, as with twistd
    params=[
        click.Option(["-p", "--port", "--listen", "port"], default="tcp:6666", show_default=True,
                     metavar="DESCRIPTION",
                     help="Where to listen, as an endpoint string (tcp:6666:interface=127.0.0.1, "
                          "unix:/run/fwd.sock...)."),
        click.Option(["-h", "--host"], default="localhost", show_default=True,
                     help="The host to forward to."),
        click.Option(["-d", "--dest_port", "--dest-port", "dest_port"], type=click.IntRange(1, 65535),
                     default=6665, show_default=True, metavar="PORT", help="The port to forward to."),
    ],
)


class PortForwardServiceMaker:
    """The ``portforward`` plugin (Twisted's ``IServiceMaker`` shape)."""

    tapname = "portforward"
    description = "Forward TCP connections to another host and port."
    options = options

    def makeService(self, options: dict) -> Any:
        """A service listening at ``options["port"]`` that forwards to ``host:dest_port``."""
        from twistdlite import strports
        from twistdlite.plugins._proxy import ProxyFactory

        if not options["host"]:
            raise click.UsageError("invalid value for '--host': an empty host name")
        factory = ProxyFactory(options["host"], options["dest_port"])
        try:
            return strports.service(options["port"], factory)
        except ValueError as exc:
            raise click.UsageError(f"invalid value for '--port': {exc}") from None


serviceMaker = PortForwardServiceMaker()
