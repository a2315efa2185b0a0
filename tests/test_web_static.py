"""static.File in process: types, listings, index files, ranges, conditional requests, HEAD, ignoreExt,
path safety (.., encoded slashes, NUL, symbolic links out), short sends, listings off the loop."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import pytest

from netsupport import run, until
from twistdlite.web import _channel, server, static
from websupport import connect, exchange, get, one, parse_responses, settle


@pytest.fixture(autouse=True, params=sorted(_channel._PARSERS))
def http_parser(request, monkeypatch):
    """Every test here runs with each installed parser: httptools, and h11 (the pure-Python fallback)."""
    monkeypatch.setattr(_channel, "DEFAULT_PARSER", request.param)
    return request.param


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello, world\n")
    (root / "page.html").write_text("<p>page</p>")
    (root / "data.json").write_text("{}")
    (root / "noext").write_bytes(b"raw")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b")
    (root / "sub" / "index.html").write_text("<p>index</p>")
    (root / "digits.txt").write_bytes(b"0123456789")
    (tmp_path / "secret.txt").write_text("not for the web")
    return root


@pytest.fixture(autouse=True)
def small_files(monkeypatch):
    """Each test starts with no small file kept in memory (and leaves none for the next)."""
    monkeypatch.setattr(static, "_small_files", {})
    monkeypatch.setattr(static, "_small_bytes", [0])
    return static


def site_for(path, **attrs):
    root = static.File(str(path))
    for name, value in attrs.items():
        setattr(root, name, value)
    return server.Site(root)


async def fetch(site, path, *headers, method=b"GET"):
    return one(await exchange(site, get(path, *headers, method=method), turns=20), head_only=method == b"HEAD")


def test_content_types_by_extension_and_the_default(www):
    async def main():
        site = site_for(www)
        assert (await fetch(site, b"/hello.txt")).headers["content-type"] == "text/plain"
        assert (await fetch(site, b"/page.html")).headers["content-type"] == "text/html"
        assert (await fetch(site, b"/data.json")).headers["content-type"] == "application/json"
        assert (await fetch(site, b"/noext")).headers["content-type"] == "text/html"  # Twisted's default
        packed = await fetch(site, b"/archive.tar.gz")
        assert packed.headers["content-type"] == "application/x-tar" and packed.headers["content-encoding"] == "gzip"
        other = server.Site(static.File(str(www), defaultType="application/octet-stream"))
        assert (await fetch(other, b"/noext")).headers["content-type"] == "application/octet-stream"

    run(main())


def test_directories_redirect_serve_their_index_or_a_paged_listing(www):
    async def main():
        site = site_for(www)
        moved = await fetch(site, b"/sub?x=1")
        assert moved.status == 301 and moved.headers["location"] == "/sub/?x=1"
        assert (await fetch(site, b"/sub/")).body == b"<p>index</p>"
        listing = await fetch(site, b"/")
        assert listing.status == 200 and listing.headers["content-type"] == "text/html; charset=utf-8"
        assert b'<a href="hello.txt">hello.txt</a>' in listing.body and b'<a href="sub/">sub/</a>' in listing.body
        custom = site_for(www, indexNames=["hello.txt"])
        assert (await fetch(custom, b"/")).body == b"hello, world\n"
        for i in range(5):
            (www / "sub" / f"f{i}.bin").write_bytes(b"")
        (www / "sub" / "index.html").unlink()
        paged = site_for(www, listingPageSize=2)
        page2 = (await fetch(paged, b"/sub/?page=2")).body
        assert b"f2.bin" in page2 and b"f3.bin" in page2 and b"f1.bin" not in page2
        assert b"page 2 of 3 (5 entries)" in page2 and b'href="?page=3"' in page2
        head = await fetch(site, b"/", method=b"HEAD")
        assert head.status == 200 and head.body == b""

    run(main())


@pytest.mark.parametrize("kept", [False, True], ids=["read", "kept"])
def test_ranges_conditional_requests_and_head(www, kept, monkeypatch):
    if kept:  # the same answers from the copy kept in memory (a file is kept once it has not changed for a while)
        monkeypatch.setattr(static, "SETTLED", -3600.0)

    async def main():
        site = site_for(www)
        full = await fetch(site, b"/digits.txt")
        assert (str(www / "digits.txt") in static._small_files) == kept
        etag, modified = full.headers["etag"], full.headers["last-modified"]
        assert full.headers["accept-ranges"] == "bytes" and full.headers["content-length"] == "10"
        part = await fetch(site, b"/digits.txt", b"Range: bytes=2-4")
        assert (part.status, part.body, part.headers["content-range"]) == (206, b"234", "bytes 2-4/10")
        assert (await fetch(site, b"/digits.txt", b"Range: bytes=7-")).body == b"789"
        assert (await fetch(site, b"/digits.txt", b"Range: bytes=-3")).body == b"789"
        assert (await fetch(site, b"/digits.txt", b"Range: bytes=8-100")).body == b"89"
        unmet = await fetch(site, b"/digits.txt", b"Range: bytes=10-12")
        assert unmet.status == 416 and unmet.headers["content-range"] == "bytes */10"
        for beyond in (b"Range: bytes=10-", b"Range: bytes=100-", b"Range: bytes=-0"):
            assert (await fetch(site, b"/digits.txt", beyond)).status == 416, beyond
        for ignored in (b"Range: lines=1-2", b"Range: bytes=5-2", b"Range: bytes=x-"):
            answer = await fetch(site, b"/digits.txt", ignored)
            assert (answer.status, answer.body) == (200, b"0123456789"), ignored
        assert (await fetch(site, b"/digits.txt", b"Range: bytes=0-0", b'If-Range: "other"')).status == 200
        assert (await fetch(site, b"/digits.txt", b"Range: bytes=0-0", b"If-Range: " + etag.encode())).status == 206
        cached = await fetch(site, b"/digits.txt", b"If-None-Match: " + etag.encode())
        assert cached.status == 304 and cached.body == b"" and "content-length" not in cached.headers
        assert (await fetch(site, b"/digits.txt", b'If-None-Match: "nope"')).status == 200
        assert (await fetch(site, b"/digits.txt", b"If-Modified-Since: " + modified.encode())).status == 304
        old = b"If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT"
        assert (await fetch(site, b"/digits.txt", old)).status == 200
        assert (await fetch(site, b"/digits.txt", b"If-Modified-Since: garbage")).status == 200
        for tags in (b"*", b'"a", ' + etag.encode(), b"W/" + etag.encode()):  # any, one of a list, weak
            assert (await fetch(site, b"/digits.txt", b"If-None-Match: " + tags)).status == 304, tags
        # If-None-Match, when sent, decides alone (RFC 9110 13.1.3): a matching date does not make it 304
        both = (b'If-None-Match: "nope"', b"If-Modified-Since: " + modified.encode())
        assert (await fetch(site, b"/digits.txt", *both)).status == 200
        head = await fetch(site, b"/digits.txt", method=b"HEAD")
        assert head.status == 200 and head.headers["content-length"] == "10" and head.headers["etag"] == etag

    run(main())


def multipart_parts(response):
    """``[(content type, content range, payload)...]`` of a 206 multipart/byteranges response."""
    import email.parser
    import email.policy

    ctype = response.headers["content-type"]
    assert ctype.startswith("multipart/byteranges; boundary="), ctype
    assert int(response.headers["content-length"]) == len(response.body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + response.body)
    assert message.is_multipart() and not message.defects, message.defects
    boundary = ctype.partition("boundary=")[2].encode()
    assert response.body.startswith(b"--" + boundary + b"\r\n") and response.body.endswith(b"--" + boundary + b"--\r\n")
    return [(part["content-type"], part["content-range"], part.get_payload(decode=True))
            for part in message.iter_parts()]


@pytest.mark.parametrize("kept", [False, True], ids=["read", "kept"])
def test_several_ranges_get_a_multipart_byteranges_answer(www, kept, monkeypatch):
    if kept:  # the same answers from the copy kept in memory
        monkeypatch.setattr(static, "SETTLED", -3600.0)

    async def main():
        site = site_for(www)
        several = await fetch(site, b"/digits.txt", b"Range: bytes=0-1,5-6,-2")
        assert several.status == 206 and "content-range" not in several.headers
        assert multipart_parts(several) == [("text/plain", "bytes 0-1/10", b"01"),
                                            ("text/plain", "bytes 5-6/10", b"56"),
                                            ("text/plain", "bytes 8-9/10", b"89")]
        # in the order asked; empty list elements and spaces allowed; a range past the end is dropped
        shuffled = await fetch(site, b"/digits.txt", b"Range: bytes= 7-7 , ,2-3, 40-50")
        assert [part[1:] for part in multipart_parts(shuffled)] == [("bytes 7-7/10", b"7"), ("bytes 2-3/10", b"23")]
        # overlapping or touching ranges are merged (sorted): no byte twice, so no amplification
        merged = await fetch(site, b"/digits.txt", b"Range: bytes=6-8,0-2,1-3,4-4")
        assert [part[1:] for part in multipart_parts(merged)] == [("bytes 0-4/10", b"01234"), ("bytes 6-8/10", b"678")]
        for header, span, body in ((b"Range: bytes=0-5,3-8", "bytes 0-8/10", b"012345678"),  # merged into one
                                   (b"Range: bytes=0-0,0-0,0-0", "bytes 0-0/10", b"0"),
                                   (b"Range: bytes=2-3,50-60", "bytes 2-3/10", b"23"),  # one left
                                   (b"Range: bytes=-3,0-", "bytes 0-9/10", b"0123456789")):
            single = await fetch(site, b"/digits.txt", header)
            assert (single.status, single.headers["content-range"], single.body) == (206, span, body), header
            assert single.headers["content-type"] == "text/plain"
        for unmet in (b"Range: bytes=10-12,20-", b"Range: bytes=-0,10-"):
            answer = await fetch(site, b"/digits.txt", unmet)
            assert (answer.status, answer.headers["content-range"]) == (416, "bytes */10"), unmet
        for ignored in (b"Range: bytes=0-1,x", b"Range: bytes=0-1,5-2", b"Range: bytes=0-1,--3",
                        b"Range: lines=1-2,3-4", b"Range: bytes=,", b"Range: bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(65))):
            answer = await fetch(site, b"/digits.txt", ignored)
            assert (answer.status, answer.body) == (200, b"0123456789"), ignored
        at_limit = await fetch(site, b"/digits.txt", b"Range: bytes=" + b",".join(b"%d-%d" % (i, i) for i in (0, 2, 4)))
        assert len(multipart_parts(at_limit)) == 3
        assert (await fetch(site_for(www, maxRanges=2), b"/digits.txt", b"Range: bytes=0-0,2-2,4-4")).status == 200
        assert len(multipart_parts(await fetch(site_for(www, maxRanges=2), b"/digits.txt",
                                               b"Range: bytes=0-0,2-2"))) == 2  # exactly at the limit
        # If-Range decides for several ranges too
        etag = several.headers["etag"]
        assert (await fetch(site, b"/digits.txt", b"Range: bytes=0-0,2-2", b'If-Range: "other"')).status == 200
        assert len(multipart_parts(await fetch(site, b"/digits.txt", b"Range: bytes=0-0,2-2",
                                               b"If-Range: " + etag.encode()))) == 2
        # a compressed file's parts cannot be labelled so: the whole file
        (www / "notes.txt.gz").write_bytes(b"\x1f\x8b-packed")
        packed = await fetch(site, b"/notes.txt.gz", b"Range: bytes=0-0,4-5")
        assert (packed.status, packed.body, packed.headers["content-encoding"]) == (200, b"\x1f\x8b-packed", "gzip")

    run(main())


def test_head_with_ranges_gets_the_head_of_the_whole_file(www):
    """Range is defined for GET alone (RFC 9110 14.2): HEAD ignores it, as Twisted's File does."""
    async def main():
        site = site_for(www)
        for header in (b"Range: bytes=0-1,5-6", b"Range: bytes=2-4", b"Range: bytes=50-60,70-80"):
            head = await fetch(site, b"/digits.txt", header, method=b"HEAD")
            assert (head.status, head.headers["content-length"], head.body) == (200, "10", b""), header
            assert head.headers["content-type"] == "text/plain" and "content-range" not in head.headers

    run(main())


