# A client that stays connected to the echo server, reconnecting with back-off while the
# server is away. Run examples/echo.tac, then: twistdlite -noy examples/client.tac
# ECHO_PORT names the server's port (default 8007); CLIENT_RETRY_INITIAL and
# CLIENT_RETRY_MAX set the first and the longest wait between attempts (default 1 and 30 s).
import os

from twistdlite import endpoints, internet, service

import echoclient

port = int(os.environ.get("ECHO_PORT", "8007"))
initial = float(os.environ.get("CLIENT_RETRY_INITIAL", "1"))
longest = float(os.environ.get("CLIENT_RETRY_MAX", "30"))

application = service.Application("echo_client")
endpoint = endpoints.clientFromString(f"tcp:host=127.0.0.1:port={port}")
policy = internet.backoffPolicy(initialDelay=initial, maxDelay=longest)
internet.ClientService(endpoint, echoclient.HelloFactory(), retryPolicy=policy).setServiceParent(application)
