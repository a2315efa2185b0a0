"""The line-reversing server of the Twisted docs, with imports changed to twistdlite.

It listens on port 2323, as in the docs; set REVERSE_PORT to use another (0 picks a
free one, which the "ReverserFactory starting on N" log line names).
"""

import os

from twistdlite import basic, internet, protocol


def reverse(string):
    return string[::-1]


class ReverserProtocol(basic.LineReceiver):
    def lineReceived(self, line):
        if hasattr(self, 'handle_' + line.decode()):
            getattr(self, 'handle_' + line.decode())()
        else:
            self.sendLine(reverse(line))

    def handle_quit(self):
        self.transport.loseConnection()


class ReverserFactory(protocol.ServerFactory):
    protocol = ReverserProtocol


class ReverserService(internet.TCPServer):
    def __init__(self):
        port = int(os.environ.get("REVERSE_PORT", "2323"))
        internet.TCPServer.__init__(self, port, ReverserFactory())
