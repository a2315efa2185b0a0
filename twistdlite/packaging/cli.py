"""The ``tap2deb`` and ``tap2rpm`` console scripts: Twisted's options, checked, to a :class:`Request`, then a build.

The one place their errors become messages and exit statuses: usage errors
exit 2, failed builds (a missing tool, an application that does not load) exit 1,
each as one line ``tap2deb: error: ...``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, List, Optional, Sequence

import click

from twistdlite.launch.errors import LaunchError, UsageError
from twistdlite.packaging import model


def _options(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options both commands take; ``kind`` is ``deb`` or ``rpm``."""
    output = (click.option("-d", "--debfile", metavar="FILE",
                           help="Where to write the .deb [default: NAME_VERSION_all.deb here]; the source "
                                "package (.dsc, .tar.xz) goes beside it.")
              if kind == "deb" else
              click.option("--rpmfile", metavar="FILE",
                           help="Where to write the .rpm [default: NAME-VERSION-1.noarch.rpm here]; the "
                                ".src.rpm goes beside it."))
    maintainer_help = ('The maintainer, "Name <email>" (required).' if kind == "deb" else
                       'The packager, "Name <email>" [default: tap2rpm <root@localhost>].')
    decorators = [
        click.option("-t", "--tapfile", default="twistd.tap", show_default=True, metavar="FILE",
                     help="The application file (.tap, or .tac with -y python)."),
        click.option("-y", "--type", "app_type", type=click.Choice(["tap", "python", "source"]),
                     help="The application file's type: tap, or python for a .tac [default: from its extension]; "
                          "Twisted's source (.tas) is not supported."),
        click.option("-p", "--protocol", metavar="NAME",
                     help="The package's name [default: the application file's name, made a valid package name]."),
        click.option("-m", "--maintainer", metavar='"NAME <EMAIL>"', help=maintainer_help),
        click.option("-e", "--description", metavar="TEXT", help="The one-line description [default: APPLICATION service run by twistdlite]."),
        click.option("-l", "--long_description", "--long-description", "long_description", metavar="TEXT",
                     help="The long description."),
        click.option("-V", "--set-version", "version", default="1.0", show_default=True, metavar="VERSION",
                     help="The package's version."),
        output,
        click.option("-u", "--unsigned", is_flag=True, help="Accepted for Twisted's sake: packages are never signed."),
        click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
        click.option("--include", "includes", multiple=True, metavar="PATH",
                     help="Another file or package directory the application imports (repeatable)."),
        click.option("--port-below-1024", "privileged", is_flag=True,
                     help="Grant the service CAP_NET_BIND_SERVICE [default: when it listens below 1024]."),
        click.option("--watchdog", type=float, metavar="SECONDS",
                     help="Restart the service when its event loop stops answering for SECONDS (WatchdogSec=)."),
        click.option("--keep-state", is_flag=True,
                     help="Save the application's state at each stop and restart from it (default: -o)."),
    ]

    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def make_request(kind: str, params: dict) -> model.Request:
    """Validate the parsed options (:class:`UsageError` when they are wrong) into a :class:`Request`."""
    from twistdlite.packaging.application import guess_type

    tapfile = params["tapfile"]
    if not tapfile:
        raise UsageError("-t/--tapfile needs a file name")
    if params["app_type"] == "source":
        raise UsageError("-y source: Twisted's AOT (.tas) files are not supported; package a .tac (-y python) "
                         "or a .tap (-y tap)")
    app_type = guess_type(tapfile, params["app_type"])
    stem = os.path.splitext(os.path.basename(tapfile))[0]
    name = params["protocol"]
    if name is None:
        name = model.default_name(stem)
        if name is None:
            raise UsageError(f"cannot make a package name from {os.path.basename(tapfile)!r}: give one with "
                             f"-p (a package name is {model.NAME_RULE})")
    model.check_name(name)
    model.check_version(params["version"])
    maintainer = params["maintainer"]
    if maintainer is None:
        if kind == "deb":
            raise UsageError('-m/--maintainer is required for a .deb: give it as "Full Name <user@example.org>"')
        maintainer = "tap2rpm <root@localhost>"
    person, address = model.parse_maintainer(maintainer)
    watchdog = params["watchdog"]
    if watchdog is not None and not watchdog > 0:
        raise UsageError("--watchdog must be a number of seconds greater than 0")
    description = params["description"] or ""  # the default names the application, known once it is read
    if "\n" in description:
        raise UsageError("-e/--description must be one line (use -l for the long description)")
    long_description = params["long_description"] or (
        f"Automatically created by tap2{kind} from {os.path.basename(tapfile)}: the application,\n"
        "twistdlite and the Python modules it needs, run as a systemd service.")
    return model.Request(name=name, version=params["version"], maintainer=person, email=address,
                         description=description, long_description=long_description, app_file=tapfile,
                         app_type=app_type, includes=params["includes"], privileged=params["privileged"],
                         watchdog=watchdog, keep_state=params["keep_state"], quiet=params["quiet"])


