"""Plugins in process: discovery (built in and entry points), the CLI edge, and the built-in servers.

The built-in servers run on asyncio and uvloop here, as a plugin builds them;
tests/test_plugins_e2e.py runs them in real twistdlite processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import re
import socket
import textwrap
from contextlib import asynccontextmanager
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from netsupport import loop_param, run, until
from twistdlite import internet, protocol, service
from twistdlite.launch import cli, loader, plugins
from twistdlite.launch.errors import PluginError, UnknownPlugin, UsageError
from twistdlite.launch.options import Options
from twistdlite.plugins import _proxy
from twistdlite.web import server as web_server, static as web_static


@pytest.fixture(autouse=True)
def fresh_discovery():
    """Each test discovers plugins afresh (entry points on a changed sys.path), and imports its own modules."""
    import sys

    plugins.forget()
    modules = set(sys.modules)
    yield
    plugins.forget()
    for name in set(sys.modules) - modules:
        if name.endswith("_plugin"):
            del sys.modules[name]


def make_dist(where: Path, entry_points: dict, modules: dict = None, dist: str = "hello_plugin") -> Path:
    """A distribution installed in ``where`` by hand: a dist-info with ``entry_points.txt``, and modules."""
    info = where / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 1.0\n")
    lines = ["[twistdlite.plugins]"] + [f"{name} = {value}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in (modules or {}).items():
        (where / f"{name}.py").write_text(textwrap.dedent(source))
    return where


#: A third-party plugin: an echo server with a --greeting, built the documented way.
HELLO = '''
    import click
    from twistdlite import protocol, strports


    class Greeter(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(self.factory.greeting.encode() + b"\\n")

        def dataReceived(self, data):
            self.transport.write(data)


    class GreeterFactory(protocol.ServerFactory):
        protocol = Greeter

        def __init__(self, greeting):
            self.greeting = greeting


    class HelloMaker:
        tapname = "hello"
        description = "Greet, then echo."
        options = click.Command("hello", params=[
            click.Option(["--greeting"], default="hello"),
            click.Option(["--listen"], default="tcp:0:interface=127.0.0.1"),
        ])

        def makeService(self, options):
            return strports.service(options["listen"], GreeterFactory(options["greeting"]))


    maker = HelloMaker()
'''


def usage_error(capsys, *args: str) -> str:
    assert cli.run_cli(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("twistdlite: error: "), err
    return err.strip()


def load_error(capsys, *args: str) -> str:
    assert cli.run_cli(list(args)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("twistdlite: error: "), err
    return err.strip()


# -- discovery --------------------------------------------------------------------------------------------

def test_the_built_in_plugins_are_the_public_modules_of_twistdlite_plugins():
    assert plugins.builtin_names() == ["portforward", "web"]
    assert {"portforward", "web"} <= set(plugins.names())
    web = plugins.load("web")
    assert (web.name, web.tapname, web.origin) == ("web", "web", "twistdlite.plugins.web")
    assert web.description == "Serve files, a Resource or a WSGI application over HTTP/1.1."
    assert isinstance(web.command, click.Command)
    assert plugins.load("web") is web  # loaded once


def test_an_entry_point_plugin_is_found_and_built(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, {"hello": "hello_plugin:maker"},
                                              {"hello_plugin": HELLO})))
    assert "hello" in plugins.names()
    hello = plugins.load("hello")
    assert hello.origin == "entry point hello = hello_plugin:maker, from hello-plugin 1.0"
    assert hello.description == "Greet, then echo."
    application = plugins.build("hello", ["--greeting", "bonjour"])
    assert isinstance(application, service.Application) and application.name == "hello"
    (server,) = list(application)
    assert isinstance(server, internet.TCPServer) and server.factory.greeting == "bonjour"
    assert pickle.loads(pickle.dumps(application)).name == "hello"  # the shutdown .tap can hold it
    # The loader builds it from the options the CLI makes.
    options = Options(plugin="hello", plugin_args=("--greeting", "hi"), nodaemon=True)
    assert list(loader.load(options))[0].factory.greeting == "hi"


def test_built_ins_and_stop_status_win_over_entry_points_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, {"web": "nowhere:x", "stop": "nowhere:x"})))
    assert plugins.names().count("web") == 1 and "stop" not in plugins.names()
    assert plugins.load("web").origin == "twistdlite.plugins.web"


def test_a_module_value_means_its_service_maker_and_a_class_is_instantiated(tmp_path, monkeypatch):
    source = HELLO.replace("maker = HelloMaker()", "serviceMaker = HelloMaker()")
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, {"hello": "hello_plugin", "hi": "hello_plugin:HelloMaker"},
                                              {"hello_plugin": source})))
    assert plugins.load("hello").maker is __import__("hello_plugin").serviceMaker
    assert type(plugins.load("hi").maker).__name__ == "HelloMaker"


def test_a_plugin_without_options_or_tapname_takes_no_options_and_is_named_by_its_subcommand(tmp_path,
                                                                                             monkeypatch):
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, {"bare": "bare_plugin:maker"}, {"bare_plugin": '''
        from twistdlite import service

        class Maker:
            def makeService(self, options):
                assert options == {}
                return service.Service()

        maker = Maker()
    '''})))
    application = plugins.build("bare", [])
    assert application.name == "bare" and len(list(application)) == 1
    with pytest.raises(UsageError, match="^bare: Got unexpected extra argument"):
        plugins.build("bare", ["extra"])


def test_an_application_made_by_the_plugin_is_run_as_it_is(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, {"app": "app_plugin:maker"}, {"app_plugin": '''
        from twistdlite import service

        class Maker:
            tapname = "ignored"
            def makeService(self, options):
                return service.Application("mine")

        maker = Maker()
    '''})))
    assert plugins.build("app", []).name == "mine"


def test_unknown_plugin():
    with pytest.raises(UnknownPlugin, match=r"^No such command 'nope'\. Available plugins: portforward, web\.$"):
        plugins.build("nope", [])


BROKEN = {
    "gone": ("no_such_module_here:maker", "ModuleNotFoundError: No module named 'no_such_module_here'"),
    "noattr": ("broken_plugin:missing", "AttributeError: module 'broken_plugin' has no attribute 'missing'"),
    "malformed": ("broken_plugin:", "its value 'broken_plugin:' is not 'module:object'"),
    "notmaker": ("broken_plugin:not_a_maker", "an int with no makeService(options) method is not a plugin"),
    "badoptions": ("broken_plugin:bad_options", "its options is a dict, not a click.Command"),
    "group": ("broken_plugin:group_options", "its options is a click.Group, not a click.Command"),
    "nomaker": ("broken_plugin", "the module broken_plugin has no serviceMaker"),
    "raises": ("raising_plugin:maker", "RuntimeError: the plugin module blew up"),
    "syntax": ("syntax_plugin:maker", "SyntaxError: invalid syntax (syntax_plugin.py, line 1)"),
}

BROKEN_MODULES = {
    "broken_plugin": '''
        import click

        not_a_maker = 42

        class BadOptions:
            options = {"--path": "."}
            def makeService(self, options):
                pass

        bad_options = BadOptions()

        class GroupOptions(BadOptions):
            options = click.Group("group")

        group_options = GroupOptions()
    ''',
    "raising_plugin": "raise RuntimeError('the plugin module blew up')\n",
    "syntax_plugin": "def (:\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_plugin_is_one_line_naming_it_exit_1(name, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, {n: v for n, (v, _) in BROKEN.items()}, BROKEN_MODULES)))
    value, reason = BROKEN[name]
    with pytest.raises(PluginError) as caught:
        plugins.load(name)
    assert caught.value.message.endswith(reason), caught.value.message
    expected = f"twistdlite: error: plugin '{name}' (entry point {name} = {value}, from hello-plugin 1.0) " \
               f"cannot be loaded: {reason}"
    assert load_error(capsys, "-n", name, "--whatever") == expected
    # --help still works, and says what is wrong with it.
    plugins.forget()
    result = CliRunner().invoke(cli.cli, prog_name="twistdlite", args=["--help"])
    assert result.exit_code == 0
    assert re.search(rf"^  {name} +\[cannot be loaded: ", result.output, re.M), result.output


# -- makeService's errors ---------------------------------------------------------------------------------

MAKERS = '''
    import click
    from twistdlite import service

    class Maker:
        def __init__(self, outcome):
            self.outcome = outcome

        def makeService(self, options):
            return self.outcome()

    def usage():
        raise click.UsageError("--these and --those cannot be used together")

    def failure():
        raise click.ClickException("the cache directory /nowhere does not exist")

    def bug():
        return {}["missing"]

    def leaves():
        raise SystemExit(3)

    usage_maker = Maker(usage)
    failure_maker = Maker(failure)
    bug_maker = Maker(bug)
    exit_maker = Maker(leaves)
    string_maker = Maker(lambda: "a service?")
'''


@pytest.fixture
def makers(tmp_path, monkeypatch):
    entry_points = {name: f"makers_plugin:{name}_maker" for name in ("usage", "failure", "bug", "exit", "string")}
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, entry_points, {"makers_plugin": MAKERS})))


def test_make_service_errors_become_our_errors(makers):
    with pytest.raises(UsageError, match=r"^usage: --these and --those cannot be used together$"):
        plugins.build("usage", [])
    with pytest.raises(PluginError, match=r"^failure: the cache directory /nowhere does not exist$") as caught:
        plugins.build("failure", [])
    assert caught.value.exit_code == 1 and caught.value.detail == ""
    with pytest.raises(PluginError, match=r"^plugin 'exit' called sys.exit\(3\) in makeService$"):
        plugins.build("exit", [])
    with pytest.raises(PluginError, match=r"^plugin 'string': makeService returned a str, not a twistdlite service"):
        plugins.build("string", [])


def test_a_bug_in_make_service_shows_the_plugins_frames_not_ours(makers, capsys):
    assert cli.run_cli(["-n", "bug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert 'makers_plugin.py", line 10, in makeService' in err and 'in bug\n' in err
    assert "twistdlite/launch" not in err
    assert err.endswith("twistdlite: error: plugin 'bug' failed to make its service: KeyError: 'missing'\n")


# -- the CLI edge -----------------------------------------------------------------------------------------

def test_help_lists_stop_status_and_every_plugin_with_its_description(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(make_dist(tmp_path, {"hello": "hello_plugin:maker"}, {"hello_plugin": HELLO})))
    result = CliRunner().invoke(cli.cli, prog_name="twistdlite", args=["--help"])
    assert result.exit_code == 0
    commands = result.output.split("\nCommands:\n", 1)[1]
    rows = dict(re.findall(r"^  (\S+) +(.+)$", commands, re.M))
    assert rows["hello"] == "Greet, then echo."
    assert rows["web"] == "Serve files, a Resource or a WSGI application over HTTP/1.1."
    assert rows["portforward"] == "Forward TCP connections to another host and port."
    assert rows["stop"].startswith("Stop the daemon") and rows["status"].startswith("Say whether the daemon runs")


def test_plugin_help_shows_the_plugins_options():
    web = CliRunner().invoke(cli.cli, prog_name="twistdlite", args=["web", "--help"])
    assert web.exit_code == 0 and web.output.startswith("Usage: twistdlite web [OPTIONS]")
    assert "--path DIR" in web.output and "--listen DESCRIPTION" in web.output
    assert CliRunner().invoke(cli.cli, prog_name="twistdlite", args=["web", "-h"]).output == web.output
    forward = CliRunner().invoke(cli.cli, prog_name="twistdlite", args=["portforward", "--help"])
    assert forward.exit_code == 0
    for option in ("-p, --port, --listen", "-h, --host", "-d, --dest_port, --dest-port"):
        assert option in forward.output


def test_launcher_options_before_the_plugin_and_its_own_after(tmp_path, monkeypatch):
    """The CLI hands the runner the launcher's options and the plugin's arguments untouched."""
    from twistdlite.launch import runner

    seen = []
    monkeypatch.setattr(runner, "run", lambda options: seen.append(options) or 0)
    argv = ["-n", "--pidfile", "", "-o", "web", "--path", str(tmp_path), "--listen", "tcp:0"]
    assert cli.run_cli(argv) == 0
    (options,) = seen
    assert options.nodaemon and options.no_save and options.pidfile == ""
    assert options.plugin == "web" and options.plugin_args == ("--path", str(tmp_path), "--listen", "tcp:0")
    assert options.python is None and options.file is None
    # After the plugin's name, options are the plugin's: -n is not the launcher's there.
    assert cli.run_cli(["web", "-n"]) == 2 and len(seen) == 1


def test_usage_errors_at_the_cli_edge(capsys, tmp_path):
    assert usage_error(capsys, "-n", "frobnicate") == \
        "twistdlite: error: No such command 'frobnicate'. Available plugins: portforward, web."
    assert usage_error(capsys, "-y", "x.tac", "web") == \
        "twistdlite: error: -y/--python and a plugin (web) cannot be used together: the plugin makes the application"
    assert "-f/--file and a plugin (portforward) cannot be used together" in \
        usage_error(capsys, "-f", "x.tap", "portforward")
    assert usage_error(capsys, "-n", "web", "--bogus") == "twistdlite: error: web: No such option '--bogus'."
    assert usage_error(capsys, "-n", "web", "--path") == "twistdlite: error: web: Option '--path' requires an argument."
    assert usage_error(capsys, "-n", "web", "--path", str(tmp_path), "--listen", "tcp:99999") == \
        "twistdlite: error: web: invalid value for '--listen': bad server endpoint description 'tcp:99999': " \
        "the port must be a number from 0 to 65535, not '99999'"
    listen = "tcp:0:interface=127.0.0.1:backlog=99999999999999999999"
    assert usage_error(capsys, "-n", "web", "--path", str(tmp_path), "--listen", listen) == \
        f"twistdlite: error: web: invalid value for '--listen': bad server endpoint description {listen!r}: " \
        "backlog must be at most 2147483647, not '99999999999999999999'"
    assert "portforward: invalid value for '-d' / '--dest_port' / '--dest-port'" in \
        usage_error(capsys, "-n", "portforward", "-d", "0")
    assert usage_error(capsys, "-n", "portforward", "--host", "") == \
        "twistdlite: error: portforward: invalid value for '--host': an empty host name"
    assert list(tmp_path.iterdir()) == []


def test_a_missing_or_unreadable_path_is_one_line_exit_1(capsys, tmp_path, monkeypatch):
    missing = tmp_path / "missing"
    assert load_error(capsys, "-n", "web", "--path", str(missing)) == \
        f"twistdlite: error: web: --path {missing}: no such file or directory"
    monkeypatch.chdir(tmp_path)  # a relative path names the absolute one it means
    assert load_error(capsys, "-n", "web", "--path", "docs") == \
        f"twistdlite: error: web: --path docs ({tmp_path / 'docs'}): no such file or directory"
    (tmp_path / "locked").mkdir()
    real_access = os.access
    # (root reads anything: the permission check is shown with an access() that says no)
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).endswith("locked") else
                        real_access(path, mode))
    assert load_error(capsys, "-n", "web", "--path", "locked") == \
        f"twistdlite: error: web: --path locked ({tmp_path / 'locked'}): permission denied"


# -- the web plugin's server ------------------------------------------------------------------------------

@asynccontextmanager
async def serving(name: str, *args: str):
    """Start what plugin ``name`` makes from ``args``; yields (application, the first TCP port)."""
    application = plugins.build(name, list(args))
    root = service.IService(application)
    root.privilegedStartService()
    await service.maybe_await(root.startService())
    try:
        yield application, _tcp_port(application)
    finally:
        await service.maybe_await(root.stopService())


def _tcp_port(node) -> int:
    if isinstance(node, internet.TCPServer):
        return node.getHost().port
    for child in node:
        return _tcp_port(child)
    raise AssertionError("no TCP server in the application")


async def http(port: int, request: bytes, pieces: int = 1) -> tuple:
    """Send ``request`` (in ``pieces`` writes) and read the response to EOF: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    step = max(1, len(request) // pieces)
    for start in range(0, len(request), step):
        writer.write(request[start:start + step])
        await writer.drain()
        await asyncio.sleep(0)
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {key.lower(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello, world\n")
    (root / "sub" / "index.html").write_text("<p>index</p>")
    (tmp_path / "secret.txt").write_text("not for the web")
    return root


@loop_param()
def test_web_serves_files_listings_and_errors(loop, site, caplog):
    close = b"Connection: close\r\n"
    async def main():
        async with serving("web", "--path", str(site), "--listen", "tcp:0:interface=127.0.0.1") as (app, port):
            assert app.name == "web"
            status, headers, body = await http(port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n" + close +
                                                     b"User-Agent: tester/1.0\r\nReferer: http://r/\r\n\r\n")
            assert status == "HTTP/1.1 200 OK" and body == b"hello, world\n"
            assert headers["content-length"] == "13" and headers["content-type"] == "text/plain"
            assert headers["server"].startswith("twistdlite/")
            status, _, body = await http(port, b"GET / HTTP/1.0\r\n\r\n", pieces=7)  # a head split up
            assert status == "HTTP/1.1 200 OK"
            assert b'<a href="hello.txt">hello.txt</a>' in body and b'<a href="sub/">sub/</a>' in body
            status, headers, _ = await http(port, b"GET /sub HTTP/1.1\r\n" + close + b"\r\n")
            assert status == "HTTP/1.1 301 Moved Permanently" and headers["location"] == "/sub/"
            assert (await http(port, b"GET /sub/ HTTP/1.1\r\n" + close + b"\r\n"))[2] == b"<p>index</p>"
            assert (await http(port, b"GET /nothing HTTP/1.1\r\n" + close + b"\r\n"))[0] == "HTTP/1.1 404 Not Found"
            for traversal in (b"/../secret.txt", b"/sub/../../secret.txt", b"/%2e%2e/secret.txt"):
                status, _, body = await http(port, b"GET " + traversal + b" HTTP/1.1\r\n" + close + b"\r\n")
                assert status == "HTTP/1.1 404 Not Found" and b"not for the web" not in body
            status, headers, body = await http(port, b"HEAD /hello.txt HTTP/1.1\r\n" + close + b"\r\n")
            assert status == "HTTP/1.1 200 OK" and headers["content-length"] == "13" and body == b""
            status, headers, _ = await http(port, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n" + close + b"\r\nhi")
            assert status == "HTTP/1.1 405 Method Not Allowed" and headers["allow"] == "GET, HEAD"
            assert (await http(port, b"GET / HTTP/1.1 and more\r\n\r\n"))[0] == "HTTP/1.1 400 Bad Request"
            huge = b"GET / HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 70000 + b"\r\n\r\n"
            assert (await http(port, huge))[0] == "HTTP/1.1 431 Request Header Fields Too Large"
            endless = b"GET / HTTP/1.1\r\n" + b"X-Filler: aaaaaaaaaaaaaaaaaaaaaa\r\n" * 3000  # never ends
            assert (await http(port, endless, pieces=50))[0] == "HTTP/1.1 431 Request Header Fields Too Large"

    with caplog.at_level(logging.INFO, logger="twistdlite.web"):
        run(main(), loop)
    lines = [r.getMessage() for r in caplog.records if r.name == "twistdlite.web" and r.getMessage()[:1] == '"']
    assert re.fullmatch(r'"127\.0\.0\.1" - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /hello\.txt HTTP/1\.1" 200 13 "http://r/" "tester/1\.0"', lines[0]), lines[0]
    assert any(line.endswith('"HEAD /hello.txt HTTP/1.1" 200 - "-" "-"') for line in lines)
    assert sum(' 404 ' in line for line in lines) == 4
    assert sum(' 431 ' in line for line in lines) == 2
    assert len(lines) == 13, lines


class _Spy(web_static._FileSender):
    made: list = []

    def __init__(self, *args):
        super().__init__(*args)
        self.made.append(self)


@loop_param()
def test_web_streams_a_large_file_as_fast_as_the_client_reads(loop, tmp_path, monkeypatch):
    """A client that stops reading stops the reading of the file: memory stays bounded."""
    size = 48 * 1024 * 1024
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(size)  # sparse: zeros, except for a marker at each end
        handle.write(b"START")
        handle.seek(size - 3)
        handle.write(b"END")
    monkeypatch.setattr(web_static, "_FileSender", _Spy)
    _Spy.made = []

    async def main():
        async with serving("web", "--path", str(tmp_path), "--listen", "tcp:0:interface=127.0.0.1") as (_, port):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            client.connect(("127.0.0.1", port))
            client.sendall(b"GET /big.bin HTTP/1.1\r\nConnection: close\r\n\r\n")
            await until(lambda: _Spy.made, what="the body producer")
            producer = _Spy.made[0]
            # Wait until the file's reading has stalled (the same position over a few polls).
            history = []

            def stalled():
                history.append(producer.handle.tell() if producer.handle else size)
                return len(history) > 20 and len(set(history[-20:])) == 1

            await until(stalled, timeout=10, what="the producer to stop reading")
            assert history[-1] < size // 4, f"read {history[-1]} bytes of the file for a client that reads nothing"
            # Now read everything: the whole file arrives, in order.
            client.setblocking(False)
            loop_ = asyncio.get_running_loop()
            received = bytearray()
            while True:
                data = await loop_.sock_recv(client, 1 << 20)
                if not data:
                    break
                received += data
            client.close()
            body = bytes(received).partition(b"\r\n\r\n")[2]
            assert len(body) == size and body.startswith(b"START") and body.endswith(b"END")
            assert producer.handle is None  # the file was closed

    run(main(), loop, timeout=60)


@loop_param()
def test_web_closes_a_client_that_never_sends_a_request(loop, tmp_path, caplog):
    async def main():
        site = web_server.Site(web_static.File(str(tmp_path)), headTimeout=0.1)
        server = internet.TCPServer(0, site, interface="127.0.0.1")
        server.privilegedStartService()
        await server.startService()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.getHost().port)
            writer.write(b"GET / HTTP/1.1\r\n")  # and never the end of the head
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        finally:
            await server.stopService()

    with caplog.at_level(logging.INFO, logger="twistdlite.web"):
        run(main(), loop)
    assert any("Timing out client" in r.getMessage() for r in caplog.records)


def test_the_web_site_pickles_without_its_connections(site):
    application = plugins.build("web", ["--path", str(site), "--listen", "tcp:0:interface=127.0.0.1"])
    again = pickle.loads(pickle.dumps(application))
    (root,) = list(again)
    (server,) = list(root)
    assert isinstance(server.factory, web_server.Site) and server.factory.resource.path == str(site)


# -- the portforward plugin's forwarder ------------------------------------------------------------------

class Spy:
    """Records the instances of a protocol class (patched over it in its module)."""

    def __init__(self, monkeypatch, module, name):
        self.made = []
        original = getattr(module, name)
        made = self.made

        class Recorded(original):
            def connectionMade(self):
                made.append(self)
                super().connectionMade()

        monkeypatch.setattr(module, name, Recorded)
        if name == "ProxyServer":
            monkeypatch.setattr(_proxy.ProxyFactory, "protocol", Recorded)


class Destination(protocol.Protocol):
    """The far end: echoes, or holds still (not reading) when told to."""

    def connectionMade(self):
        self.factory.made.append(self)
        self.received = 0
        if self.factory.hold:
            self.transport.pauseProducing()

    def dataReceived(self, data):
        self.received += len(data)
        if self.factory.echo:
            self.transport.write(data)

    def connectionLost(self, reason=None):
        self.factory.lost += 1


def destination(echo=True, hold=False):
    factory = protocol.ServerFactory.forProtocol(Destination)
    factory.made, factory.lost, factory.echo, factory.hold = [], 0, echo, hold
    server = internet.TCPServer(0, factory, interface="127.0.0.1")
    server.privilegedStartService()
    return server, factory


@loop_param()
def test_portforward_forwards_both_ways_and_closes_both_sides_together(loop):
    async def main():
        far, far_factory = destination()
        await far.startService()
        try:
            async with serving("portforward", "--port", "tcp:0:interface=127.0.0.1", "-h", "127.0.0.1",
                               "--dest_port", str(far.getHost().port)) as (app, port):
                assert app.name == "portforward"
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                payload = os.urandom(3 * 1024 * 1024)
                writer.write(payload)
                echoed = await reader.readexactly(len(payload))
                assert echoed == payload
                writer.close()
                await until(lambda: far_factory.lost == 1, what="the far end to be closed too")
                # The far end closing closes the client's side.
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"ping")
                assert await reader.readexactly(4) == b"ping"
                far_factory.made[-1].transport.loseConnection()
                assert await asyncio.wait_for(reader.read(), 5) == b""
                writer.close()
        finally:
            await far.stopService()

    run(main(), loop, timeout=30)


def _reading(transport) -> bool:
    return transport.transport.is_reading()


@loop_param()
def test_portforward_back_pressure_toward_a_slow_destination(loop, monkeypatch):
    servers = Spy(monkeypatch, _proxy, "ProxyServer")

    async def main():
        far, far_factory = destination(echo=False, hold=True)
        await far.startService()
        try:
            async with serving("portforward", "-p", "tcp:0:interface=127.0.0.1", "--host", "127.0.0.1",
                               "-d", str(far.getHost().port)) as (_, port):
                client = socket.create_connection(("127.0.0.1", port))
                client.setblocking(False)
                await until(lambda: far_factory.made, what="the forwarded connection")
                proxy = servers.made[0]
                await until(lambda: proxy.peer is not None, what="the forwarder to connect")
                sent, chunk = 0, b"x" * 65536
                for _ in range(2048):  # at most 128 MiB offered
                    try:
                        sent += client.send(chunk)
                    except BlockingIOError:
                        await asyncio.sleep(0.001)
                    if not _reading(proxy.transport):
                        break
                    await asyncio.sleep(0)
                assert not _reading(proxy.transport), f"the forwarder never stopped reading ({sent} bytes)"
                assert proxy.peer.transport.getWriteBufferSize() <= 1024 * 1024
                # The far end reads again: everything arrives and the forwarder reads again.
                far_factory.made[0].transport.resumeProducing()
                await until(lambda: far_factory.made[0].received >= sent, timeout=20, what="all the bytes")
                assert _reading(proxy.transport)
                client.close()

        finally:
            await far.stopService()

    run(main(), loop, timeout=60)


@loop_param()
def test_portforward_back_pressure_toward_a_slow_client(loop, monkeypatch):
    clients = Spy(monkeypatch, _proxy, "ProxyClient")

    async def main():
        far, far_factory = destination(echo=False)
        await far.startService()
        try:
            async with serving("portforward", "-p", "tcp:0:interface=127.0.0.1", "--host", "127.0.0.1",
                               "-d", str(far.getHost().port)) as (_, port):
                client = socket.socket()
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                client.connect(("127.0.0.1", port))
                await until(lambda: clients.made and far_factory.made, what="the forwarded connection")
                toward, far_end = clients.made[0], far_factory.made[0]
                sent = 0
                while _reading(toward.transport) and sent < 128 * 1024 * 1024:
                    far_end.transport.write(b"y" * 65536)
                    sent += 65536
                    await asyncio.sleep(0)
                assert not _reading(toward.transport), "the forwarder never stopped reading from the far end"
                assert toward.peer.transport.getWriteBufferSize() <= 1024 * 1024
                client.setblocking(False)
                received = 0
                while received < sent:
                    data = await asyncio.get_running_loop().sock_recv(client, 1 << 20)
                    assert data and data == b"y" * len(data)
                    received += len(data)
                assert received == sent
                client.close()
        finally:
            await far.stopService()

    run(main(), loop, timeout=60)


def test_portforward_keeps_what_the_client_sends_before_the_destination_answers():
    from netsupport import FakeTransport

    class Pausable(FakeTransport):
        paused = False

        def pauseProducing(self):
            self.paused = True

    server = _proxy.ProxyServer()
    server.transport = Pausable()  # connected; the destination has not answered yet
    chunk = b"c" * 10000
    sent = b""
    while not server.transport.paused:
        server.dataReceived(chunk)
        sent += chunk
        assert len(sent) <= _proxy.PENDING_LIMIT + len(chunk), "never paused reading"
    assert len(sent) >= _proxy.PENDING_LIMIT  # kept, bounded: reading paused at the limit
    destination = _proxy.ProxyClient()
    destination.transport = FakeTransport()
    server.setPeer(destination)
    server.flushPending()
    server.dataReceived(b"after")
    assert destination.transport.value() == sent + b"after"  # all of it, in order


@loop_param()
def test_portforward_to_a_closed_port_closes_the_client_and_says_why(loop, caplog):
    async def main():
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            closed = unused.getsockname()[1]
        async with serving("portforward", "-p", "tcp:0:interface=127.0.0.1", "-h", "127.0.0.1",
                           "-d", str(closed)) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    with caplog.at_level(logging.INFO, logger="twistdlite.portforward"):
        run(main(), loop)
    assert any(re.match(r"Cannot forward to .*127\.0\.0\.1.*: .*[Rr]efused", r.getMessage())
               for r in caplog.records), [r.getMessage() for r in caplog.records]
