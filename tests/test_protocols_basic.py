"""LineReceiver, LineOnlyReceiver, NetstringReceiver and the IntN receivers, on a fake transport."""

from __future__ import annotations

import struct

import pytest

from netsupport import FakeTransport
from twistdlite import basic


def connected(proto):
    transport = FakeTransport()
    proto.makeConnection(transport)
    return proto, transport


class Lines(basic.LineOnlyReceiver):
    def __init__(self):
        self.lines = []
        self.exceeded = []

    def lineReceived(self, line):
        self.lines.append(line)

    def lineLengthExceeded(self, line):
        self.exceeded.append(line)
        return basic.LineOnlyReceiver.lineLengthExceeded(self, line)


def test_line_only_receiver_splits_lines_across_chunks():
    proto, transport = connected(Lines())
    for chunk in (b"one\r", b"\ntw", b"o\r\nthree\r\nfou"):
        proto.dataReceived(chunk)
    assert proto.lines == [b"one", b"two", b"three"]
    proto.dataReceived(b"r\r\n")
    assert proto.lines[-1] == b"four"
    proto.sendLine(b"reply")
    assert transport.value() == b"reply\r\n"


def test_line_only_receiver_drops_an_over_long_line_and_unterminated_tail():
    proto, transport = connected(Lines())
    proto.MAX_LENGTH = 10
    proto.dataReceived(b"short\r\n" + b"x" * 11 + b"\r\nnext\r\n")
    assert proto.lines == [b"short"]
    assert proto.exceeded == [b"x" * 11]
    assert transport.lost == 1

    proto2, transport2 = connected(Lines())
    proto2.MAX_LENGTH = 10
    proto2.dataReceived(b"y" * 6)
    proto2.dataReceived(b"y" * 6)  # no delimiter yet, but already over the limit
    assert proto2.exceeded == [b"y" * 12] and transport2.lost == 1


def test_line_only_receiver_stops_after_lose_connection():
    class Quitter(Lines):
        def lineReceived(self, line):
            super().lineReceived(line)
            if line == b"quit":
                self.transport.loseConnection()

    proto, _ = connected(Quitter())
    proto.dataReceived(b"a\r\nquit\r\nb\r\n")
    assert proto.lines == [b"a", b"quit"]


class Reverser(basic.LineReceiver):
    def __init__(self):
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)


def test_line_receiver_max_length_drops_connection_and_keeps_earlier_lines():
    proto, transport = connected(Reverser())
    proto.MAX_LENGTH = 8
    proto.dataReceived(b"ok\r\n" + b"z" * 11)
    assert proto.lines == [b"ok"]
    assert transport.disconnecting


def test_line_receiver_partial_line_at_disconnect_is_not_delivered():
    proto, transport = connected(Reverser())
    proto.dataReceived(b"whole\r\npart")
    proto.connectionLost(None)
    assert proto.lines == [b"whole"]


class Strings(basic.NetstringReceiver):
    def __init__(self):
        self.strings = []

    def stringReceived(self, string):
        self.strings.append(string)


def test_netstring_round_trip_byte_by_byte():
    sender, out = connected(Strings())
    for payload in (b"hello", b"", b"a:b,c"):
        sender.sendString(payload)
    wire = out.value()
    assert wire == b"5:hello,0:,5:a:b,c,"
    receiver, _ = connected(Strings())
    for index in range(len(wire)):
        receiver.dataReceived(wire[index:index + 1])
    assert receiver.strings == [b"hello", b"", b"a:b,c"]


@pytest.mark.parametrize("garbage", [b"abc:hello,", b"5:hello!", b"05:hello,", b"-1:x,", b"x"])
def test_netstring_malformed_input_drops_the_connection(garbage):
    proto, transport = connected(Strings())
    proto.dataReceived(b"2:ok," + garbage)
    assert proto.strings == [b"ok"]
    assert proto.brokenPeer and transport.lost == 1


def test_netstring_over_max_length_is_refused_before_the_payload_arrives():
    proto, transport = connected(Strings())
    proto.MAX_LENGTH = 10
    proto.dataReceived(b"11:")
    assert proto.brokenPeer and transport.lost == 1
    proto2, transport2 = connected(Strings())
    proto2.MAX_LENGTH = 10
    proto2.dataReceived(b"123")  # more length digits than MAX_LENGTH can have
    assert proto2.brokenPeer and transport2.lost == 1


def test_netstring_a_long_one_in_many_chunks_then_more_in_the_last():
    proto, _ = connected(Strings())
    proto.MAX_LENGTH = 10 ** 6
    payload = bytes(range(256)) * 1000
    wire = b"%d:%s," % (len(payload), payload) + b"3:end,1:"
    for index in range(0, len(wire), 1000):
        proto.dataReceived(wire[index:index + 1000])
    assert proto.strings == [payload, b"end"]
    proto.dataReceived(b"x,")
    assert proto.strings[-1] == b"x" and not proto.brokenPeer


