"""twistdlite.urlpath.URLPath: moving about from an absolute URL as twisted.python.urlpath does
(each expected value checked against Twisted 26.10's URLPath)."""

from __future__ import annotations

import pytest

from twistdlite.urlpath import URLPath

BASE = "http://example.com/foo/bar?yes=no&no=yes#footer"


def test_parts_are_bytes_and_str_gives_the_url_back():
    url = URLPath.fromString(BASE)
    assert (url.scheme, url.netloc, url.path, url.query, url.fragment) == (
        b"http", b"example.com", b"/foo/bar", b"yes=no&no=yes", b"footer")
    assert str(url) == BASE
    assert repr(url) == ("URLPath(scheme=b'http', netloc=b'example.com', path=b'/foo/bar', "
                         "query=b'yes=no&no=yes', fragment=b'footer')")
    assert str(URLPath.fromBytes(BASE.encode())) == BASE
    assert str(URLPath()) == "http://localhost/"
    assert str(URLPath.fromString("http://example.com")) == "http://example.com/"
    assert str(URLPath(b"https", b"h:8443", b"/p", b"q=1", b"f")) == "https://h:8443/p?q=1#f"
    assert str(URLPath.fromString("http://example.com/\u00e9 x")) == "http://example.com/%C3%A9%20x"
    url.path = b"/zz"
    assert str(url) == "http://example.com/zz?yes=no&no=yes#footer"
    url.scheme, url.path = "https", "/\u00e9 t"  # text is stored as (encoded) bytes
    assert (url.scheme, url.path) == (b"https", b"/%C3%A9%20t")
    assert str(url) == "https://example.com/%C3%A9%20t?yes=no&no=yes#footer"


def test_from_string_wants_str_and_from_bytes_bytes():
    with pytest.raises(ValueError):
        URLPath.fromString(b"http://e.com/x")
    with pytest.raises(ValueError):
        URLPath.fromBytes("http://e.com/x")


@pytest.mark.parametrize("base, move, expected", [
    (BASE, lambda u: u.child(b"x"), "http://example.com/foo/bar/x"),
    (BASE, lambda u: u.child(b"x", keepQuery=True), "http://example.com/foo/bar/x?yes=no&no=yes"),
    (BASE, lambda u: u.child(b"a b"), "http://example.com/foo/bar/a%20b"),
    (BASE, lambda u: u.child(b"a/b"), "http://example.com/foo/bar/a%2Fb"),
    (BASE, lambda u: u.child(b"a%20b"), "http://example.com/foo/bar/a%20b"),
    (BASE, lambda u: u.child("\u00e9"), "http://example.com/foo/bar/%C3%A9"),  # (str: beyond Twisted)
    (BASE, lambda u: u.sibling(b"x"), "http://example.com/foo/x"),
    (BASE, lambda u: u.sibling(b"x", keepQuery=True), "http://example.com/foo/x?yes=no&no=yes"),
    (BASE, lambda u: u.here(), "http://example.com/foo/"),
    (BASE, lambda u: u.here(keepQuery=True), "http://example.com/foo/?yes=no&no=yes"),
    (BASE, lambda u: u.parent(), "http://example.com/"),
    (BASE, lambda u: u.parent(keepQuery=True), "http://example.com/?yes=no&no=yes"),
    ("http://example.com/foo/bar/", lambda u: u.child(b"x"), "http://example.com/foo/bar/x"),
    ("http://example.com/foo/bar/", lambda u: u.sibling(b"x"), "http://example.com/foo/bar/x"),
    ("http://example.com/foo/bar/", lambda u: u.here(), "http://example.com/foo/bar/"),
    ("http://example.com/foo/bar/", lambda u: u.parent(), "http://example.com/foo/"),
    ("http://example.com/", lambda u: u.parent().parent(), "http://example.com/"),
    ("http://example.com/", lambda u: u.child(b"x"), "http://example.com/x"),
    ("http://example.com/", lambda u: u.sibling(b"y"), "http://example.com/y"),
    ("http://u:p@h:81/a", lambda u: u.child(b"b"), "http://u:p@h:81/a/b"),  # (Twisted drops the password)
])
def test_child_sibling_here_parent(base, move, expected):
    assert str(move(URLPath.fromString(base))) == expected


@pytest.mark.parametrize("link, expected", [
    (b"baz", "http://example.com/foo/baz"),
    (b"../baz", "http://example.com/baz"),
    (b"/abs", "http://example.com/abs"),
    (b"http://other/x", "http://other/x"),
    (b"//host2/p", "http://host2/p"),
    (b"?q=1", "http://example.com/foo/bar?q=1"),
    (b"#frag", "http://example.com/foo/bar?yes=no&no=yes#frag"),
    (b"", BASE),
    (b"./", "http://example.com/foo/"),
    (b"../../../..", "http://example.com/"),
    (b"baz?x=1", "http://example.com/foo/baz?x=1"),
    (b"a b", "http://example.com/foo/a%20b"),
    ("baz", "http://example.com/foo/baz"),
])
def test_click_follows_a_link_as_a_browser_does(link, expected):
    assert str(URLPath.fromString(BASE).click(link)) == expected


def test_path_list():
    url = URLPath.fromString("http://example.com/a%20b/c%2Fd")
    assert url.pathList() == [b"", b"a%20b", b"c%2Fd"]
    assert url.pathList(unquote=True) == [b"", b"a b", b"c/d"]
    assert str(url.child(b"e")) == "http://example.com/a%20b/c%2Fd/e"
