"""twistdlite.web in process: Resource trees, Request's API, Site's rendering and errors, util.redirectTo.

Each test feeds raw HTTP to an HTTPChannel over a fake transport (tests/websupport.py) on a real loop.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from netsupport import run
from twistdlite.web import _channel, resource, server, util
from twistdlite.web.http_headers import Headers
from websupport import connect, exchange, get, one, parse_responses, settle


@pytest.fixture(autouse=True, params=sorted(_channel._PARSERS))
def http_parser(request, monkeypatch):
    """Every test here runs with each installed parser: httptools, and h11 (the pure-Python fallback)."""
    monkeypatch.setattr(_channel, "DEFAULT_PARSER", request.param)
    return request.param


class Echo(resource.Resource):
    """Renders what it saw of the request."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render_GET(self, request):
        self.seen.append(request)
        request.setHeader(b"content-type", b"text/plain")
        return b"%s %s pre=%r post=%r" % (request.method, request.path, request.prepath, request.postpath)

    def render_POST(self, request):
        self.seen.append(request)
        return b"body=" + request.content.read()


class Later(resource.Resource):
    """Finishes its requests when told (NOT_DONE_YET)."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.waiting = []

    def render_GET(self, request):
        self.waiting.append(request)
        return server.NOT_DONE_YET


def tree():
    root = resource.Resource()
    echo = Echo()
    root.putChild(b"echo", echo)
    branch = resource.Resource()
    branch.putChild(b"leaf", echo)
    root.putChild(b"branch", branch)
    return root, echo


def test_the_tree_is_walked_by_segment_down_to_a_leaf_which_gets_the_rest():
    async def main():
        root, echo = tree()
        site = server.Site(root)
        response = one(await exchange(site, get(b"/branch/leaf/a/b%20c?x=1&x=2&y=")))
        assert response.status == 200
        assert response.body == b"GET /branch/leaf/a/b%20c pre=[b'branch', b'leaf'] post=[b'a', b'b c']"
        request = echo.seen[-1]
        assert request.args == {b"x": [b"1", b"2"], b"y": [b""]}
        assert request.uri == b"/branch/leaf/a/b%20c?x=1&x=2&y=" and request.clientproto == b"HTTP/1.1"
        assert one(await exchange(site, get(b"/nothing/here"))).status == 404
        assert one(await exchange(site, get(b"/branch/other"))).status == 404

    run(main())


def test_render_dispatches_by_method_405_with_allow_and_head_falls_back_to_get():
    async def main():
        root, _ = tree()
        site = server.Site(root)
        response = one(await exchange(site, get(b"/echo", method=b"DELETE")))
        assert response.status == 405 and response.headers["allow"] == "GET, HEAD, POST"
        head = one(await exchange(site, get(b"/echo/x", method=b"HEAD")), head_only=True)
        assert head.status == 200 and head.body == b""
        assert int(head.headers["content-length"]) == len(b"HEAD /echo/x pre=[b'echo'] post=[b'x']")
        class PostOnly(resource.Resource):
            isLeaf = True

            def render_POST(self, request):
                return b""

        only = one(await exchange(server.Site(PostOnly()), get(b"/", method=b"HEAD")), head_only=True)
        assert only.status == 405 and only.headers["allow"] == "POST"
        posted = one(await exchange(site, get(b"/echo", b"Content-Type: text/plain", method=b"POST",
                                              body=b"some data")))
        assert posted.body == b"body=some data"

    run(main())


def test_a_form_post_fills_args_and_the_request_api_reads_headers():
    seen = []

    class Look(resource.Resource):
        isLeaf = True

        def render_POST(self, request):
            seen.append(request)
            request.setResponseCode(201, b"Made It")
            request.setHeader("X-Custom", "yes")
            return b""

    async def main():
        site = server.Site(Look())
        data = await exchange(site, get(b"/?q=1", b"Host: example.org:8080", b"Content-Type: application/x-www-form-"
                                        b"urlencoded", b"X-Twice: a", b"X-Twice: b", b"Cookie: k=v; o=p",
                                        method=b"POST", body=b"name=me&q=2"))
        response = one(data)
        assert (response.status, response.reason) == (201, "Made It")
        assert response.headers["x-custom"] == "yes" and b"X-Custom: yes" in response.raw_head
        request = seen[0]
        assert request.args == {b"q": [b"2"], b"name": [b"me"]}  # the form's q replaces the query's, as in Twisted
        assert request.getHeader(b"x-twice") == b"b" and request.getHeader("X-Twice") == "b"
        assert request.requestHeaders.getRawHeaders(b"X-TWICE") == [b"a", b"b"]
        assert request.getHeader(b"missing") is None
        assert request.getClientAddress().host == "192.0.2.7" and request.getClientIP() == "192.0.2.7"
        assert request.isSecure() is False
        assert request.getRequestHostname() == b"example.org"
        assert request.received_cookies == {b"k": b"v", b"o": b"p"}  # read before any getCookie, as in Twisted
        assert request.getCookie(b"o") == b"p"
        assert request.getUser() == b"" and request.getPassword() == b""
        assert request.prePathURL() == b"http://example.org:8080/"

    run(main())


def test_url_path_root_url_and_relative_links_of_a_request():
    seen = []

    class Page(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            seen.append((request.prePathURL(), str(request.URLPath()), str(request.URLPath().child(b"x y")),
                         str(request.URLPath().sibling(b"s")), request.childLink(b"c"), request.sibLink(b"s"),
                         request.getRootURL()))
            return b"ok"

    class App(resource.Resource):
        def getChild(self, name, request):
            request.rememberRootURL()  # the URL above this one
            return Page()

    async def main():
        root = resource.Resource()
        root.putChild(b"app", App())
        site = server.Site(root)
        for path in (b"/app/page%201", b"/app/page/more/rest", b"/app/dir/"):
            assert one(await exchange(site, get(path, b"Host: example.org:8080"))).body == b"ok"

    run(main())
    assert seen[0] == (b"http://example.org:8080/app/page%201", "http://example.org:8080/app/page%201",
                       "http://example.org:8080/app/page%201/x%20y", "http://example.org:8080/app/s",
                       b"page 1/c", b"s", b"http://example.org:8080/app")
    assert seen[1][4:6] == (b"../c", b"../../s")  # two segments past the page: links climb out of them
    assert seen[2][1] == "http://example.org:8080/app/dir" and seen[2][4:6] == (b"c", b"../s")


def test_not_done_yet_responses_are_finished_later_in_order_with_pipelining():
    async def main():
        root = resource.Resource()
        later = Later()
        root.putChild(b"later", later)
        root.putChild(b"now", Echo())
        channel, transport = connect(server.Site(root))
        channel.dataReceived(get(b"/later") + get(b"/now") + get(b"/later"))
        await settle()
        assert transport.take() == b""  # /now waits for /later before it
        assert transport.paused  # and reading stops while a request waits
        first = later.waiting[0]
        finished = first.notifyFinish()
        first.write(b"part one, ")
        first.write(b"part two")
        first.finish()
        await settle()
        assert finished.done() if hasattr(finished, "done") else finished.called
        responses = parse_responses(transport.take())
        assert [r.status for r in responses] == [200, 200]
        assert responses[0].headers["transfer-encoding"] == "chunked" and responses[0].body == b"part one, part two"
        assert responses[1].body.startswith(b"GET /now")
        later.waiting[1].finish()
        await settle()
        last = one(transport.take())
        assert last.headers["content-length"] == "0" and not transport.paused and not transport.closed
        with pytest.raises(RuntimeError, match="after its response was finished"):
            first.finish()
        with pytest.raises(RuntimeError, match="after Request.finish"):
            first.write(b"more")

    run(main())


def test_http_1_0_gets_a_close_delimited_body_and_keep_alive_only_when_asked():
    async def main():
        later = Later()
        channel, transport = connect(server.Site(later))
        channel.dataReceived(get(b"/", version=b"HTTP/1.0"))
        await settle()
        later.waiting[0].write(b"streamed")
        later.waiting[0].finish()
        await settle()
        assert transport.closed
        response = one(transport.take())
        assert response.headers["connection"] == "close" and response.body == b"streamed"
        root, _ = tree()
        channel, transport = connect(server.Site(root))
        channel.dataReceived(get(b"/echo", b"Connection: keep-alive", version=b"HTTP/1.0"))
        await settle()
        assert one(transport.take()).headers["connection"] == "keep-alive" and not transport.closed

    run(main())


def test_notify_finish_fails_when_the_connection_is_lost_first_and_later_writes_are_ignored():
    async def main():
        later = Later()
        channel, transport = connect(server.Site(later))
        channel.dataReceived(get(b"/"))
        await settle()
        request = later.waiting[0]
        done = request.notifyFinish()
        transport.loseConnection()
        await settle()
        if isinstance(done, asyncio.Future):
            assert isinstance(done.exception(), Exception)
        else:
            failures = []
            done.addErrback(failures.append)
            assert failures
        request.write(b"nobody hears this")
        request.finish()  # no error: the connection is gone

    run(main())


def test_async_render_methods_are_awaited():
    class Slow(resource.Resource):
        isLeaf = True

        async def render_GET(self, request):
            await asyncio.sleep(0)
            return b"awaited " + request.path

        async def render_POST(self, request):
            request.write(b"wrote it myself")
            request.finish()

    async def main():
        site = server.Site(Slow())
        assert one(await exchange(site, get(b"/x"), turns=10)).body == b"awaited /x"
        assert one(await exchange(site, get(b"/x", method=b"POST", body=b""), turns=10)).body == b"wrote it myself"

    run(main())


class Broken(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        raise ZeroDivisionError("the secret is 42")

    def render_PUT(self, request):
        return "text, not bytes"


def test_a_render_error_is_500_logged_with_its_traceback_and_shown_only_when_asked(caplog):
    async def main():
        quiet = server.Site(Broken())
        channel, transport = connect(quiet)
        channel.dataReceived(get(b"/boom") + get(b"/boom", method=b"PUT", body=b""))
        await settle()
        first, second = parse_responses(transport.take())
        assert first.status == 500 and b"the secret" not in first.body and b"Traceback" not in first.body
        assert second.status == 500 and not transport.closed  # the connection goes on
        loud = server.Site(Broken(), displayTracebacks=True)
        shown = one(await exchange(loud, get(b"/boom")))
        assert shown.status == 500 and b"ZeroDivisionError: the secret is 42" in shown.body

    with caplog.at_level(logging.ERROR, logger="twistdlite.web"):
        run(main())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info and errors[0].exc_info[0] is ZeroDivisionError
    assert any("not bytes or NOT_DONE_YET" in str(r.exc_info[1]) for r in errors if r.exc_info)


def test_redirect_and_util_redirect_to():
    class Away(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            return util.redirectTo(b"/elsewhere?a=1", request)

    async def main():
        response = one(await exchange(server.Site(Away()), get(b"/")))
        assert response.status == 302 and response.headers["location"] == "/elsewhere?a=1"
        assert b'content="0;URL=/elsewhere?a=1"' in response.body
        moved = one(await exchange(server.Site(util.Redirect(b"/x")), get(b"/a/b")))
        assert moved.status == 302 and moved.headers["location"] == "/x"

    run(main())
    with pytest.raises(TypeError):
        util.redirectTo("/str", None)


def test_headers_are_case_insensitive_and_refuse_line_breaks():
    headers = Headers({b"Content-Type": [b"text/plain"]})
    assert headers.hasHeader("content-type") and headers.getRawHeaders("CONTENT-TYPE") == ["text/plain"]
    headers.addRawHeader(b"set-cookie", b"a=1")
    headers.addRawHeader(b"Set-Cookie", b"b=2")
    assert headers.getRawHeaders(b"SET-COOKIE") == [b"a=1", b"b=2"]
    assert dict(headers.getAllRawHeaders())[b"Set-Cookie"] == [b"a=1", b"b=2"]
    with pytest.raises(ValueError):
        headers.setRawHeaders(b"X-Bad", [b"a\r\nInjected: yes"])
    with pytest.raises(ValueError):
        headers.setRawHeaders(b"X Bad", [b"a"])
    headers.removeHeader("content-type")
    assert not headers.hasHeader(b"Content-Type") and headers.getRawHeaders(b"content-type", "none") == "none"


def test_the_site_pickles_without_its_log_file(tmp_path):
    import pickle

    root, _ = tree()
    site = server.Site(root, logPath=str(tmp_path / "access.log"), maxBodySize=5)
    site.startFactory()
    try:
        again = pickle.loads(pickle.dumps(site))
    finally:
        site.stopFactory()
    assert again.logPath == site.logPath and again._logFile is None and again.maxBodySize == 5
    with pytest.raises(TypeError, match="maxBodysize"):
        server.Site(root, maxBodysize=5)


def test_the_access_log_is_the_combined_log_format_with_quotes_and_backslashes_escaped(tmp_path):
    import re

    root, _ = tree()
    path = tmp_path / "access.log"
    site = server.Site(root, logPath=str(path))
    site.startFactory()

    async def main():
        one(await exchange(site, get(b"/echo?q=%22x", b'Referer: http://r/"quoted"',
                                     b"User-Agent: back\\slash", b"Connection: close")))

    try:
        run(main())
    finally:
        site.stopFactory()
    (line,) = path.read_text().splitlines()
    assert re.fullmatch(r'"192\.0\.2\.7" - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /echo\?q=%22x HTTP/1\.1" 200 \d+ '
                        r'"http://r/\\"quoted\\"" "back\\\\slash"', line), line


def test_basic_authorization_gives_get_user_and_get_password():
    import base64

    root, echo = tree()

    async def main():
        site = server.Site(root)
        for header, expected in ((b"Basic " + base64.b64encode(b"ann:se:cret"), (b"ann", b"se:cret")),
                                 (b"basic " + base64.b64encode(b"bob:"), (b"bob", b"")),
                                 (b"Basic !!notbase64", (b"", b"")),
                                 (b"Basic " + base64.b64encode(b"nocolon"), (b"", b"")),
                                 (b"Bearer abc", (b"", b""))):
            one(await exchange(site, get(b"/echo", b"Authorization: " + header)))
            request = echo.seen[-1]
            assert (request.getUser(), request.getPassword()) == expected, header

    run(main())


def test_writing_a_str_is_a_500_page_not_a_closed_connection(caplog):
    class WritesText(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            request.write("text, not bytes")
            return b""

    async def main():
        response = one(await exchange(server.Site(WritesText()), get(b"/")))
        assert response.status == 500 and b"text, not bytes" not in response.body

    with caplog.at_level(logging.ERROR, logger="twistdlite.web"):
        run(main())
    assert any(r.exc_info and r.exc_info[0] is TypeError for r in caplog.records)


def test_a_multipart_form_post_fills_args_and_a_malformed_one_is_400():
    root, echo = tree()
    body = (b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\none\r\n'
            b'--XX\r\nContent-Disposition: form-data; name="f"; filename="x.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\r\nbin\r\n"
            b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\ntwo\r\n--XX--\r\n')

    async def main():
        site = server.Site(root)
        posted = one(await exchange(site, get(b"/echo?q=1", b"Content-Type: multipart/form-data; boundary=XX",
                                              method=b"POST", body=body)))
        assert posted.status == 200 and posted.body == b"body=" + body  # content is still readable whole
        assert echo.seen[-1].args == {b"q": [b"1"], b"a": [b"one", b"two"], b"f": [b"\x00\xff\r\nbin"]}
        bad = one(await exchange(site, get(b"/echo", b"Content-Type: multipart/form-data; boundary=XX",
                                           method=b"POST", body=b"not a multipart body")))
        assert bad.status == 400

    run(main())
