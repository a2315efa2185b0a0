"""The web plugin's options in process: each maps onto twistdlite.web (a real loop and sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from netsupport import loop_param, make_cert, run
from test_plugins import serving
from twistdlite.launch import plugins
from twistdlite.plugins import web as web_plugin
from websupport import parse_responses

LOOPBACK = "tcp:0:interface=127.0.0.1"


async def ask(port: int, *paths: bytes, tls: ssl.SSLContext = None) -> list:
    """The responses to GETs of ``paths`` pipelined on one connection (the last one closes it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    for index, path in enumerate(paths):
        last = b"Connection: close\r\n" if index == len(paths) - 1 else b""
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + last + b"\r\n")
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return parse_responses(data)


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "start.txt").write_text("the start page")
    (root / "about.html").write_text("<p>about</p>")
    (root / "notes.md").write_text("# notes")
    (root / "blob").write_bytes(b"??")
    (tmp_path / "boom.py").write_text(
        "from twistdlite.web import resource\n\n\n"
        "class Boom(resource.Resource):\n    isLeaf = True\n\n"
        "    def render_GET(self, request):\n        raise KeyError('the inner secret')\n")
    return root


@loop_param()
def test_index_mime_type_ignore_ext_and_logfile(loop, www, tmp_path):
    log = tmp_path / "access.log"

    async def main():
        async with serving("web", "--path", str(www), "--listen", LOOPBACK, "--index", "start.txt",
                           "--mime-type", "application/octet-stream", "--ignore-ext", "html", "--logfile",
                           str(log)) as (_, port):
            index, about, blob, notes = await ask(port, b"/docs/", b"/about", b"/blob", b"/notes")
            assert index.body == b"the start page"
            assert about.body == b"<p>about</p>"  # /about found about.html
            assert blob.headers["content-type"] == "application/octet-stream"
            assert notes.status == 404  # .md is not an ignored extension
        async with serving("web", "--path", str(www), "--listen", LOOPBACK, "--allow-ignore-ext") as (_, port):
            (notes,) = await ask(port, b"/notes")
            assert notes.body == b"# notes"

    run(main(), loop)
    lines = log.read_text().splitlines()
    assert len(lines) == 4 and lines[0].endswith('"GET /docs/ HTTP/1.1" 200 14 "-" "-"')


def test_display_tracebacks_only_when_asked(www, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    async def main():
        async with serving("web", "--class", "boom.Boom", "--listen", LOOPBACK) as (_, port):
            (quiet,) = await ask(port, b"/")
        async with serving("web", "--class", "boom.Boom", "--listen", LOOPBACK, "--display-tracebacks") as (_, port):
            (loud,) = await ask(port, b"/")
        return quiet, loud

    quiet, loud = run(main())
    assert quiet.status == loud.status == 500
    assert b"the inner secret" not in quiet.body and b"KeyError: &#x27;the inner secret&#x27;" in loud.body


def test_older_spellings_of_listen():
    assert web_plugin._listen_descriptions({"port": "8081"}) == ["tcp:8081"]
    assert web_plugin._listen_descriptions({"port": "tcp:8082:interface=127.0.0.1"}) == \
        ["tcp:8082:interface=127.0.0.1"]
    assert web_plugin._listen_descriptions({"https": "8443", "certificate": "c:1.pem", "privkey": "k.pem"}) == \
        ["ssl:8443:privateKey=k.pem:certKey=c\\:1.pem"]
    assert web_plugin._listen_descriptions({}) == ["tcp:8080"]


def test_https_serves_over_tls(www, tmp_path):
    key, cert = make_cert(tmp_path)
    free = __import__("socket").socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()

    async def main():
        application = plugins.build("web", ["--path", str(www), "--https", str(port), "-c", str(cert), "-k", str(key),
                                            "--listen", LOOPBACK])
        from twistdlite import service

        root = service.IService(application)
        root.privilegedStartService()
        await service.maybe_await(root.startService())
        try:
            tls = ssl.create_default_context(cafile=str(cert))
            (answer,) = await ask(port, b"/about.html", tls=tls)
            assert answer.status == 200 and answer.body == b"<p>about</p>"
        finally:
            await service.maybe_await(root.stopService())

    run(main())
