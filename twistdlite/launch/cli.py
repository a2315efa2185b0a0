"""The command line: argv to a validated, immutable :class:`Options`, and the one place errors become exit statuses.

Usage errors (unknown, conflicting or malformed options) exit 2; well-formed
requests that fail exit 1. Every error is one line on stderr:
``twistdlite: error: <message>`` (a ``.tac``'s own traceback comes before it).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional, Sequence

import click

import twistdlite
from twistdlite.launch import durations
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


def _workers(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> int:
    """``--workers N|auto``: a whole number of at least 1, or the CPUs this process may use."""
    if value is None:
        return 1
    text = value.strip()
    if text.lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)
    try:
        number = int(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a whole number or 'auto'") from None
    if number < 1:
        raise click.BadParameter(f"{number} workers: give at least 1 (1 runs the single process)")
    return number


def _health(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """``--health ENDPOINT``: a server endpoint string, checked now (not bound)."""
    if value is None:
        return None
    from twistdlite.endpoints import serverFromString

    try:
        serverFromString(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


#: Where :meth:`TwistdliteGroup.resolve_command` leaves a plugin's own arguments (in ``ctx.meta``).
PLUGIN_ARGS = "twistdlite.plugin_args"


class TwistdliteGroup(click.Group):
    """A group whose subcommands are ``stop``, ``status`` and the plugins (loaded only when asked for).

    Launcher options come before the subcommand, the plugin's own options after
    it, as with twistd. See :mod:`twistdlite.launch.plugins`.
    """

    builtin = {"stop": "twistdlite.launch.control:stop", "status": "twistdlite.launch.control:status"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        from twistdlite.launch import plugins

        return sorted(set(self.builtin) | set(plugins.names()))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        target = self.builtin.get(name)
        if target is None:
            return self._plugin_command(name)
        import importlib

        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None

    def _plugin_command(self, name: str) -> Optional[click.Command]:
        """The subcommand running plugin ``name``; None if there is none (PluginError if it is broken)."""
        from twistdlite.launch import plugins

        plugin = plugins.find(name)
        if plugin is None:
            return None
        import copy

        # The plugin's own command parses (and --help shows) its options; this copy runs the launcher.
        command = copy.copy(plugin.command)
        command.name = name
        command.callback = _run_plugin
        command.help = plugin.command.help or plugin.description
        command.short_help = plugin.description or plugin.command.short_help
        return command

    def resolve_command(self, ctx: click.Context, args: list) -> Any:
        """Resolve the subcommand; an application file given without -y/-f gets a hint, an unknown name the plugins."""
        name = args[0] if args else ""
        if name.endswith((".tac", ".tap", ".py")) and self.get_command(ctx, name) is None:
            flag = "-f" if name.endswith(".tap") else "-y"
            raise click.UsageError(f"No such command '{name}'; to run an application file, use {flag} {name}")
        if name and not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            from twistdlite.launch import plugins

            raise click.UsageError(plugins.unknown_message(name), ctx)
        cmd_name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[PLUGIN_ARGS] = tuple(rest)
        return cmd_name, command, rest

    def parse_args(self, ctx: click.Context, args: list) -> list:
        """Parse the launcher's options, short ones spelled out first (see :func:`spell_out_short_options`)."""
        # self.params, not get_params(ctx): the help option is left out (a bundle holding -h goes to click as typed)
        return super().parse_args(ctx, spell_out_short_options(self.params, args))

    def invoke(self, ctx: click.Context) -> Any:
        """Run the group; a usage error in a plugin's options is marked with the plugin's name."""
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            name = ctx.invoked_subcommand
            if name is not None and name not in self.builtin and not hasattr(exc, "twistdlite_plugin"):
                exc.twistdlite_plugin = name  # type: ignore[attr-defined]
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section of --help: stop, status and every plugin with its description."""
        from twistdlite.launch import plugins

        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.builtin:
                command = self.get_command(ctx, name)
                rows.append((name, command.get_short_help_str(limit) if command is not None else ""))
            else:
                rows.append((name, plugins.describe(name)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def spell_out_short_options(params: Sequence[click.Parameter], args: Sequence[str]) -> list:
    """``-noy app.tac`` as ``--nodaemon --no_save --python app.tac``, before click parses it.

    Click tries every short option (and bundle) as a long one first, and the error of that
    try builds its suggestions with difflib: a millisecond of every ``-noy`` start. The long
    names come from the same option definitions (``params``), and only what click would read
    the same way is rewritten: the launcher's own options, up to the first argument that is
    not one (the application file of a bare ``twistdlite FILE``, a plugin's name, ``--``). A
    bundle with a letter that is no short option, an ``=``, or an option missing its value
    is passed on as it is, so click's messages name what the user typed.
    """
    short: dict = {}     # "-y" -> ("--python", takes a value)
    valued: set = set()  # long options that take a value
    for param in params:
        if not isinstance(param, click.Option):
            continue
        takes_value = not param.is_flag and not param.count
        names = (*param.opts, *param.secondary_opts)
        long_name = next((opt for opt in param.opts if opt.startswith("--")), None)
        for opt in names:
            if len(opt) == 2 and opt[0] == "-" and opt[1] != "-":
                short[opt] = (long_name or opt, takes_value)
            elif takes_value:
                valued.add(opt)
    out: list = []
    args = list(args)
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg in ("--", "-") or not arg.startswith("-"):
            out.append(arg)
            break
        parts, wants_next = ([arg], arg in valued) if arg.startswith("--") else _spell_out(arg, short)
        if wants_next:
            if index == len(args):  # no value: click says so, naming the option as typed
                out.append(arg)
                break
            parts.append(args[index])  # the option's value, whatever it looks like
            index += 1
        out += parts
    return out + args[index:]


def _spell_out(arg: str, short: dict) -> tuple:
    """``-noy`` -> (["--nodaemon", "--no_save", "--python"], True: the next argument is the value)."""
    if "=" in arg:
        return [arg], False
    parts = []
    for pos in range(1, len(arg)):
        opt = "-" + arg[pos]
        if opt not in short:
            return [arg], False
        long_name, takes_value = short[opt]
        parts.append(long_name)
        if takes_value:
            if pos + 1 < len(arg):
                return parts + [arg[pos + 1:]], False
            return parts, True
    return parts, False


@click.pass_context
def _run_plugin(ctx: click.Context, /, **params: Any) -> None:
    """Run the application a plugin makes from its arguments (parsed again by the loader)."""
    options = ctx.find_root().obj.evolve(plugin_args=ctx.meta.get(PLUGIN_ARGS, ()))
    from twistdlite.launch import runner

    ctx.exit(runner.run(options))


@click.group(
    cls=TwistdliteGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Run a twistd-style application (.tac or .tap, or one a plugin makes) on asyncio.",
    epilog="Launcher options come before a plugin's name, its own options after it: "
           "twistdlite -n web --path DIR. 'twistdlite PLUGIN --help' lists a plugin's options.",
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
@click.option("--start-timeout", type=float, default=60.0, show_default=True, callback=durations.option,
              metavar="SECONDS", help="Fail the start if the services take longer than this to start "
                                      f"({durations.HELP}).")
@click.option("--shutdown-timeout", type=float, default=30.0, show_default=True, callback=durations.option,
              metavar="SECONDS", help="Exit (non-zero) if the services take longer than this to stop "
                                      f"({durations.HELP}).")
@click.option("--workers", metavar="N|auto", callback=_workers,
              help="Run N worker processes on the listening sockets, under a supervisor that restarts "
                   "them and reloads on SIGHUP; auto: one per usable CPU [default: 1, a single process].")
@click.option("--worker-timeout", type=float, default=30.0, show_default=True, callback=durations.option,
              metavar="SECONDS", help="With --workers: kill and replace a worker whose event loop has been "
                                      "blocked this long.")
@click.option("--crash-limit", type=click.IntRange(min=1), default=5, show_default=True, metavar="N",
              help="With --workers: stop the pool (exit 1) when workers crash N times within --crash-window.")
@click.option("--crash-window", type=float, default=30.0, show_default=True, callback=durations.option,
              metavar="SECONDS", help="The window of --crash-limit.")
@click.option("--health", metavar="ENDPOINT", callback=_health,
              help="Answer HTTP GET /livez and /readyz (200 or 503, JSON) at this endpoint, "
                   "e.g. tcp:8081:interface=0.0.0.0.")
@click.option("--tap-key", metavar="FILE", envvar="TWISTDLITE_TAP_KEY",
              help="Sign saved .tap files with, and require them signed by, the key in FILE "
                   "[env: TWISTDLITE_TAP_KEY].")
@click.option("--allow-unsafe-tap", is_flag=True,
              help="Load a .tap even when it is group/world-writable or owned by another user.")
@click.version_option(twistdlite.__version__, "--version", prog_name=PROG,
                      message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, **params: Any) -> None:
    """Run a twistd-style application (.tac or .tap, or one a plugin makes) on asyncio."""
    subcommand = ctx.invoked_subcommand
    plugin = subcommand if subcommand is not None and subcommand not in TwistdliteGroup.builtin else None
    options = make_options(params, ctx.get_parameter_source("pidfile"), plugin=plugin)
    ctx.obj = options
    if subcommand is not None:
        return
    from twistdlite.launch import runner

    ctx.exit(runner.run(options))


def make_options(params: dict, pidfile_source: Any = None, plugin: Optional[str] = None) -> Options:
    """Validate the parsed parameters and build the :class:`Options` (``plugin``: the plugin subcommand)."""
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
    if plugin is not None:
        for name, flag in (("python", "-y/--python"), ("file", "-f/--file")):
            if params[name]:
                raise UsageError(f"{flag} and a plugin ({plugin}) cannot be used together: "
                                 "the plugin makes the application")
    uid = gid = None
    if params["uid"] or params["gid"]:
        from twistdlite.launch.privileges import parse_gid, parse_uid

        uid = parse_uid(params["uid"]) if params["uid"] else None
        gid = parse_gid(params["gid"]) if params["gid"] else None
    return Options(
        python=params["python"],
        file=params["file"],
        plugin=plugin,
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
        workers=params["workers"],
        worker_timeout=params["worker_timeout"],
        crash_limit=params["crash_limit"],
        crash_window=params["crash_window"],
        health=params["health"],
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
    # Start-up (imports, loading the application) makes objects that live for good: the cyclic
    # collector would scan them again and again for nothing (~4% of a start). The runner turns it
    # back on before the services start (runner.run).
    from twistdlite.launch.console import defer_collections

    defer_collections()
    code = run_cli(argv, prog_name)
    daemon = sys.modules.get("twistdlite.launch.daemon")
    # The launching command of a daemon that is ready leaves at once, as twistd's does: the
    # application (and its atexit callbacks) belong to the daemon now.
    exit_process(code, finalize=not (code == 0 and getattr(daemon, "LAUNCHER_DONE", False)))


def exit_process(code: int, finalize: bool = True, _exit: Callable[[int], Any] = os._exit) -> None:
    """End the process with status ``code``, skipping the interpreter's teardown (tens of milliseconds).

    With ``finalize`` it first does what the interpreter's own exit does that a user can see:
    wait for non-daemon threads, run the ``atexit`` callbacks (logging's flush and close among
    them), flush stdout and stderr. Freeing every object of a process about to end is what is skipped.
    """
    if finalize:
        threading = sys.modules.get("threading")
        if threading is not None and hasattr(threading, "_shutdown"):
            threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter's exit calls first
        import atexit

        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    _exit(code)


def run_cli(argv: Optional[Sequence[str]] = None, prog_name: str = PROG) -> int:
    """Run the CLI and return the exit status; the only place errors become messages."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        message = exc.format_message() if not isinstance(exc, click.BadParameter) else _bad_parameter(exc)
        plugin = getattr(exc, "twistdlite_plugin", None)
        report(f"{plugin}: {message}" if plugin else message)  # a plugin's option: say whose
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
