"""WSGIResource in process: the environ, start_response and write, streaming with back-pressure, errors,
a lost connection stopping the application's iteration, and the plugin's --wsgi application pickled."""

from __future__ import annotations

import logging
import pickle
import threading

import pytest

from netsupport import run, until
from twistdlite import reactor
from twistdlite.threadpool import ThreadPool
from twistdlite.web import resource, server, wsgi
from websupport import connect, exchange, get, one, parse_responses, settle


@pytest.fixture
def pool():
    threads = ThreadPool(0, 4, "test-wsgi")
    threads.start()
    yield threads
    threads.stop()


def site_for(app, pool, at=None):
    leaf = wsgi.WSGIResource(reactor, pool, app)
    if at is None:
        return server.Site(leaf)
    root = resource.Resource()
    root.putChild(at, leaf)
    return server.Site(root)


async def answer(site, data):
    channel, transport = connect(site)
    channel.dataReceived(data)
    await until(lambda: transport.data and not channel._active, timeout=10, what="the response")
    await settle()
    return transport.take()


def test_the_environ_follows_pep_3333(pool):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read()
        environ["wsgi.errors"].write("a note for the log\n")
        start_response("201 Created", [("X-App", "yes")])
        return [b"made"]

    async def main():
        site = site_for(app, pool, at=b"app")
        data = await answer(site, get(b"/app/sub/p%20q?x=1&y=2", b"Host: example.org:8080", b"X-Thing: a",
                                      b"X-Thing: b", b"X_Sneaky: no", b"Content-Type: text/plain",
                                      method=b"PUT", body=b"payload"))
        response = one(data)
        assert (response.status, response.body, response.headers["x-app"]) == (201, b"made", "yes")
        assert response.headers["content-length"] == "4"

    run(main())
    assert seen["REQUEST_METHOD"] == "PUT" and seen["SCRIPT_NAME"] == "/app" and seen["PATH_INFO"] == "/sub/p q"
    assert seen["QUERY_STRING"] == "x=1&y=2" and seen["SERVER_NAME"] == "example.org"
    assert seen["SERVER_PORT"] == "8080" and seen["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert seen["REMOTE_ADDR"] == "192.0.2.7" and seen["CONTENT_TYPE"] == "text/plain"
    assert seen["CONTENT_LENGTH"] == "7" and seen["body"] == b"payload"
    assert seen["HTTP_X_THING"] == "a,b" and "HTTP_X_SNEAKY" not in seen and "HTTP_CONTENT_TYPE" not in seen
    assert seen["wsgi.version"] == (1, 0) and seen["wsgi.url_scheme"] == "http" and seen["wsgi.multithread"]


def test_write_and_generators_are_streamed_chunked(pool):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")

        def rest():
            yield b"yielded, "
            yield b""
            yield b"done"
        return rest()

    async def main():
        response = one(await answer(site_for(app, pool), get(b"/")))
        assert response.headers["transfer-encoding"] == "chunked" and response.body == b"written, yielded, done"

    run(main())


def test_errors_before_and_after_the_head(pool, caplog):
    def before(environ, start_response):
        raise ValueError("before the head")

    def after(environ, start_response):
        start_response("200 OK", [])
        yield b"a start"
        raise ValueError("after the head")

    def not_bytes(environ, start_response):
        start_response("200 OK", [])
        return ["text"]

    def bad_status(environ, start_response):
        start_response("OK", [])
        return [b""]

    def recovering(environ, start_response):
        try:
            raise KeyError("x")
        except KeyError:
            import sys

            start_response("503 Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"try later"]

    def late_exc_info(environ, start_response):
        start_response("200 OK", [])
        yield b"sent"
        try:
            raise LookupError("after the head, through start_response")
        except LookupError:
            import sys

            start_response("500 Oops", [], sys.exc_info())  # PEP 3333: re-raises once the head is out
        yield b"never sent"

    async def main():
        channel, transport = connect(site_for(late_exc_info, pool))
        channel.dataReceived(get(b"/"))
        await until(lambda: transport.closed, timeout=10, what="the cut connection")
        assert transport.aborted and b"sent" in transport.data and b"never" not in transport.data
        for app in (before, not_bytes, bad_status):
            assert one(await answer(site_for(app, pool), get(b"/"))).status == 500, app
        channel, transport = connect(site_for(after, pool))
        channel.dataReceived(get(b"/"))
        await until(lambda: transport.closed, timeout=10, what="the cut connection")
        assert transport.aborted and b"a start" in transport.data
        assert one(await answer(site_for(recovering, pool), get(b"/"))).status == 503

    with caplog.at_level(logging.ERROR, logger="twistdlite.web"):
        run(main())
    logged = [r for r in caplog.records if r.exc_info]
    assert {type(r.exc_info[1]) for r in logged} >= {ValueError, TypeError, LookupError}


def test_a_client_that_stops_reading_pauses_the_application_and_a_lost_one_stops_it(pool):
    produced = []
    closed = threading.Event()

    class Endless:
        def __init__(self):
            self.n = 0

        def __iter__(self):
            return self

        def __next__(self):
            self.n += 1
            produced.append(self.n)
            return b"c" * 1000

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [])
        return Endless()

    async def main():
        channel, transport = connect(site_for(app, pool))
        channel.dataReceived(get(b"/"))
        await until(lambda: produced, what="the application to start")
        channel.pauseProducing()  # the send buffer is full
        await settle(50)
        count = len(produced)
        await settle(50)
        assert len(produced) <= count + 1  # it waits while the client does not read
        transport.loseConnection()
        await until(closed.is_set, timeout=10, what="the iterable to be closed")

    run(main())


def test_the_web_plugins_wsgi_application_pickles(tmp_path, monkeypatch):
    from twistdlite.launch import plugins

    (tmp_path / "pickled_app.py").write_text("def application(environ, start_response):\n"
                                             "    start_response('200 OK', [])\n    return [b'hi']\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    application = plugins.build("web", ["--wsgi", "pickled_app.application", "--max-threads", "3",
                                        "--listen", "tcp:0:interface=127.0.0.1"])
    again = pickle.loads(pickle.dumps(application))
    (top,) = list(again)
    listener, pool_service = list(top)
    assert pool_service.pool.max == 3 and listener.factory.resource._threadpool is pool_service.pool
    assert listener.factory.resource._application.__name__ == "application"
    with pytest.raises(TypeError, match="callable"):
        wsgi.WSGIResource(reactor, pool_service.pool, 3)
    with pytest.raises(TypeError, match="callInThread"):
        wsgi.WSGIResource(reactor, object(), lambda e, s: [])


def test_a_request_over_tls_has_the_https_url_scheme(pool, monkeypatch):
    import websupport

    monkeypatch.setattr(websupport.WebTransport, "get_extra_info",
                        lambda self, name, default=None: object() if name == "sslcontext" else default)
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return [b"secure"]

    async def main():
        assert one(await answer(site_for(app, pool), get(b"/"))).body == b"secure"

    run(main())
    assert seen["wsgi.url_scheme"] == "https"
