# A plain asyncio server under twistdlite: an asyncio.Protocol and an `async def` start.
# Run with: twistdlite -noy examples/asyncio_native.tac   (NATIVE_PORT: default 8009; 0 picks one)
import os

from twistdlite import service

import nativeecho

port = int(os.environ.get("NATIVE_PORT", "8009"))
application = service.Application("asyncio_native")
nativeecho.NativeEchoService("127.0.0.1", port).setServiceParent(application)
