"""The .tap format: header, digest, keys; every damaged or foreign file is refused before unpickling."""

from __future__ import annotations

import json
import os
import pickle

import pytest

import twistdlite
from support import python_without_file_capabilities
from twistdlite.launch import persist
from twistdlite.launch.errors import LaunchError, LoadError

KEY = persist.TapKey(b"k" * 32, "/keys/a")
OTHER_KEY = persist.TapKey(b"o" * 32, "/keys/b")


def tap(payload: bytes = b"payload", key=None, **kwargs) -> bytes:
    return b"".join(persist.encode(payload, key, **kwargs))


def test_encode_writes_the_documented_layout():
    data = tap(b"\x80\x05pickle", name="Counter", paths=["/srv/app"])
    first, meta, digest, payload = data.split(b"\n", 3)
    assert first == b"TWISTDLITE-TAP 1"
    header = json.loads(meta)
    assert header["digest"] == "sha256" and header["length"] == len(payload) == 8
    assert header["name"] == "Counter" and header["path"] == ["/srv/app"]
    assert header["twistdlite"] == twistdlite.__version__ and header["pickle"] == persist.PICKLE_PROTOCOL
    import hashlib

    assert digest == hashlib.sha256(first + b"\n" + meta + b"\n" + payload).hexdigest().encode()


def test_decode_round_trip_returns_header_and_payload():
    header, payload = persist.decode(tap(b"abc", name="X", paths=["/a", "/b"]))
    assert payload == b"abc"
    assert header.name == "X" and header.path == ("/a", "/b") and header.digest == "sha256"


def test_signed_round_trip_and_header_says_hmac():
    data = tap(b"abc", KEY)
    assert b'"digest":"hmac-sha256"' in data
    assert persist.decode(data, KEY)[1] == b"abc"


@pytest.mark.parametrize("length", range(0, 200, 7))
def test_every_truncation_is_refused(length):
    data = tap(b"x" * 100, name="Counter")
    assert length < len(data)
    with pytest.raises(LoadError) as info:
        persist.decode(data[:length], source="a.tap")
    message = str(info.value)
    assert "\n" not in message and message.startswith("a.tap ")
    assert "refusing" in message or "not a twistdlite" in message


def test_truncated_payload_says_how_much_is_missing():
    data = tap(b"x" * 100)
    with pytest.raises(LoadError, match=r"truncated \(60 of 100 pickle bytes\)"):
        persist.decode(data[:-40], source="a.tap")


def test_every_flipped_byte_is_refused():
    data = tap(pickle.dumps({"state": list(range(20))}), name="Counter", paths=["/srv"])
    for index in range(len(data)):
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        with pytest.raises(LoadError) as info:
            persist.decode(bytes(damaged), source="a.tap")
        assert "\n" not in str(info.value), index


def test_flipped_payload_byte_is_reported_as_damage():
    data = bytearray(tap(b"x" * 50))
    data[-3] ^= 0xFF
    with pytest.raises(LoadError, match="damaged: its contents do not match its SHA-256 digest"):
        persist.decode(bytes(data), source="a.tap")


def test_extra_bytes_at_the_end_are_refused():
    with pytest.raises(LoadError, match="unexpected bytes at its end"):
        persist.decode(tap(b"abc") + b"more", source="a.tap")


def test_plain_pickle_without_header_is_refused():
    with pytest.raises(LoadError, match="not a twistdlite .tap file .it looks like a plain pickle.: it has no"):
        persist.decode(pickle.dumps({"a": 1}), source="a.tap")


def test_other_file_is_refused():
    with pytest.raises(LoadError, match="not a twistdlite .tap file: it has no TWISTDLITE-TAP header"):
        persist.decode(b"#!/bin/sh\necho hi\n", source="a.tap")


def test_empty_file_is_refused():
    with pytest.raises(LoadError, match="a.tap is empty"):
        persist.decode(b"", source="a.tap")


def test_newer_format_version_is_refused_naming_the_writer():
    data = tap(b"abc").replace(b"TWISTDLITE-TAP 1\n", b"TWISTDLITE-TAP 2\n", 1)
    data = data.replace(b'"twistdlite":"%s"' % twistdlite.__version__.encode(), b'"twistdlite":"9.1"')
    with pytest.raises(LoadError) as info:
        persist.decode(data, source="a.tap")
    assert str(info.value) == (f"a.tap was written by twistdlite 9.1 in .tap format 2; twistdlite "
                               f"{twistdlite.__version__} reads format 1 and older")