def test_several_ranges_of_a_large_file_are_streamed(www):
    big = www / "big.bin"
    data = bytes(range(256)) * (3 << 12)  # 3 MiB
    big.write_bytes(data)

    async def main():
        site = site_for(www)
        channel, transport = connect(site)
        channel.dataReceived(get(b"/big.bin", b"Range: bytes=10-19,1000000-2999999,-100")
                             + get(b"/hello.txt"))  # pipelined behind it
        await until(lambda: len(parse_responses(bytes(transport.data))) == 2 if b"hello, world\n" in transport.data
                    else False, what="both answers")
        answer, after = parse_responses(transport.take())
        assert multipart_parts(answer) == [
            ("application/octet-stream", "bytes 10-19/3145728", data[10:20]),
            ("application/octet-stream", "bytes 1000000-2999999/3145728", data[1000000:3000000]),
            ("application/octet-stream", "bytes 3145628-3145727/3145728", data[-100:])]
        assert after.body == b"hello, world\n" and not transport.closed

    run(main())


def test_a_file_truncated_while_its_ranges_are_sent_closes_the_connection_and_is_logged(www, caplog):
    big = www / "big.bin"
    big.write_bytes(b"x" * (4 << 20))

    async def main():
        site = site_for(www)
        channel, transport = connect(site)
        channel.dataReceived(get(b"/big.bin", b"Range: bytes=0-9,100-4194303") + get(b"/hello.txt"))
        channel.pauseProducing()  # the client stopped reading
        assert 0 < len(transport.data) < 4 << 20
        os.truncate(big, 1 << 20)
        channel.resumeProducing()
        await until(lambda: transport.closed, what="the connection to close")
        await settle()
        assert transport.aborted and b"hello, world" not in transport.data
        assert one(await exchange(site, get(b"/hello.txt"))).body == b"hello, world\n"

    with caplog.at_level(logging.INFO, logger="twistdlite.web"):
        run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Short send:") and "before byte 4194304" in m for m in messages), messages


