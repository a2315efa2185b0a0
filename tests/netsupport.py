"""Helpers for the network tests: run a coroutine on a chosen loop with a deadline, fakes, TLS files."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import pytest

#: The loops the in-process tests run on (uvloop only when installed).
import importlib.util

LOOPS = ["asyncio", "uvloop"] if importlib.util.find_spec("uvloop") else ["asyncio"]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of ``kind`` (``asyncio`` or ``uvloop``)."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(coro: Awaitable[Any], loop: str = "asyncio", timeout: float = 15.0) -> Any:
    """Run ``coro`` to completion on a new loop, failing after ``timeout`` seconds."""
    event_loop = new_loop(loop)
    try:
        return event_loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        try:
            event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        finally:
            event_loop.close()


async def until(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``condition`` on the running loop until it is truthy; AssertionError at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)


class FakeTransport:
    """A transport that records what is written (for protocol unit tests)."""

    disconnecting = False

    def __init__(self) -> None:
        self.chunks: list = []
        self.lost = 0

    def write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))

    def writeSequence(self, seq: Any) -> None:
        self.chunks.extend(bytes(part) for part in seq)

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.lost += 1

    def value(self) -> bytes:
        return b"".join(self.chunks)


def make_cert(directory: Path, name: str = "server", cn: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate and key for ``cn`` (and 127.0.0.1) made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    key = directory / f"{name}.key"
    cert = directory / f"{name}.crt"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return key, cert


class Recorder:
    """Collects calls for fake-endpoint and fake-connector tests."""

    def __init__(self) -> None:
        self.calls: list = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)


def loop_param(loop: Optional[str] = None) -> Any:
    """``pytest.mark.parametrize`` over the available loops."""
    return pytest.mark.parametrize("loop", LOOPS if loop is None else [loop])
