# TCP echo over TLS on 127.0.0.1. Make a test certificate first, for example:
#   openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt \
#       -days 30 -subj /CN=localhost
# then run: twistdlite -noy examples/tls_echo.tac   (and: openssl s_client -connect 127.0.0.1:8443)
# TLS_KEY and TLS_CERT name the files (default server.key and server.crt in the run
# directory); TLS_PORT sets the port (default 8443; 0 picks a free one).
import os

from twistdlite import internet, service, ssl

import echoserv

key = os.environ.get("TLS_KEY", "server.key")
cert = os.environ.get("TLS_CERT", "server.crt")
port = int(os.environ.get("TLS_PORT", "8443"))

application = service.Application("tls_echo")
context = ssl.DefaultOpenSSLContextFactory(key, cert)
internet.SSLServer(port, echoserv.EchoFactory(), context, interface="127.0.0.1").setServiceParent(application)
