"""Saving and loading ``.tap`` files: the pickled application behind a checked header.

A ``.tap`` (format 1) is three header lines, then the pickle::

    TWISTDLITE-TAP 1
    {"digest": "sha256", "length": 1234, "name": "Counter", "path": ["/srv/app"], ...}
    <64 hex digits: the digest>
    <the pickle: exactly "length" bytes>

The digest is the SHA-256 of the first two lines and the pickle; with
``--tap-key FILE`` (or ``TWISTDLITE_TAP_KEY``) it is their HMAC-SHA256 under
the key in FILE, and the second line says ``"digest": "hmac-sha256"``.
``path`` lists the directories the application's modules were imported from
(the ``.tac``'s own directory): they go on ``sys.path`` before unpickling.

Loading refuses, before unpickling a single byte, a symbolic link, a file that
is not a regular file, is writable by group or others or owned by another user (unless
``--allow-unsafe-tap``), has no header (a plain pickle), comes from a newer
format, is truncated or altered, or was not signed with the given key.

Saving writes a temporary file in the same directory (created exclusively,
mode 0600), fsyncs it, renames it over ``<name>-shutdown.tap`` (replacing a
symlink there, never following it) and fsyncs the directory: a failed or
interrupted save leaves the previous ``.tap`` as it was.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import weakref
from typing import Any, Optional, Sequence

from twistdlite.launch.errors import LaunchError, LoadError
from twistdlite.launch.options import Options
from twistdlite.launch.pidfile import process_gone

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "PICKLE_PROTOCOL",
    "MIN_KEY_BYTES",
    "TapKey",
    "TapHeader",
    "read_key",
    "encode",
    "decode",
    "save",
    "load",
    "remember_loaded",
    "save_shutdown_tap",
    "shutdown_tap_path",
    "prepare_save",
    "remember_paths",
    "check_file_safety",
    "write_atomically",
    "remove_stale_temp_files",
]

log = logging.getLogger("twistdlite")

#: The first bytes of every .tap, followed by the format version and a newline.
MAGIC = b"TWISTDLITE-TAP "
#: The format this twistdlite writes and the newest it reads.
FORMAT_VERSION = 1
#: The pickle protocol .tap files are written with.
PICKLE_PROTOCOL = 5
#: A --tap-key file must hold at least this many bytes.
MIN_KEY_BYTES = 16
_MAX_HEADER = 64 * 1024
_DIGEST_HEX = 64
_SHA256 = "sha256"
_HMAC = "hmac-sha256"


# -- keys -------------------------------------------------------------------

class TapKey:
    """The secret from a ``--tap-key`` file; its repr never shows the secret."""

    def __init__(self, secret: bytes, path: str) -> None:
        self.secret = secret
        self.path = path

    def __repr__(self) -> str:
        return f"<TapKey from {self.path!r}>"


def read_key(path: Optional[str]) -> Optional[TapKey]:
    """Read the key in ``path`` (None: no key); :class:`LaunchError` when unusable.

    The key is the file's bytes without trailing newlines; it must hold at
    least :data:`MIN_KEY_BYTES` bytes (``head -c 32 /dev/urandom > FILE``) and
    be open to no one but its owner (mode 0600 or 0400).
    """
    if path is None or path == "":
        return None
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise LaunchError(f"tap key {path!r} is not a regular file")
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise LaunchError(f"tap key file {path!r} is open to its group or others (mode "
                                  f"{stat.S_IMODE(st.st_mode):04o}): whoever reads it can sign a .tap; "
                                  f"chmod 600 {path}")
            secret = handle.read(1 << 20).rstrip(b"\r\n")
    except FileNotFoundError:
        raise LaunchError(f"tap key file {path!r} does not exist") from None
    except IsADirectoryError:
        raise LaunchError(f"tap key {path!r} is a directory, not a file") from None
    except OSError as exc:
        raise LaunchError(f"cannot read tap key file {path!r}: {exc.strerror}") from None
    if len(secret) < MIN_KEY_BYTES:
        raise LaunchError(f"tap key file {path!r} holds {len(secret)} bytes; a key needs at least "
                          f"{MIN_KEY_BYTES} (e.g. head -c 32 /dev/urandom > {path})")
    return TapKey(secret, os.path.abspath(path))


# -- the format ---------------------------------------------------------------

class TapHeader:
    """What the second line of a ``.tap`` says (``extra``: any keys this version does not know)."""

    FIELDS = ("digest", "length", "twistdlite", "name", "path", "pickle", "python")
    __slots__ = FIELDS + ("extra",)

    def __init__(self, digest: str, length: int, twistdlite: str, name: Optional[str] = None,
                 path: tuple = (), pickle: int = PICKLE_PROTOCOL, python: str = "",
                 extra: Optional[dict] = None) -> None:
        self.digest = digest
        self.length = length
        self.twistdlite = twistdlite
        self.name = name
        self.path = path
        self.pickle = pickle
        self.python = python
        self.extra = extra or {}

    def __repr__(self) -> str:
        return "TapHeader(%s)" % ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)


def _digest(key: Optional[TapKey], signed: bytes, payload: bytes) -> str:
    import hashlib

    if key is None:
        digest = hashlib.sha256(signed)
    else:
        import hmac

        digest = hmac.new(key.secret, signed, hashlib.sha256)
    digest.update(payload)
    return digest.hexdigest()


def encode(payload: bytes, key: Optional[TapKey] = None, name: Optional[str] = None,
           paths: Sequence[str] = ()) -> list[bytes]:
    """The chunks of a ``.tap`` holding ``payload`` (a pickle): the header lines, then the payload."""
    import json

    import twistdlite

    meta = {
        "digest": _SHA256 if key is None else _HMAC,
        "length": len(payload),
        "name": name,
        "path": list(paths),
        "pickle": PICKLE_PROTOCOL,
        "python": sys.version.split()[0],
        "twistdlite": twistdlite.__version__,
    }
    signed = b"%s%d\n%s\n" % (MAGIC, FORMAT_VERSION,
                              json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("ascii"))
    return [signed, _digest(key, signed, payload).encode("ascii") + b"\n", payload]


def _line(data: bytes, start: int, limit: int, source: str, what: str) -> tuple[bytes, int]:
    end = data.find(b"\n", start, start + limit + 1)
    if end < 0:
        if len(data) - start <= limit:
            raise LoadError(f"{source} is truncated (it ends inside its {what}); refusing to load it")
        raise LoadError(f"{source} is damaged (its {what} is malformed); refusing to load it")
    return data[start:end], end + 1


def _parse_meta(raw: bytes, source: str) -> TapHeader:
    import json

    try:
        meta = json.loads(raw.decode("ascii"))
        header = TapHeader(
            digest=meta["digest"],
            length=meta["length"],
            twistdlite=meta["twistdlite"],
            name=meta.get("name"),
            path=tuple(meta.get("path") or ()),
            pickle=meta.get("pickle", PICKLE_PROTOCOL),
            python=meta.get("python", ""),
            extra={k: v for k, v in meta.items() if k not in TapHeader.FIELDS},
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        # (RecursionError: JSON nested deeper than the parser goes)
        raise LoadError(f"{source} is damaged (its header is unreadable); refusing to load it") from None
    if (header.digest not in (_SHA256, _HMAC) or not isinstance(header.length, int) or header.length < 0
            or not isinstance(header.pickle, int) or not all(isinstance(p, str) for p in header.path)
            or not isinstance(header.twistdlite, str)):
        raise LoadError(f"{source} is damaged (its header is invalid); refusing to load it")
    return header


def _newer_writer(data: bytes, start: int) -> str:
    """Best effort: the twistdlite version named in a newer file's header."""
    import json

    end = data.find(b"\n", start, start + _MAX_HEADER)
    try:
        version = json.loads(data[start:end].decode("ascii"))["twistdlite"]
        return f"twistdlite {version}" if isinstance(version, str) else "a newer twistdlite"
    except Exception:
        return "a newer twistdlite"


