# Spine tests (tests/test_debug.py): a line server on 127.0.0.1 (port 0) whose "boom" line raises.
from twistdlite import basic, internet, protocol, service


class Faulty(basic.LineReceiver):
    def lineReceived(self, line):
        if line == b"boom":
            culprit = line.decode() + "-culprit"
            raise ValueError("bad line " + culprit)
        self.sendLine(b"ok " + line)


application = service.Application("faultyproto")
internet.TCPServer(0, protocol.ServerFactory.forProtocol(Faulty), interface="127.0.0.1").setServiceParent(application)