def test_newer_format_with_unreadable_header_still_says_newer():
    with pytest.raises(LoadError, match="written by a newer twistdlite in .tap format 7"):
        persist.decode(b"TWISTDLITE-TAP 7\n\x00\x01binary", source="a.tap")


def test_unreadable_version_is_refused():
    with pytest.raises(LoadError, match="format version is unreadable"):
        persist.decode(b"TWISTDLITE-TAP x1\n{}\n", source="a.tap")


def test_invalid_header_fields_are_refused():
    meta = json.dumps({"digest": "md5", "length": 3, "twistdlite": "0"}).encode()
    with pytest.raises(LoadError, match="header is invalid"):
        persist.decode(b"TWISTDLITE-TAP 1\n" + meta + b"\n" + b"0" * 64 + b"\nabc", source="a.tap")


@pytest.mark.parametrize("key", [None, KEY], ids=["sha256", "tap-key"])
@pytest.mark.parametrize("depth", [10_000, 30_000])
def test_deeply_nested_header_json_is_damage_not_a_recursion_error(key, depth):
    meta = b"[" * depth + b"]" * depth
    data = b"TWISTDLITE-TAP 1\n" + meta + b"\n" + b"0" * 64 + b"\nabc"
    with pytest.raises(LoadError) as info:
        persist.decode(data, key, source="a.tap")
    assert str(info.value) == "a.tap is damaged (its header is unreadable); refusing to load it"


def test_wrong_key_is_refused():
    with pytest.raises(LoadError, match="was not signed with the key in /keys/b, or was altered since"):
        persist.decode(tap(b"abc", KEY), OTHER_KEY, source="a.tap")


def test_unsigned_tap_is_refused_when_a_key_is_required():
    with pytest.raises(LoadError, match="is not signed .it was saved without --tap-key., but --tap-key"):
        persist.decode(tap(b"abc"), KEY, source="a.tap")


def test_signed_tap_needs_the_key():
    with pytest.raises(LoadError, match="is signed with a key: pass --tap-key FILE .or set TWISTDLITE_TAP_KEY."):
        persist.decode(tap(b"abc", KEY), None, source="a.tap")


def test_header_cannot_be_swapped_without_breaking_the_digest():
    """The header (with its import path) is covered by the digest, not only the pickle."""
    data = tap(b"abc", paths=["/srv/app"])
    forged = data.replace(b'"/srv/app"', b'"/tmp/evil"')
    with pytest.raises(LoadError, match="damaged: its contents do not match"):
        persist.decode(forged, source="a.tap")


def test_pickle_protocol_newer_than_this_python_is_refused(monkeypatch):
    monkeypatch.setattr(persist, "PICKLE_PROTOCOL", pickle.HIGHEST_PROTOCOL + 1)
    data = tap(b"abc")
    with pytest.raises(LoadError, match=f"needs pickle protocol {pickle.HIGHEST_PROTOCOL + 1}"):
        persist.decode(data, source="a.tap")


# -- key files ---------------------------------------------------------------------

def test_read_key_strips_trailing_newlines(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"0123456789abcdef-secret\n")
    path.chmod(0o600)
    key = persist.read_key(str(path))
    assert key.secret == b"0123456789abcdef-secret"
    assert "secret" not in repr(key) and str(path) in repr(key)


def test_no_key_path_means_no_key():
    assert persist.read_key(None) is None and persist.read_key("") is None


def test_missing_key_file(tmp_path):
    with pytest.raises(LaunchError, match="tap key file .*nokey' does not exist"):
        persist.read_key(str(tmp_path / "nokey"))


def test_short_key_is_refused(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(b"short\n")
    path.chmod(0o600)
    with pytest.raises(LaunchError, match=r"holds 5 bytes; a key needs at least 16 \(e.g. head -c 32"):
        persist.read_key(str(path))


def test_key_that_is_a_directory(tmp_path):
    with pytest.raises(LaunchError, match="is a directory"):
        persist.read_key(str(tmp_path))


def test_unreadable_key_file(tmp_path):
    """Run where the file is really unreadable: as root, without the capabilities that bypass permissions."""
    path = tmp_path / "key"
    path.write_bytes(b"x" * 32)
    path.chmod(0)
    done = python_without_file_capabilities(
        "from twistdlite.launch import persist\n"
        "from twistdlite.launch.errors import LaunchError\n"
        "try:\n"
        f"    persist.read_key({str(path)!r})\n"
        "except LaunchError as exc:\n"
        "    print(exc)\n")
    assert done.stdout == f"cannot read tap key file {str(path)!r}: Permission denied\n", done.stdout + done.stderr
