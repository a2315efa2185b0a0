"""The HTTP/1.1 channel in process: bodies (chunked, Content-Length), Expect: 100-continue, malformed
requests, the limits (431, 413) and the timeouts (head, idle, write), each on a fake transport."""

from __future__ import annotations

import asyncio
import logging

import pytest

from netsupport import run, until
from twistdlite.web import _channel, resource, server
from websupport import connect, exchange, get, one, parse_responses, settle


@pytest.fixture(autouse=True, params=sorted(_channel._PARSERS))
def http_parser(request, monkeypatch):
    """Every test here runs with each installed parser: httptools, and h11 (the pure-Python fallback)."""
    monkeypatch.setattr(_channel, "DEFAULT_PARSER", request.param)
    return request.param


class Body(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        data = request.content.read()
        return b"%d:%s" % (len(data), data[:40])

    render_PUT = render_POST

    def render_GET(self, request):
        return b"got " + request.path


def site(**limits):
    return server.Site(Body(), **limits)


def test_chunked_request_bodies_are_read_and_large_ones_spill_to_a_file():
    async def main():
        chunked = (b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6;ext=1\r\n, body\r\n0\r\nTrailer: x\r\n\r\n")
        channel, transport = connect(site())
        channel.dataReceived(chunked + get(b"/next"))
        await settle()
        first, second = parse_responses(transport.take())
        assert first.body == b"11:hello, body" and second.body == b"got /next"
        seen = []

        class Keep(Body):
            def render_PUT(self, request):
                seen.append(request.content)
                return b"ok"

        big = b"z" * (3 << 20)
        channel, transport = connect(server.Site(Keep()))
        channel.dataReceived(get(b"/", method=b"PUT", body=big))
        await settle()
        assert one(transport.take()).body == b"ok"
        assert not hasattr(seen[0], "getvalue")  # a temporary file, not memory
        assert seen[0].read() == big

    run(main())


def test_expect_100_continue_is_answered_in_turn_and_refused_for_a_body_too_large():
    async def main():
        channel, transport = connect(site())
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        await settle()
        assert transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
        channel.dataReceived(b"data")
        await settle()
        assert one(transport.take()).body == b"4:data"
        channel, transport = connect(site(maxBodySize=10))
        channel.dataReceived(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        await settle()
        refused = one(transport.take())
        assert refused.status == 413 and refused.headers["connection"] == "close" and transport.closed
        unknown = one(await exchange(site(), b"GET / HTTP/1.1\r\nHost: t\r\nExpect: telepathy\r\n\r\n"))
        assert unknown.status == 417

    run(main())


def test_a_parsers_own_head_limit_is_431_too(http_parser, monkeypatch):
    """Debian 12's httptools 0.1.1 (http-parser) stops a head at 80 KiB with an error of its own: 431 all the same."""
    if http_parser != "httptools":
        pytest.skip("http-parser's error, as httptools raises it")
    error = _channel._PARSERS["httptools"].HttpParserError

    class Overflowing:
        def __init__(self, protocol):
            pass

        def feed_data(self, data):
            raise error("too many header bytes seen; overflow detected")

    class Module:
        HttpRequestParser = Overflowing

    monkeypatch.setitem(_channel._PARSERS, "httptools", Module)

    async def main():
        channel, transport = connect(site())
        channel.dataReceived(b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 90000)
        await settle()
        response = one(transport.take())
        assert response.status == 431 and transport.closed

    run(main())


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1 and more\r\n\r\n", 400),
    (b"NOT A REQUEST\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 400),  # HTTP/2 is never a text request line; httptools parses it
    (b"GET / HTTP/0.9\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),  # an HTTP/0.9 request: no version, no headers
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS hello on the plain port
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431),
    (b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10485761\r\n\r\n", 413),
])
def test_malformed_or_oversized_requests_get_an_error_and_the_connection_closes(request_bytes, status, caplog):
    async def main():
        channel, transport = connect(site())
        channel.dataReceived(request_bytes)
        await settle()
        response = one(transport.take())
        assert response.status == status and response.headers["connection"] == "close"
        assert transport.closed
        channel.dataReceived(get(b"/ignored"))  # nothing more is read
        assert transport.data == b""

    with caplog.at_level(logging.DEBUG, logger="twistdlite"):
        run(main())
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_an_error_waits_for_the_requests_before_it():
    async def main():
        channel, transport = connect(site())
        channel.dataReceived(get(b"/one") + get(b"/two") + b"BROKEN\r\n\r\n")
        await settle()
        responses = parse_responses(transport.take())
        assert [r.status for r in responses] == [200, 200, 400] and transport.closed

    run(main())


def test_limits_are_the_sites_options():
    async def main():
        small = site(maxHeadSize=512, maxHeaders=4, maxBodySize=4)  # (get() adds a Host header)
        assert one(await exchange(small, get(b"/", b"A: 1", b"B: 2", b"C: 3"))).status == 200
        assert one(await exchange(small, get(b"/", b"A: 1", b"B: 2", b"C: 3", b"D: 4"))).status == 431
        assert one(await exchange(small, get(b"/", b"A: " + b"x" * 600))).status == 431
        chunked = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
        assert one(await exchange(small, chunked)).status == 413
        assert one(await exchange(small, get(b"/", method=b"POST", body=b"abcd"))).body == b"4:abcd"
        # A head sent in many small pieces is bounded too, before it is ever complete.
        channel, transport = connect(small)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: t\r\n")
        for _ in range(100):
            if transport.closed:
                break
            channel.dataReceived(b"X-Filler: " + b"f" * 40 + b"\r\n")
        await settle()
        assert one(transport.take()).status == 431

    run(main())


def test_a_head_sent_too_slowly_is_cut_off(caplog):
    async def main():
        channel, transport = connect(site(headTimeout=0.05))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        await until(lambda: transport.closed, what="the slow client to be dropped")
        assert transport.data == b""

    with caplog.at_level(logging.INFO, logger="twistdlite.web"):
        run(main())
    assert any("Timing out client" in r.getMessage() for r in caplog.records)


def test_a_head_trickling_in_does_not_extend_its_deadline():
    async def main():
        channel, transport = connect(site(headTimeout=0.3))
        began = asyncio.get_running_loop().time()
        for byte in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"z" * 200:
            if transport.closed:
                break
            channel.dataReceived(bytes([byte]))
            await asyncio.sleep(0.02)
        assert transport.closed and asyncio.get_running_loop().time() - began < 2.0

    run(main())


def test_a_head_begun_on_an_idle_kept_alive_connection_has_the_head_timeout_not_the_idle_one():
    unfinished = b"GET /b HTTP/1.1\r\nHost: t\r\n"  # and never the end of this head

    async def main():
        loop = asyncio.get_running_loop()
        for together in (False, True):  # the next head in a read of its own, or behind a whole request
            channel, transport = connect(site(timeout=30, headTimeout=0.05))
            channel.dataReceived(get(b"/a") + (unfinished if together else b""))
            await settle()
            if not together:
                channel.dataReceived(unfinished)
            began = loop.time()
            await until(lambda: transport.closed, timeout=5, what="the unfinished head to be cut off")
            assert loop.time() - began < 5 and one(transport.take()).status == 200

    run(main())


def test_a_body_that_stops_coming_is_cut_off():
    async def main():
        channel, transport = connect(site(headTimeout=0.1))
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
        await until(lambda: transport.closed, what="the stalled body to be dropped")
        assert transport.data == b""

    run(main())


def test_an_idle_kept_alive_connection_is_closed_and_a_busy_one_is_not():
    async def main():
        channel, transport = connect(server.Site(Body(), timeout=0.1, headTimeout=5))
        channel.dataReceived(get(b"/a"))
        await settle()
        assert one(transport.take()).status == 200 and not transport.closed
        await until(lambda: transport.closed, what="the idle connection to close")
        slow = server.Site(Body(), timeout=5, headTimeout=0.05)
        channel, transport = connect(slow)
        for _ in range(3):  # each request in time: the head timeout counts per request
            channel.dataReceived(get(b"/again"))
            await settle()
            assert one(transport.take()).status == 200
        assert not transport.closed

    run(main())


def test_a_client_that_stops_reading_is_aborted_after_the_write_timeout(caplog):
    class Big(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"x" * 100000

    async def main():
        channel, transport = connect(server.Site(Big(), writeTimeout=0.05))
        channel.dataReceived(get(b"/"))
        channel.pauseProducing()  # what the transport says when its buffer is full
        await until(lambda: transport.closed, what="the write timeout")
        assert transport.aborted
        channel, transport = connect(server.Site(Big(), writeTimeout=0.05))
        channel.dataReceived(get(b"/"))
        channel.pauseProducing()
        channel.resumeProducing()  # the client read: no timeout
        await settle(20)
        assert not transport.closed

    with caplog.at_level(logging.INFO, logger="twistdlite.web"):
        run(main())
    assert any("stopped reading" in r.getMessage() for r in caplog.records)


def test_a_request_to_switch_protocols_is_answered_as_http_then_the_connection_closes():
    async def main():
        channel, transport = connect(site())
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello")
        await settle()
        response = one(transport.take())
        assert response.body == b"got /a" and response.headers["connection"] == "close" and transport.closed
        other = one(await exchange(site(), b"CONNECT example.org:443 HTTP/1.1\r\nHost: t\r\n\r\n"))
        assert other.status == 405

    run(main())