def decode(data: bytes, key: Optional[TapKey] = None, source: str = ".tap") -> tuple[TapHeader, bytes]:
    """Check a ``.tap``'s header and digest; returns ``(header, pickle bytes)``.

    Raises :class:`LoadError` with a one-line reason for anything that is not
    an intact ``.tap`` (signed with ``key`` when one is given). Nothing is unpickled.
    """
    import hmac
    import pickle

    import twistdlite

    if not data:
        raise LoadError(f"{source} is empty; refusing to load it")
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise LoadError(f"{source} is truncated (it ends inside its header); refusing to load it")
        plain = " (it looks like a plain pickle)" if data[:1] == b"\x80" else ""
        raise LoadError(f"{source} is not a twistdlite .tap file{plain}: it has no TWISTDLITE-TAP "
                        "header, and a pickle is code, so it is not loaded")
    version_line, position = _line(data, len(MAGIC), 10, source, "header")
    if not version_line.isdigit():
        raise LoadError(f"{source} is damaged (its format version is unreadable); refusing to load it")
    version = int(version_line)
    if version > FORMAT_VERSION:
        raise LoadError(f"{source} was written by {_newer_writer(data, position)} in .tap format {version}; "
                        f"twistdlite {twistdlite.__version__} reads format {FORMAT_VERSION} and older")
    if version < 1:
        raise LoadError(f"{source} is damaged (unknown format version {version}); refusing to load it")
    raw_meta, position = _line(data, position, _MAX_HEADER, source, "header")
    signed = data[:position]
    header = _parse_meta(raw_meta, source)
    digest, position = _line(data, position, _DIGEST_HEX, source, "digest")
    if len(digest) != _DIGEST_HEX:
        if position >= len(data) and len(digest) < _DIGEST_HEX:
            raise LoadError(f"{source} is truncated (it ends inside its digest); refusing to load it")
        raise LoadError(f"{source} is damaged (its digest is malformed); refusing to load it")
    payload = data[position:]
    if header.digest == _HMAC and key is None:
        raise LoadError(f"{source} is signed with a key: pass --tap-key FILE (or set TWISTDLITE_TAP_KEY) "
                        "to check and load it")
    if header.digest == _SHA256 and key is not None:
        raise LoadError(f"{source} is not signed (it was saved without --tap-key), but --tap-key "
                        f"{key.path} requires a signed .tap; refusing to load it")
    if len(payload) < header.length:
        raise LoadError(f"{source} is truncated ({len(payload)} of {header.length} pickle bytes); "
                        "refusing to load it")
    if len(payload) > header.length:
        raise LoadError(f"{source} is damaged ({len(payload) - header.length} unexpected bytes at its end); "
                        "refusing to load it")
    expected = _digest(key, signed, payload).encode("ascii")
    if not hmac.compare_digest(expected, digest.lower()):
        if key is not None:
            raise LoadError(f"{source} was not signed with the key in {key.path}, or was altered since; "
                            "refusing to load it")
        raise LoadError(f"{source} is damaged: its contents do not match its SHA-256 digest; "
                        "refusing to load it")
    if header.pickle > pickle.HIGHEST_PROTOCOL:
        raise LoadError(f"{source} needs pickle protocol {header.pickle}; this Python "
                        f"({sys.version.split()[0]}) reads up to {pickle.HIGHEST_PROTOCOL}")
    return header, payload