def opens_of(monkeypatch, path):
    """A list that grows by one each time ``path`` is opened."""
    opened = []
    real_open = os.open

    def counting_open(name, *args, **kwargs):
        if os.fspath(name) == str(path):
            opened.append(name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(static.os, "open", counting_open)
    return opened


def changed_ctime(path, before):
    """Set ``path``'s times back to ``before``'s until its change time differs from ``before``'s."""
    deadline = time.monotonic() + 5
    while os.stat(path).st_ctime_ns == before.st_ctime_ns:
        assert time.monotonic() < deadline, "the file system's clock did not move"
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_small_file_is_kept_in_memory_until_it_changes(www, monkeypatch, tmp_path):
    monkeypatch.setattr(static, "SETTLED", -3600.0)  # keep files however recently written
    path = www / "digits.txt"
    opened = opens_of(monkeypatch, path)

    async def main():
        site = site_for(www)
        first = await fetch(site, b"/digits.txt")
        assert first.body == b"0123456789" and len(opened) == 1
        for _ in range(3):  # one stat per request, no open: the copy in memory is current
            again = await fetch(site, b"/digits.txt")
            assert (again.body, again.headers) == (first.body, {**first.headers, "date": again.headers["date"]})
        assert len(opened) == 1

        # Rewritten in place, same size, modification time set back: its change time tells.
        before = os.stat(path)
        path.write_bytes(b"abcdefghij")
        changed_ctime(path, before)
        assert (await fetch(site, b"/digits.txt")).body == b"abcdefghij"

        # Grown, with a new modification time: new length, ETag and Last-Modified.
        with open(path, "ab") as handle:
            handle.write(b"klm")
        os.utime(path, (before.st_atime + 100, before.st_mtime + 100))
        grown = await fetch(site, b"/digits.txt")
        assert grown.body == b"abcdefghijklm" and grown.headers["content-length"] == "13"
        assert grown.headers["etag"] != first.headers["etag"]
        assert grown.headers["last-modified"] != first.headers["last-modified"]
        assert (await fetch(site, b"/digits.txt", b"If-None-Match: " + grown.headers["etag"].encode())).status == 304

        # Replaced by another file (rename), same size and modification time: another inode, a new change time.
        before = os.stat(path)
        fresh = www / "fresh.tmp"
        fresh.write_bytes(b"NOPQRSTUVWXYZ")
        os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(fresh, path)
        assert (await fetch(site, b"/digits.txt")).body == b"NOPQRSTUVWXYZ"

        # Replaced by a symbolic link out of the served directory: refused, as ever.
        os.replace(path, tmp_path / "moved.txt")
        path.symlink_to(www.parent / "secret.txt")
        assert (await fetch(site, b"/digits.txt")).status == 404

        # Gone: 404, and no longer kept.
        path.unlink()
        assert (await fetch(site, b"/digits.txt")).status == 404
        assert str(path) not in static._small_files

    run(main())


def test_a_file_of_exactly_the_small_size_is_kept_and_one_byte_more_is_not(www, monkeypatch):
    monkeypatch.setattr(static, "SETTLED", -3600.0)
    at, over = www / "at.bin", www / "over.bin"
    at.write_bytes(b"a" * static.SMALL_FILE)
    over.write_bytes(b"o" * (static.SMALL_FILE + 1))
    opened_at, opened_over = opens_of(monkeypatch, at), opens_of(monkeypatch, over)

    async def main():
        site = site_for(www)
        for _ in range(3):
            assert len((await fetch(site, b"/at.bin")).body) == static.SMALL_FILE
            assert len((await fetch(site, b"/over.bin")).body) == static.SMALL_FILE + 1
        assert (len(opened_at), len(opened_over)) == (1, 3)
        assert str(at) in static._small_files and str(over) not in static._small_files

    run(main())


def test_a_file_changed_a_moment_ago_is_not_kept(www, monkeypatch):
    """Within the file system clock's tick a rewrite could leave every time unchanged: such a file is read anew."""
    path = www / "digits.txt"
    opened = opens_of(monkeypatch, path)

    async def main():
        site = site_for(www)
        assert (await fetch(site, b"/digits.txt")).body == b"0123456789"
        before = os.stat(path)
        path.write_bytes(b"abcdefghij")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (await fetch(site, b"/digits.txt")).body == b"abcdefghij"
        assert len(opened) == 2 and not static._small_files

    run(main())


def test_a_symbolic_link_inside_is_read_through_each_time(www, monkeypatch, tmp_path):
    """Its lstat (what a kept copy is checked against) is not its target's: it is not kept, and a link
    retargeted outside is refused on the next request."""
    monkeypatch.setattr(static, "SETTLED", -3600.0)
    link = www / "inside"
    link.symlink_to(www / "hello.txt")

    async def main():
        site = site_for(www)
        for _ in range(2):
            assert (await fetch(site, b"/inside")).body == b"hello, world\n"
            assert str(link) not in static._small_files
        link.unlink()
        link.symlink_to(www.parent / "secret.txt")
        assert (await fetch(site, b"/inside")).status == 404

    run(main())


def test_kept_files_stay_within_the_memory_bound(www, monkeypatch):
    monkeypatch.setattr(static, "SETTLED", -3600.0)
    monkeypatch.setattr(static, "SMALL_CACHE_BYTES", 25)

    async def main():
        site = site_for(www)
        for name in ("hello.txt", "digits.txt", "page.html", "hello.txt"):
            await fetch(site, b"/" + name.encode())
            assert static._small_bytes[0] == sum(len(c.data) for c in static._small_files.values()) <= 25

    run(main())


def test_two_files_serving_the_same_path_each_answer_with_their_own_types(www):
    async def main():
        a = site_for(www, contentTypes={".txt": "text/a"})
        b = site_for(www, contentTypes={".txt": "text/b"})
        assert (await fetch(a, b"/hello.txt")).headers["content-type"] == "text/a"
        assert (await fetch(b, b"/hello.txt")).headers["content-type"] == "text/b"
        assert (await fetch(a, b"/hello.txt")).headers["content-type"] == "text/a"
        plain = site_for(www)
        assert (await fetch(plain, b"/archive.tar.gz")).headers["content-encoding"] == "gzip"
        other = site_for(www, contentEncodings={".gz": "x-other"})
        assert (await fetch(other, b"/archive.tar.gz")).headers["content-encoding"] == "x-other"

    run(main())


def test_settings_changed_after_serving_apply_to_the_next_request(www):
    import pickle

    async def main():
        site = site_for(www)
        assert (await fetch(site, b"/noext")).headers["content-type"] == "text/html"
        site.resource.defaultType = "application/octet-stream"
        assert (await fetch(site, b"/noext")).headers["content-type"] == "application/octet-stream"
        site.resource.ignoreExt(".html")
        assert (await fetch(site, b"/page")).body == b"<p>page</p>"
        copy = pickle.loads(pickle.dumps(site.resource))  # (as a .tap saves it)
        assert copy.defaultType == "application/octet-stream" and "_kids" not in copy.__dict__

    run(main())


def test_ignored_extensions(www):
    async def main():
        strict = site_for(www)
        assert (await fetch(strict, b"/page")).status == 404
        ignoring = server.Site(static.File(str(www), ignoredExts=[".html"]))
        assert (await fetch(ignoring, b"/page")).body == b"<p>page</p>"
        anything = server.Site(static.File(str(www), allowExt=True))
        assert (await fetch(anything, b"/data")).body == b"{}"
        assert (await fetch(anything, b"/missing")).status == 404

    run(main())


def test_no_path_leaves_the_served_directory(www, caplog):
    (www / "etc").symlink_to("/etc")
    (www / "passwd").symlink_to("/etc/passwd")
    (www / "up").symlink_to(www.parent / "secret.txt")
    (www / "inside").symlink_to(www / "hello.txt")
    (www / "subdir").symlink_to(www / "sub")

    async def main():
        site = site_for(www)
        for path in (b"/../secret.txt", b"/sub/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt",
                     b"/sub%2F..%2F..%2Fsecret.txt", b"/..%2fsecret.txt", b"//etc/passwd", b"/etc/passwd",
                     b"/passwd", b"/up", b"/./hello.txt", b"http://host/../secret.txt"):
            answer = await fetch(site, path)
            assert answer.status == 404, (path, answer)
            assert b"not for the web" not in answer.body and b"root:" not in answer.body
        for path in (b"/sub/%00", b"/hello.txt%00.png", b"/%00/x"):
            assert (await fetch(site, path)).status == 400, path
        assert (await fetch(site, b"/inside")).body == b"hello, world\n"  # a link that stays inside is fine
        assert (await fetch(site, b"/etc")).status == 404  # a link out to a directory, as the last segment
        assert (await fetch(site, b"/subdir")).status == 301  # a link to a directory inside
        os.mkfifo(www / "fifo")
        assert (await fetch(site, b"/fifo")).status == 403  # not a regular file (and opening it did not block)
        assert (await fetch(site, b"/subdir/")).body == b"<p>index</p>"
        trusting = site_for(www, allowSymlinksOut=True)
        assert (await fetch(trusting, b"/up")).body == b"not for the web"
        listed = (await fetch(site, b"/")).body  # links out are not listed either (nor their target's size)
        assert b'href="inside"' in listed and b'href="subdir/"' in listed
        assert b'href="up"' not in listed and b'href="etc/"' not in listed and b'href="passwd"' not in listed
        assert b'href="up"' in (await fetch(trusting, b"/")).body

    with caplog.at_level(logging.INFO, logger="twistdlite.web"):
        run(main())
    assert any("outside the served directory" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)


def test_a_file_truncated_while_sent_closes_the_connection_and_is_logged(www, caplog):
    big = www / "big.bin"
    big.write_bytes(b"x" * (4 << 20))

    async def main():
        site = site_for(www)
        channel, transport = connect(site)
        lost = []
        original = channel.connectionLost
        channel.connectionLost = lambda reason=None: (lost.append(reason), original(reason))
        channel.dataReceived(get(b"/big.bin") + get(b"/hello.txt"))
        channel.pauseProducing()  # the client stopped reading
        sent = len(transport.data)
        assert 0 < sent < 4 << 20
        os.truncate(big, 1 << 20)
        channel.resumeProducing()
        await until(lambda: transport.closed, what="the connection to close")
        await settle()
        assert transport.aborted and len(lost) == 1
        head, _, body = bytes(transport.data).partition(b"\r\n\r\n")
        assert b"Content-Length: 4194304" in head and len(body) == 1 << 20
        # the server goes on: a new connection is served
        assert one(await exchange(site, get(b"/hello.txt"))).body == b"hello, world\n"

    with caplog.at_level(logging.INFO, logger="twistdlite.web"):
        run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Short send:") and "3145728 bytes before the 4194304" in m for m in messages), messages
    assert any('"GET /big.bin HTTP/1.1" 200 1048576' in m for m in messages), messages


def test_a_file_deleted_while_sent_is_sent_whole(www):
    big = www / "big.bin"
    big.write_bytes(b"y" * (2 << 20))

    async def main():
        channel, transport = connect(site_for(www))
        channel.dataReceived(get(b"/big.bin"))
        channel.pauseProducing()
        big.unlink()
        channel.resumeProducing()
        await until(lambda: len(transport.data) > 2 << 20 and not channel._active, what="the whole file")
        assert one(transport.take()).body == b"y" * (2 << 20) and not transport.closed

    run(main())


def test_a_large_listing_is_built_off_the_loop_so_other_clients_are_served(www, monkeypatch):
    release = threading.Event()
    started = threading.Event()
    real = static._listing_page

    def slow_listing(*args):
        started.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(static, "_listing_page", slow_listing)

    async def main():
        site = site_for(www)
        channel, transport = connect(site)
        channel.dataReceived(get(b"/"))
        await until(started.is_set, what="the listing to start")
        began = time.monotonic()
        assert one(await exchange(site, get(b"/hello.txt"))).body == b"hello, world\n"
        assert time.monotonic() - began < 1.0  # served while the listing is still being built
        assert transport.data == b""
        release.set()
        await until(lambda: transport.data, what="the listing")
        assert b"hello.txt" in one(transport.take()).body

    run(main())


def test_a_directory_of_many_files_is_listed(www):
    many = www / "many"
    many.mkdir()
    for i in range(3000):
        (many / f"file{i:05d}.txt").write_bytes(b"")

    async def main():
        site = site_for(www)
        channel, transport = connect(site)
        channel.dataReceived(get(b"/many/") + get(b"/many/?page=3"))
        await until(lambda: len(parse_responses(bytes(transport.data))) == 2 if transport.data.count(b"</html>") == 2
                    else False, timeout=20, what="both pages")
        first, third = parse_responses(transport.take())
        assert first.body.count(b"<tr><td>") == 1000 and b"file00000.txt" in first.body
        assert b"file02999.txt" in third.body and b"page 3 of 3 (3000 entries)" in third.body

    run(main())