def test_netstring_string_received_may_feed_more_data_and_order_is_kept():
    class Feeding(Strings):
        def stringReceived(self, string):
            super().stringReceived(string)
            if string == b"first":
                self.dataReceived(b"5:fed-1,")
                self.dataReceived(b"5:fed-2,")

    proto, _ = connected(Feeding())
    proto.dataReceived(b"5:first,6:second,")  # what is fed comes after what was received
    proto.dataReceived(b"5:third,")
    assert proto.strings == [b"first", b"second", b"fed-1", b"fed-2", b"third"]


def test_netstring_stops_once_the_connection_is_being_dropped():
    class Quitting(Strings):
        def stringReceived(self, string):
            super().stringReceived(string)
            if string == b"quit":
                self.transport.loseConnection()

    proto, transport = connected(Quitting())
    proto.dataReceived(b"1:a,4:quit,1:b,")
    assert proto.strings == [b"a", b"quit"] and transport.lost == 1


def test_netstring_parsing_is_linear_in_the_size_of_a_chunk():
    # Timing, made robust: compare one 256 KiB chunk with the same data as 64 chunks of 4 KiB,
    # each on a fresh receiver. Linear parsing takes about as long either way (ratio ~1);
    # re-slicing the buffer after each string made the big chunk ~8 times slower. The
    # threshold sits between, and a noisy measurement is retried before failing.
    import gc
    import time

    def parse(count: int, times: int) -> float:
        data = b"1:a," * count
        started = time.perf_counter()
        for _ in range(times):
            proto, _ = connected(Strings())
            proto.dataReceived(data)
            assert len(proto.strings) == count
        return time.perf_counter() - started

    parse(1024, 4)  # warm up
    ratios = []
    gc.disable()
    try:
        for _ in range(3):
            ratios.append(parse(65536, 1) / parse(1024, 64))
            if ratios[-1] < 3.5:
                return
    finally:
        gc.enable()
    pytest.fail(f"one 256 KiB chunk took {min(ratios):.1f} times as long as 64 chunks of 4 KiB")


class Int32(basic.Int32StringReceiver):
    def __init__(self):
        self.strings = []
        self.limits = []

    def stringReceived(self, string):
        self.strings.append(string)

    def lengthLimitExceeded(self, length):
        self.limits.append(length)
        basic.Int32StringReceiver.lengthLimitExceeded(self, length)


def test_int32_a_long_string_in_many_chunks_with_strings_around_it():
    proto, _ = connected(Int32())
    proto.MAX_LENGTH = 1 << 24
    big = bytes(range(256)) * 4096  # 1 MiB
    data = (struct.pack("!I", 3) + b"one" + struct.pack("!I", len(big)) + big
            + struct.pack("!I", 3) + b"two" + struct.pack("!I", 5) + b"thr")
    for at in range(0, len(data), 4096):
        proto.dataReceived(data[at:at + 4096])
    assert proto.strings == [b"one", big, b"two"]
    proto.dataReceived(b"ee")
    assert proto.strings[-1] == b"three"


def test_int32_a_long_string_in_chunks_is_not_copied_over_and_over():
    # As for netstrings: a ratio within one test, retried, not a speed target. Adding each chunk
    # to one buffer made 256 chunks of 64 KiB ~20 times slower than the same 16 MiB in one chunk.
    import gc
    import time

    payload = b"x" * (1 << 24)
    data = struct.pack("!I", len(payload)) + payload
    chunks = [data[at:at + 65536] for at in range(0, len(data), 65536)]

    def parse(pieces) -> float:
        proto, _ = connected(Int32())
        proto.MAX_LENGTH = 1 << 25
        started = time.perf_counter()
        for piece in pieces:
            proto.dataReceived(piece)
        assert proto.strings == [payload]
        return time.perf_counter() - started

    parse([data])
    ratios = []
    gc.disable()
    try:
        for _ in range(3):
            ratios.append(parse(chunks) / max(parse([data]), 1e-6))
            if ratios[-1] < 8:
                return
    finally:
        gc.enable()
    pytest.fail(f"16 MiB in 256 chunks took {min(ratios):.1f} times as long as in one chunk")


def test_int32_round_trip_in_odd_chunks():
    sender, out = connected(Int32())
    payloads = [b"", b"x", b"hello world" * 50]
    for payload in payloads:
        sender.sendString(payload)
    wire = out.value()
    assert wire[:4] == struct.pack("!I", 0)
    receiver, _ = connected(Int32())
    for start in range(0, len(wire), 7):
        receiver.dataReceived(wire[start:start + 7])
    assert receiver.strings == payloads


def test_int32_length_over_max_length_drops_the_connection():
    proto, transport = connected(Int32())
    proto.MAX_LENGTH = 100
    proto.dataReceived(struct.pack("!I", 3) + b"abc" + struct.pack("!I", 101) + b"x" * 10)
    assert proto.strings == [b"abc"]
    assert proto.limits == [101] and transport.lost == 1


@pytest.mark.parametrize("cls,limit", [(basic.Int8StringReceiver, 256), (basic.Int16StringReceiver, 65536)])
def test_short_prefixes_refuse_strings_that_cannot_fit(cls, limit):
    proto, transport = connected(cls())
    with pytest.raises(basic.StringTooLongError):
        proto.sendString(b"x" * limit)
    proto.sendString(b"x" * (limit - 1))
    assert len(transport.value()) == proto.prefixLength + limit - 1
