"""IntNStringReceiver.recvd, as Twisted code uses it to hand the unparsed rest to the next protocol."""

from __future__ import annotations

import struct

from twistdlite.basic import Int16StringReceiver, Int32StringReceiver


def framed(proto, payload: bytes) -> bytes:
    return struct.pack(proto.structFormat, len(payload)) + payload


def test_recvd_in_string_received_is_the_data_after_the_string():
    proto = Int32StringReceiver()
    seen = []
    proto.stringReceived = lambda s: seen.append((s, proto.recvd))
    tail = framed(proto, b"bbbbb")[:-1]
    proto.dataReceived(framed(proto, b"aaaaa") + tail)
    assert seen == [(b"aaaaa", tail)]
    assert proto.recvd == tail  # between calls: what is waiting for the rest
    proto.dataReceived(b"b")
    assert seen[-1] == (b"bbbbb", b"") and proto.recvd == b""


def test_protocol_switching_hands_on_the_rest_and_it_is_not_parsed_again():
    proto = Int16StringReceiver()
    seen = []
    handed_on = []

    def switch(string):
        seen.append(string)
        handed_on.append(proto.recvd)
        proto.recvd = b""  # the next protocol takes the rest

    proto.stringReceived = switch
    proto.dataReceived(framed(proto, b"HELLO") + b"raw bytes for the next protocol")
    assert seen == [b"HELLO"] and handed_on == [b"raw bytes for the next protocol"]
    assert proto.recvd == b""


def test_setting_recvd_makes_parsing_go_on_from_it():
    proto = Int32StringReceiver()
    seen = []

    def received(string):
        if not seen:
            proto.recvd = framed(proto, b"ccc")
        seen.append(string)

    proto.stringReceived = received
    proto.dataReceived(framed(proto, b"a") + framed(proto, b"b"))
    assert seen == [b"a", b"ccc"]


def test_recvd_holds_everything_unparsed_when_the_length_limit_is_exceeded():
    proto = Int32StringReceiver()
    proto.MAX_LENGTH = 3
    message = framed(proto, b"too long")
    seen = []
    proto.lengthLimitExceeded = lambda length: seen.append((length, proto.recvd))
    proto.dataReceived(message)
    assert seen == [(8, message)]