# -- files ------------------------------------------------------------------------

def check_file_safety(st: os.stat_result, source: str, allow_unsafe: bool = False) -> None:
    """Refuse a ``.tap`` others could have written: group/world-writable, or another user's.

    Root's files and the current user's are trusted. ``allow_unsafe`` (``--allow-unsafe-tap``)
    skips the check.
    """
    if allow_unsafe:
        return
    hint = "or pass --allow-unsafe-tap if that is intended"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH else (
            "its group" if st.st_mode & stat.S_IWGRP else "others")
        raise LoadError(f"{source} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}), so anyone could "
                        f"have put code in it; refusing to load it (chmod go-w {source}, {hint})")
    euid = os.geteuid()
    if st.st_uid not in (0, euid):
        if euid == 0:  # typically the shutdown .tap of a run with -u: saved after the drop
            raise LoadError(f"{source} is owned by {_user_name(st.st_uid)}, and loading it as root would let "
                            "that user run code as root (a .tap is a pickle); if it is the shutdown .tap "
                            f"of a run with -u, check it and chown root {source}, {hint}")
        raise LoadError(f"{source} is owned by {_user_name(st.st_uid)}, not by you ({_user_name(euid)}) or "
                        f"root; refusing to load it ({hint})")


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _read_tap_file(path: str, allow_unsafe: bool) -> bytes:
    """The bytes of the ``.tap`` at ``path``, after checking it is a safe regular file."""
    if not os.path.lexists(path):
        raise LoadError(f"Application file {path!r} does not exist")
    if os.path.isdir(path):
        raise LoadError(f"Application file {path!r} is a directory, not a file")
    if os.path.islink(path):
        raise LoadError(f"Application file {path!r} is a symbolic link; .tap files are never read "
                        f"through one (give the path of the file itself: {os.path.realpath(path)})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise LoadError(f"Application file {path!r} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the check above
            raise LoadError(f"Application file {path!r} is a symbolic link; .tap files are never read "
                            "through one") from None
        raise LoadError(f"cannot open application file {path!r}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LoadError(f"Application file {path!r} is not a regular file")
        check_file_safety(st, path, allow_unsafe)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise LoadError(f"cannot read application file {path!r}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _add_import_paths(paths: Sequence[str]) -> None:
    for directory in reversed(list(paths)):
        if directory not in sys.path and os.path.isdir(directory):
            sys.path.insert(0, directory)


def load(path: str, key: Optional[TapKey] = None, allow_unsafe: bool = False) -> tuple[Any, TapHeader]:
    """Check and unpickle the ``.tap`` at ``path``; returns ``(application, header)``."""
    import pickle

    data = _read_tap_file(path, allow_unsafe)
    header, payload = decode(data, key, path)
    _add_import_paths(header.path)
    try:
        application = pickle.loads(payload)
    except ModuleNotFoundError as exc:
        where = f" (its modules were imported from {', '.join(header.path)})" if header.path else ""
        raise LoadError(f"cannot load {path}: no module named {exc.name!r}{where}") from None
    except Exception as exc:
        raise LoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    return application, header


def remember_loaded(application: Any, header: TapHeader, key: Optional[TapKey]) -> None:
    """Record what the ``.tap`` ``application`` came from says for its next save: its import path, its key."""
    remember_paths(application, header.path)
    plan = _plan(application)
    plan.key = key
    plan.key_read = True


# -- saving -------------------------------------------------------------------------

class _SavePlan:
    """What a later save of an application needs to know from start-up."""

    __slots__ = ("paths", "key", "key_read", "__weakref__")

    def __init__(self) -> None:
        self.paths: tuple = ()
        self.key: Optional[TapKey] = None
        self.key_read = False


# What the loader and the start-up learned about each loaded application (its
# import path, the key), kept until its shutdown save; weak, so an in-process
# caller's applications are not kept alive by it.
_plans: "weakref.WeakKeyDictionary[Any, _SavePlan]" = weakref.WeakKeyDictionary()
_strong_plans: dict = {}  # for applications that cannot be weakly referenced


def _plan(application: Any) -> _SavePlan:
    try:
        plan = _plans.get(application)
        if plan is None:
            plan = _plans[application] = _SavePlan()
        return plan
    except TypeError:
        entry = _strong_plans.get(id(application))
        if entry is None or entry[0] is not application:
            entry = _strong_plans[id(application)] = (application, _SavePlan())
        return entry[1]


def remember_paths(application: Any, paths: Sequence[str]) -> None:
    """Record the directories ``application``'s modules import from, for its ``.tap`` header."""
    _plan(application).paths = tuple(paths)


def prepare_save(application: Any, options: Options) -> None:
    """Get ready for the shutdown save now, before chdir, chroot and the privilege drop.

    Reads ``--tap-key`` (checked even with ``-o``: a bad key file is an error
    either way) and, unless ``-o``, imports what a save uses: once privileges
    are dropped the interpreter's own files may be out of reach (a Python under /root).
    """
    if not options.no_save:
        import hashlib  # noqa: F401
        import hmac  # noqa: F401
        import json  # noqa: F401
        import pickle  # noqa: F401
        import tempfile  # noqa: F401

        from twistdlite.launch import picklecheck  # noqa: F401

    plan = _plan(application)
    if not plan.key_read:
        plan.key = read_key(options.tap_key)
        plan.key_read = True


def shutdown_tap_path(application: Any) -> str:
    """``<application name>-shutdown.tap`` (in the current, i.e. run, directory)."""
    name = getattr(application, "name", None) or "twistd"
    name = str(name).replace(os.sep, "_").replace("\0", "_")
    return f"{name}-shutdown.tap"


def _write_all(fd: int, chunks: Sequence[bytes]) -> None:
    """Write every chunk to ``fd`` (a seam: tests replace it to fake a full disk)."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is done
    finally:
        os.close(fd)


def write_atomically(path: str, chunks: Sequence[bytes]) -> None:
    """Replace ``path`` with ``chunks``, all or nothing, as a new mode-0600 file.

    A temporary file is created exclusively beside ``path`` (never through a
    symlink), written, fsynced and renamed over ``path`` (a symlink at ``path``
    is replaced, not followed), then the directory is fsynced. On any error the
    temporary file is removed and ``path`` is untouched; the ``OSError`` propagates.
    """
    import tempfile

    directory = os.path.dirname(path) or "."  # relative stays relative: no need to search the ancestors
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path) + f"{os.getpid()}-", suffix=".tmp", dir=directory)
    try:
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, chunks)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _temp_prefix(path: str) -> str:
    """The start of the names of ``path``'s temporary files: ``.NAME.`` (then ``PID-RANDOM.tmp``)."""
    return f".{os.path.basename(path)}."


def remove_stale_temp_files(path: str) -> list:
    """Remove the temporary files an interrupted save of ``path`` left (a save killed with SIGKILL).

    Only files that are provably a save's own leftovers go: a regular file named
    ``.NAME.PID-RANDOM.tmp`` beside ``path``, owned by this user, whose PID names
    no live process (nor this one; a zombie is not live). Anything else is left alone.
    Returns the paths removed.
    """
    import re

    directory = os.path.dirname(path) or "."
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"([0-9]{1,10})-[A-Za-z0-9_]{1,64}\.tmp\Z")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or not process_gone(pid):  # a zombie is gone (where PID 1 does not reap, for good)
            continue
        stale = os.path.join(directory, name)
        try:
            st = os.lstat(stale)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                continue
            os.unlink(stale)
        except OSError:
            continue
        log.info("Removed %s, left by a save that was interrupted (PID %d is gone).", stale, pid)
        removed.append(stale)
    return removed


def _pickle(application: Any, path: str) -> bytes:
    import pickle

    try:
        return pickle.dumps(application, protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        from twistdlite.launch.picklecheck import describe_unpicklable

        try:
            detail = describe_unpicklable(application, PICKLE_PROTOCOL)
        except Exception:
            detail = None
        reason = detail or f"{type(exc).__name__}: {exc}"
        raise LaunchError(f"cannot save {path}: {reason}; {path} was not changed") from None


def save(application: Any, path: str, key: Optional[TapKey] = None, paths: Sequence[str] = ()) -> None:
    """Pickle ``application`` into a ``.tap`` at ``path``, atomically; :class:`LaunchError` on failure.

    On failure ``path`` is left exactly as it was (an older ``.tap`` stays loadable).
    """
    payload = _pickle(application, path)
    chunks = encode(payload, key, getattr(application, "name", None), paths)
    try:
        write_atomically(path, chunks)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise LaunchError(f"cannot save {path}: {reason} (in {os.path.dirname(os.path.abspath(path))}); "
                          f"{path} was not changed") from None


def save_shutdown_tap(application: Any, options: Options) -> str:
    """Save ``application`` to ``<name>-shutdown.tap`` in the run directory; returns the path."""
    path = shutdown_tap_path(application)
    plan = _plan(application)
    if not plan.key_read:
        prepare_save(application, options)
    name = getattr(application, "name", None) or type(application).__name__
    log.info("Saving %s application to %s...", name, path)
    save(application, path, plan.key, plan.paths)
    log.info("Saved.")
    if plan.key is None:
        log.info("%s carries a SHA-256 digest, which detects damage, not forgery: only its owner and "
                 "mode (0600) keep others from putting code in it; sign a .tap that travels with --tap-key.",
                 path)
    else:
        log.info("%s is signed with the key in %s (HMAC-SHA256).", path, plan.key.path)
    return path
