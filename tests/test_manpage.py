"""man/twistdlite.1 documents every option the CLI accepts, mentions none it doesn't, and renders cleanly."""

from __future__ import annotations

import re
import shutil
import subprocess

import click
import pytest

from support import ROOT
from twistdlite.launch import cli, plugins

PAGE = ROOT / "man" / "twistdlite.1"


def commands() -> dict:
    """Every click command of the CLI by name: the main one ("") and each subcommand.

    Of the plugins, only the built-in ones: a plugin installed in this environment
    documents itself, not in this page.
    """
    found = {"": cli.cli}
    ctx = main_context()
    ours = set(cli.TwistdliteGroup.builtin) | set(plugins.builtin_names())
    for name in cli.cli.list_commands(ctx):
        if name not in ours:
            continue
        command = cli.cli.get_command(ctx, name)
        assert command is not None, f"subcommand {name!r} is listed but cannot be loaded"
        found[name] = command
    return found


def main_context() -> click.Context:
    return click.Context(cli.cli, info_name="twistdlite", **cli.cli.context_settings)


def accepted_options() -> dict:
    """Every option string the CLI accepts (help included), mapped to the command that takes it."""
    options: dict = {}
    parent = main_context()
    for name, command in commands().items():
        ctx = parent if not name else click.Context(command, info_name=name, parent=parent,
                                                    **command.context_settings)
        for param in command.get_params(ctx):
            if isinstance(param, click.Option):
                for opt in param.opts + param.secondary_opts:
                    options.setdefault(opt, name or "twistdlite")
    return options


def page_text() -> str:
    """The page's source with roff escapes for dashes and fonts removed, comments dropped."""
    lines = [line for line in PAGE.read_text().splitlines() if not line.startswith('.\\"')]
    return page_text_of("\n".join(lines))


def page_text_of(source: str) -> str:
    """``source`` (roff) with the escapes for dashes, quotes and fonts removed."""
    text = source.replace("\\-", "-").replace("\\(aq", "'").replace("\\&", "")
    return re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", text)


def mentioned(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_the_cli_has_the_options_and_subcommands_we_expect():
    options = accepted_options()
    assert {"-n", "--nodaemon", "-y", "--python", "--help", "-h", "--version"} <= set(options)
    assert {"stop", "status"} <= set(commands())
    assert len(options) > 40


def test_every_option_the_cli_accepts_is_in_the_manual():
    text = page_text()
    missing = sorted(f"{opt} ({command})" for opt, command in accepted_options().items() if not mentioned(opt, text))
    assert not missing, f"options missing from {PAGE.name}: {', '.join(missing)}"
    for name in commands():
        if name:
            assert re.search(rf"^\.B {name}$", PAGE.read_text(), re.M), f"subcommand {name} has no entry"


def plugin_entry(name: str) -> str:
    """The text of a built-in plugin's entry in PLUGINS: from its ``.B name`` line to the end of its options."""
    section = re.split(r'^\.SH "?PLUGINS"?$', PAGE.read_text(), flags=re.M)[1].split("\n.SH ", 1)[0]
    match = re.search(rf"^\.B {name}\n(.*?)^\.RE$", section, re.M | re.S)
    assert match, f"plugin {name} has no entry (.B {name} ... .RE) in PLUGINS"
    return page_text_of(match.group(1))


def test_each_built_in_plugin_documents_every_option_in_its_own_entry():
    assert plugins.builtin_names() == ["portforward", "web"]
    parent = main_context()
    for name in plugins.builtin_names():
        command = cli.cli.get_command(parent, name)
        ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
        entry = plugin_entry(name)
        options = [opt for param in command.get_params(ctx) if isinstance(param, click.Option)
                   for opt in param.opts + param.secondary_opts if opt not in ctx.help_option_names]
        assert options, name
        missing = [opt for opt in options if not mentioned(opt, entry)]
        assert not missing, f"{name}'s entry in PLUGINS does not document {missing}"


def test_the_manual_mentions_no_long_option_the_cli_does_not_accept():
    accepted = set(accepted_options())
    documented = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", page_text()))
    assert documented, "found no options at all: is the page's syntax what this test expects?"
    assert not sorted(documented - accepted), f"documented but not accepted: {sorted(documented - accepted)}"


def test_the_manual_has_the_sections_a_user_looks_for():
    source = PAGE.read_text()
    assert source.splitlines()[3].startswith(".TH TWISTDLITE 1 ")
    headings = re.findall(r'^\.SH "?([^"\n]+)"?$', source, re.M)
    for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "PLUGINS", "THE ORDER OF A RUN",
                    "SIGNALS", "FILES", "EXIT STATUS", "SEE ALSO"]:
        assert heading in headings, heading
    text = page_text()
    for word in ["twistd.pid", "twistd.log", "-shutdown.tap", "SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP"]:
        assert word in text, word
    exit_status = re.split(r'^\.SH "?EXIT STATUS"?$', text, flags=re.M)[1].split("\n.SH ", 1)[0]
    for status in ("0", "1", "2", "3"):
        assert re.search(rf"^\.B {status}$", exit_status, re.M), f"exit status {status} undocumented"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed (Debian package groff)")
def test_groff_renders_the_page_without_warnings():
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(PAGE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rendered = subprocess.run(["groff", "-man", "-Tutf8", "-P", "-cbou", str(PAGE)], capture_output=True,
                              text=True, timeout=60, env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    assert rendered.returncode == 0
    assert "twistdlite -noy examples/reverse_app.tac" in rendered.stdout.replace("\u2010", "-").replace("\u2212", "-")


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_man_renders_the_page_with_warnings_on():
    result = subprocess.run(["man", "--warnings", "-l", str(PAGE)], capture_output=True, text=True, timeout=60,
                            env={"MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80", "PATH": "/usr/bin:/bin",
                                 "LC_ALL": "C.UTF-8"})
    if result.returncode != 0 and "not found" in result.stderr:
        pytest.skip(f"man cannot render here: {result.stderr.strip()}")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "TWISTDLITE(1)" in result.stdout
