"""Resources: the objects a :class:`~twistdlite.web.server.Site` finds by URL path and renders.

Mirrors ``twisted.web.resource``: a :class:`Resource` has children by path
segment (``putChild``, ``getChild``, ``getChildWithDefault``); the site walks
the request's path through them until it reaches a leaf (``isLeaf``) or runs
out of segments, then calls ``render(request)``, which dispatches to
``render_GET``, ``render_POST``... A method with no ``render_<METHOD>`` gets
405 with an ``Allow`` header (``HEAD`` falls back to ``render_GET``).

A render method returns the body (``bytes``), or ``server.NOT_DONE_YET`` and
finishes the request later; it may also be an ``async def`` (beyond Twisted):
its result, awaited on the loop, is the body.
"""

from __future__ import annotations

import html
from typing import Any, Optional

__all__ = ["Resource", "ErrorPage", "NoResource", "ForbiddenResource", "UnsupportedMethod",
           "getChildForRequest"]


class UnsupportedMethod(Exception):
    """Raised by ``render`` for a method the resource has no ``render_<METHOD>`` for (405)."""

    def __init__(self, allowedMethods: Any = ()) -> None:
        super().__init__(allowedMethods)
        #: The methods it does support (bytes), for the ``Allow`` header.
        self.allowedMethods = tuple(allowedMethods)


def _as_bytes(path: Any) -> bytes:
    if isinstance(path, bytes):
        return path
    if isinstance(path, str):
        return path.encode("utf-8")
    raise TypeError(f"a child's path must be bytes, not {type(path).__name__}")


#: Request method -> the name of the render method for it (``b"GET"`` -> ``"render_GET"``).
_render_names: dict = {}


class Resource:
    """A web resource: children by path segment, and ``render_<METHOD>`` methods."""

    #: A leaf gets the rest of the path in ``request.postpath`` instead of children looked up.
    isLeaf = False
    #: The server this resource belongs to, if any (kept for Twisted's API).
    server: Any = None

    def __init__(self) -> None:
        #: path segment (bytes) -> child resource.
        self.children: dict = {}

    def getChildWithDefault(self, path: bytes, request: Any) -> "Resource":
        """The child ``path`` set by :meth:`putChild`, else :meth:`getChild`'s answer."""
        children = self.__dict__.get("children")
        if children:
            child = children.get(path)
            if child is not None:
                return child
        return self.getChild(path, request)

    def getChild(self, path: bytes, request: Any) -> "Resource":
        """The child for a segment with no :meth:`putChild` entry: a 404 page unless overridden."""
        return NoResource("No such child resource.")

    def putChild(self, path: bytes, child: "Resource") -> None:
        """Make ``child`` the resource at segment ``path`` (bytes; ``b""`` is the trailing-slash child)."""
        children = self.__dict__.setdefault("children", {})
        children[_as_bytes(path)] = child
        child.server = self.server

    def listStaticEntities(self) -> list:
        """``(path, child)`` of each child set by :meth:`putChild`."""
        return list(self.__dict__.get("children", {}).items())

    def getStaticEntity(self, name: bytes) -> Optional["Resource"]:
        """The child set for ``name`` by :meth:`putChild`, or None."""
        return self.__dict__.get("children", {}).get(name)

    def render(self, request: Any) -> Any:
        """Call ``render_<METHOD>(request)``; :class:`UnsupportedMethod` when there is none."""
        method = request.method
        name = _render_names.get(method)
        if name is None:
            name = "render_" + (method.decode("ascii", "replace") if isinstance(method, bytes) else method)
            if len(_render_names) < 64:
                _render_names[method] = name
        handler = getattr(self, name, None)
        if handler is None:
            if method == b"HEAD":
                handler = getattr(self, "render_GET", None)
            if handler is None:
                raise UnsupportedMethod(self.allowedMethods())
        return handler(request)

    def allowedMethods(self) -> list:
        """The methods this resource renders (bytes), from its ``render_<METHOD>`` attributes."""
        found = set()
        for name in dir(self):
            if name == "render_HEAD" and type(self).render_HEAD is Resource.render_HEAD:
                continue  # the base class's HEAD is GET's: listed only when there is a GET
            if name.startswith("render_") and name[7:].isupper() and callable(getattr(self, name, None)):
                found.add(name[7:].encode("ascii"))
        if b"GET" in found:
            found.add(b"HEAD")
        return sorted(found)

    def render_HEAD(self, request: Any) -> Any:
        """``HEAD``: what ``GET`` renders (the server sends only the head)."""
        handler = getattr(self, "render_GET", None)
        if handler is None:
            raise UnsupportedMethod(self.allowedMethods())
        return handler(request)


def getChildForRequest(resource: Resource, request: Any) -> Resource:
    """Walk ``request.postpath`` from ``resource`` down to the resource that renders it."""
    postpath = request.postpath
    prepath = request.prepath
    while postpath and not resource.isLeaf:
        segment = postpath.pop(0)
        prepath.append(segment)
        resource = resource.getChildWithDefault(segment, request)
    return resource


class ErrorPage(Resource):
    """A resource rendering an error page: ``ErrorPage(404, "No Such Resource", "detail")``."""

    isLeaf = True
    template = ("<html>\n  <head><title>%(code)s - %(brief)s</title></head>\n  <body>\n"
                "    <h1>%(brief)s</h1>\n    <p>%(detail)s</p>\n  </body>\n</html>\n")

    def __init__(self, status: int, brief: str, detail: str) -> None:
        super().__init__()
        self.code = status
        self.brief = brief
        self.detail = detail

    def render(self, request: Any) -> bytes:
        """The page, with the status code set; any method."""
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        text = self.template % {"code": self.code, "brief": html.escape(str(self.brief)),
                                "detail": html.escape(str(self.detail))}
        return text.encode("utf-8")

    def getChild(self, path: bytes, request: Any) -> Resource:
        """Every child of an error page is the same page."""
        return self


class NoResource(ErrorPage):
    """404 Not Found."""

    def __init__(self, message: str = "Sorry. No luck finding that resource.") -> None:
        super().__init__(404, "No Such Resource", message)


class ForbiddenResource(ErrorPage):
    """403 Forbidden."""

    def __init__(self, message: str = "Sorry, resource is forbidden.") -> None:
        super().__init__(403, "Forbidden Resource", message)