def _report(kind: str, paths: List[str], prepared: Any) -> None:
    for path in paths:
        click.echo(f"wrote {path}")
    if prepared.privileged_ports:
        ports = ", ".join(str(port) for port in prepared.privileged_ports)
        click.echo(f"the application listens on port {ports}: the unit grants CAP_NET_BIND_SERVICE")
    for package in prepared.system_packages:
        click.echo(f"the application needs a compiled library the package cannot carry: it depends on {package}")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               help="Build a Debian package (and its source package) that runs a twistdlite application "
                    "as a hardened systemd service.")
@_options("deb")
def tap2deb(**params: Any) -> None:
    """Build the .deb, .dsc and source tarball."""
    request = make_request("deb", params)
    from twistdlite.packaging import build, debian

    target = params["debfile"] or f"{request.name}_{request.version}_all.deb"
    build.check_output_dir(target)
    debian.check_tools()
    prepared = build.Prepared(request)
    paths = debian.build(prepared, target)
    if not request.quiet:
        _report("deb", paths, prepared)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               help="Build an RPM package (and its .src.rpm) that runs a twistdlite application "
                    "as a hardened systemd service.")
@_options("rpm")
def tap2rpm(**params: Any) -> None:
    """Build the .rpm and .src.rpm."""
    request = make_request("rpm", params)
    from twistdlite.packaging import build, rpm

    target = params["rpmfile"] or f"{request.name}-{request.version}-{rpm.RELEASE}.noarch.rpm"
    build.check_output_dir(target)
    rpm.check_tools()
    prepared = build.Prepared(request)
    paths = rpm.build(prepared, target)
    if not request.quiet:
        _report("rpm", paths, prepared)


def run(command: click.Command, prog: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run ``command`` and return its exit status; errors are printed as one line ``PROG: error: ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command.main(args, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        _error(prog, exc.format_message())
        return 2
    except click.ClickException as exc:
        _error(prog, exc.format_message())
        return exc.exit_code
    except click.Abort:
        _error(prog, "aborted")
        return 1
    except LaunchError as exc:
        if exc.detail:
            sys.stderr.write(exc.detail if exc.detail.endswith("\n") else exc.detail + "\n")
        _error(prog, exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _error(prog, "interrupted")
        return 1
    return 0


def _error(prog: str, message: str) -> None:
    first = " ".join(message.split("\n")[0].split()) if message else "failed"
    sys.stderr.write(f"{prog}: error: {first}\n")
    sys.stderr.flush()


def deb_main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``tap2deb`` console script."""
    sys.exit(run(tap2deb, "tap2deb", argv))


def rpm_main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``tap2rpm`` console script."""
    sys.exit(run(tap2rpm, "tap2rpm", argv))
