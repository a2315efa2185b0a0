"""Helpers for resources, mirroring ``twisted.web.util``."""

from __future__ import annotations

import html
from typing import Any

from twistdlite.web import resource

__all__ = ["redirectTo", "Redirect"]


def redirectTo(URL: bytes, request: Any) -> bytes:
    """Make ``request`` a 302 redirect to ``URL`` and return a small HTML page linking to it."""
    if not isinstance(URL, bytes):
        raise TypeError(f"URL must be bytes, not {type(URL).__name__}")
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.redirect(URL)
    target = html.escape(URL.decode("utf-8", "replace"))
    return (f'<html>\n    <head>\n        <meta http-equiv="refresh" content="0;URL={target}">\n    </head>\n'
            f'    <body bgcolor="#FFFFFF" text="#000000">\n    <a href="{target}">click here</a>\n'
            f'    </body>\n</html>\n').encode("utf-8")


class Redirect(resource.Resource):
    """A resource redirecting every request to ``url``."""

    isLeaf = True

    def __init__(self, url: bytes) -> None:
        super().__init__()
        self.url = url

    def render(self, request: Any) -> bytes:
        """Redirect."""
        return redirectTo(self.url, request)

    def getChild(self, name: bytes, request: Any) -> "Redirect":
        """Every child redirects the same way."""
        return self
