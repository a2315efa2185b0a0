"""The command line: argv to a validated, immutable :class:`Options`, and the one place errors become exit statuses.

Usage errors (unknown, conflicting or malformed options) exit 2; well-formed
requests that fail exit 1. Every error is one line on stderr:
``twistdlite: error: <message>`` (a ``.tac``'s own traceback comes before it).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence

import click

import twistdlite
from twistdlite.launch.errors import LaunchError, UsageError
from twistdlite.launch.options import DEFAULT_MAX_ROTATED, DEFAULT_PIDFILE, DEFAULT_ROTATE_LENGTH, Options

PROG = "twistdlite"


def _umask(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    from twistdlite.launch.privileges import parse_umask

    try:
        return parse_umask(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None


def _help_reactors(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import importlib.util

    from twistdlite.reactor import REACTORS

    for name, description in REACTORS.items():
        missing = "" if name == "asyncio" or importlib.util.find_spec(name) else " [not installed]"
        click.echo(f"    {name:<10}{description}{missing}")
    ctx.exit(0)


def _positive(ctx: click.Context, param: click.Parameter, value: Optional[float]) -> Optional[float]:
    if value is not None and value <= 0:
        raise click.BadParameter("must be greater than 0")
    return value


class TwistdliteGroup(click.Group):
    """A group whose subcommands are ``stop``, ``status`` and the plugins (loaded only when asked for)."""

    builtin = {"stop": "twistdlite.launch.control:stop", "status": "twistdlite.launch.control:status"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.builtin)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        target = self.builtin.get(name)
        if target is None:
            return None
        import importlib

        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None

    def resolve_command(self, ctx: click.Context, args: list) -> Any:
        """Resolve the subcommand; an application file given without -y/-f gets a hint."""
        name = args[0] if args else ""
        if name.endswith((".tac", ".tap", ".py")) and self.get_command(ctx, name) is None:
            flag = "-f" if name.endswith(".tap") else "-y"
            raise click.UsageError(f"No such command '{name}'; to run an application file, use {flag} {name}")
        return super().resolve_command(ctx, args)


@click.group(
    cls=TwistdliteGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Run a twistd-style application (.tac or .tap) on asyncio.",
)
@click.option("-n", "--nodaemon", is_flag=True, help="Don't daemonize: stay in the foreground, log to stdout.")
@click.option("-o", "--no_save", "--no-save", "no_save", is_flag=True,
              help="Do not save the application's state (<name>-shutdown.tap) on shutdown.")
@click.option("-y", "--python", metavar="FILE", help="Read the application from a Python (.tac) file.")
@click.option("-f", "--file", "file", metavar="FILE",
              help="Read the application from a pickled .tap file [default: twistd.tap].")
@click.option("-s", "--source", metavar="FILE", help="Twisted's AOT (.tas) source files: not supported.")
@click.option("-e", "--encrypted", is_flag=True,
              help="Twisted's encrypted .tap files: not supported (see --tap-key for signed ones).")
@click.option("-l", "--logfile", metavar="FILE",
              help="Log to FILE ('-' for stdout) [default: twistd.log in the run directory; stdout with -n].")
@click.option("--pidfile", default=DEFAULT_PIDFILE, show_default=True, metavar="FILE",
              help="Name of the pidfile ('' for none).")
@click.option("-d", "--rundir", default=".", show_default=True, metavar="DIR",
              help="Change to DIR before running.")
@click.option("--chroot", metavar="DIR", help="chroot to DIR before running (root only).")
@click.option("-u", "--uid", metavar="USER", help="Run as this user (name or number) after binding.")
@click.option("-g", "--gid", metavar="GROUP", help="Run as this group (name or number) after binding.")
@click.option("--euid", is_flag=True, help="Set only the effective user id, not the real one.")
@click.option("--umask", metavar="MASK", callback=_umask,
              help="The octal umask [default: 0077 when daemonizing, unchanged with -n].")
@click.option("-r", "--reactor", default="asyncio", show_default=True, metavar="NAME",
              help="The event loop to run on (see --help-reactors).")
@click.option("--help-reactors", is_flag=True, expose_value=False, is_eager=True, callback=_help_reactors,
              help="List the available reactors and exit.")
@click.option("--syslog", is_flag=True, help="Log to the local syslog.")
@click.option("--prefix", default="twistdlite", show_default=True, help="The syslog ident with --syslog.")
@click.option("--logger", metavar="PKG.MOD.FACTORY",
              help="A callable returning a log observer or logging.Handler; overrides --logfile and --syslog.")
@click.option("--log-rotate-length", type=click.IntRange(min=0), default=DEFAULT_ROTATE_LENGTH,
              show_default=True, metavar="BYTES", help="Rotate the log file at this size (0: never).")
@click.option("--log-max-rotated", type=click.IntRange(min=0), default=DEFAULT_MAX_ROTATED,
              show_default=True, metavar="N", help="Keep at most N rotated log files (0: keep all).")
@click.option("-p", "--profile", metavar="FILE", help="Run under the profiler, writing results to FILE.")
@click.option("--profiler", type=click.Choice(["cprofile", "profile"]), default="cprofile",
              show_default=True, help="The profiler to use with --profile.")
@click.option("--savestats", is_flag=True, help="Save the raw profile data (pstats) instead of a report.")
@click.option("-b", "--debug", is_flag=True,
              help="Run in the debugger (implies -n): post-mortem pdb on errors, SIGUSR2 breaks into pdb.")
@click.option("--spew", is_flag=True, help="Log every function call (very verbose).")
@click.option("--originalname", is_flag=True, help="Don't change the process name.")
@click.option("--start-timeout", type=float, default=60.0, show_default=True, callback=_positive,
              metavar="SECONDS", help="Fail the start if the services take longer than this to start.")
@click.option("--shutdown-timeout", type=float, default=30.0, show_default=True, callback=_positive,
              metavar="SECONDS", help="Exit (non-zero) if the services take longer than this to stop.")
@click.option("--tap-key", metavar="FILE", envvar="TWISTDLITE_TAP_KEY",
              help="Sign saved .tap files with, and require them signed by, the key in FILE "
                   "[env: TWISTDLITE_TAP_KEY].")
@click.option("--allow-unsafe-tap", is_flag=True,
              help="Load a .tap even when it is group/world-writable or owned by another user.")
@click.version_option(twistdlite.__version__, "--version", prog_name=PROG,
                      message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, **params: Any) -> None:
    """Run a twistd-style application (.tac or .tap) on asyncio."""
    options = make_options(params, ctx.get_parameter_source("pidfile"))
    ctx.obj = options
    if ctx.invoked_subcommand is not None:
        return
    from twistdlite.launch import runner

    ctx.exit(runner.run(options))


def make_options(params: dict, pidfile_source: Any = None) -> Options:
    """Validate the parsed parameters and build the :class:`Options`."""
    if params["source"]:
        raise UsageError("-s/--source: Twisted's AOT (.tas) files are not supported; "
                         "use -y with a .tac or -f with a .tap")
    if params["encrypted"]:
        raise UsageError("-e/--encrypted: Twisted's encrypted .tap files are not supported; "
                         "--tap-key signs and checks .tap files instead")
    for name, flag in (("python", "-y/--python"), ("file", "-f/--file")):
        if params[name] == "":
            raise UsageError(f"{flag} needs a file name, not an empty string")
    if params["python"] and params["file"]:
        raise UsageError("-y/--python and -f/--file cannot be used together")
    from twistdlite.launch.privileges import parse_gid, parse_uid

    uid = parse_uid(params["uid"]) if params["uid"] else None
    gid = parse_gid(params["gid"]) if params["gid"] else None
    return Options(
        python=params["python"],
        file=params["file"],
        nodaemon=params["nodaemon"] or params["debug"],
        no_save=params["no_save"],
        rundir=params["rundir"],
        chroot=params["chroot"],
        umask=params["umask"],
        pidfile=params["pidfile"],
        uid=uid,
        gid=gid,
        euid=params["euid"],
        reactor=params["reactor"],
        start_timeout=params["start_timeout"],
        shutdown_timeout=params["shutdown_timeout"],
        logfile=params["logfile"],
        syslog=params["syslog"],
        prefix=params["prefix"],
        logger=params["logger"],
        log_rotate_length=params["log_rotate_length"],
        log_max_rotated=params["log_max_rotated"],
        tap_key=params["tap_key"],
        allow_unsafe_tap=params["allow_unsafe_tap"],
        profile=params["profile"],
        profiler=params["profiler"],
        savestats=params["savestats"],
        debug=params["debug"],
        spew=params["spew"],
        originalname=params["originalname"],
    )


def report(message: str, detail: str = "") -> None:
    """Print an error the one way twistdlite prints errors."""
    if detail:
        sys.stderr.write(detail if detail.endswith("\n") else detail + "\n")
    first = " ".join(message.split("\n")[0].split()) if message else "failed"
    sys.stderr.write(f"{PROG}: error: {first}\n")
    sys.stderr.flush()


def main(argv: Optional[Sequence[str]] = None, prog_name: str = PROG) -> None:
    """The console script: run the CLI and exit with its status."""
    code = run_cli(argv, prog_name)
    daemon = sys.modules.get("twistdlite.launch.daemon")
    if code == 0 and getattr(daemon, "LAUNCHER_DONE", False):
        # The daemon is ready and owns everything: leave at once, as twistd's launcher does,
        # rather than spend tens of milliseconds tearing the interpreter down.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(0)
    sys.exit(code)


def run_cli(argv: Optional[Sequence[str]] = None, prog_name: str = PROG) -> int:
    """Run the CLI and return the exit status; the only place errors become messages."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        report(exc.format_message() if not isinstance(exc, click.BadParameter) else _bad_parameter(exc))
        return 2
    except click.ClickException as exc:
        report(exc.format_message())
        return exc.exit_code
    except click.Abort:
        report("aborted")
        return 1
    except LaunchError as exc:
        report(exc.message, exc.detail)
        return exc.exit_code
    except KeyboardInterrupt:
        report("interrupted")
        return 1
    return result if isinstance(result, int) else 0


def _bad_parameter(exc: click.BadParameter) -> str:
    name = exc.param.get_error_hint(exc.ctx) if exc.param is not None and exc.ctx is not None else "option"
    return f"invalid value for {name}: {exc.message}"
