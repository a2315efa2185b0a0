"""What profiling found for each missed target, shown in BENCHMARKS.md next to the miss.

Keys are the target ids the benchmark modules give (``Table.target``/``Table.require``).
Each entry says the reason found (and with which tool), then the fix made or proposed.
A miss with no entry is reported as "not analysed yet". The profiling was done on
2026-11-22 on the machine the report describes; the figures quoted are from then.
"""

_STARTUP = (
    "**Reason** (`-X importtime` of both servers — the table's note lists the current top items — "
    "cProfile of `twistdlite -noy`, and interleaved timings of import-only commands): the bare script's "
    "start-up is nearly all the interpreter plus `import asyncio` (~70–80 ms here); twistdlite pays that "
    "plus its launcher. Over `import asyncio, socket, signal` alone: click +15 ms (its `click.types` pulls in "
    "uuid → platform and datetime; argparse would be +3 ms), the launcher modules (runner, daemon, "
    "loader, logsetup, pidfile, options, privileges, signals) +9 ms; then at run time "
    "`twistdlite.launch.persist` is imported even under `-o` (by `loader.load_tac` → "
    "`persist.remember_paths` and by `runner.run` → `persist.prepare_save`), bringing pickle, json, "
    "hashlib/_hashlib (OpenSSL's libcrypto), hmac and a dataclass: ~7 ms and 1.4 MiB; the `.tac`'s own "
    "`from twistdlite import internet, protocol, service` costs ~11 ms under cProfile; and click tries "
    "every short option (`-n`, `-noy`) as a long one first, raising and catching a `NoSuchOption` whose "
    "constructor imports difflib and runs `get_close_matches` (~2 ms). **Fix proposed** (to the lead — "
    "these files belong to other engineers, so not made here): (1) import `persist` only when a save is "
    "planned or `--tap-key`/`-f` is given, and inside persist import pickle/hashlib/hmac/json in the "
    "functions that use them; (2) `Options` as a plain `__slots__` class rather than a frozen dataclass "
    "(dataclass creation execs generated code at import, ~3 ms); (3) the biggest single item is click "
    "(+15 ms); 1.3× the bare script is about bare + 25 ms, so meeting it needs a fast path that parses "
    "the common `-noy FILE` / `-y FILE` / `-n -y FILE` forms without importing click (click still "
    "handling everything else and `--help`), or the target relaxed to ~1.5×."
)

_STARTUP_VS_TWISTD = (
    "**Reason**: the same launcher weight as in the target against the bare script. The reference matters: "
    "with plain Twisted (what the `bench` extra installs) twistd is ready in ~230 ms here, so 0.4× is "
    "~92 ms — within 1.17× of the bare asyncio script, below what even the fixes proposed there reach; "
    "with Twisted's `tls` extra installed (pyOpenSSL, service_identity, cryptography — as in "
    "/work/venv-tw) twistd takes ~272 ms and twistdlite's ratio was 0.43× (2026-11-22). **Fix proposed**: "
    "the start-up fixes above (each ms counts 1:1 here); the remaining gap is for the lead to weigh "
    "against the target."
)

_MEMORY_VS_TWISTD = (
    "**Reason**: plain Twisted's twistd holds ~32.6 MiB here (44.9 MiB with the `tls` extra installed, "
    "where twistdlite's ratio is 0.54×); 0.7× of 32.6 MiB is 22.8 MiB, less than the bare asyncio script "
    "on uvloop (22.9 MiB). **Fix proposed**: the memory fix above (~1.4 MiB: persist, hashlib/libcrypto, "
    "pickle and json only when a `.tap` is handled) brings the asyncio reactor to about 0.71×; the uvloop "
    "reactor (uvloop's own 2.7 MiB) cannot reach 0.7× of plain Twisted."
)

_MEMORY = (
    "**Reason** (RSS of `python -c 'import …'` for each added piece): over the bare script's 20 MiB, "
    "click adds 1.7 MiB, the launcher modules 0.8 MiB, `twistdlite.launch.persist` 1.4 MiB (mostly "
    "`_hashlib`, which maps OpenSSL's libcrypto, plus pickle and json) although `-noy` never saves, and "
    "the API modules the `.tac` imports ~0.3 MiB. **Fix proposed**: fix (1) of the start-up entry "
    "(import persist, and hashlib/hmac within it, only when a `.tap` is saved, loaded or signed) takes "
    "it to ~23 MiB, about 1.14× the bare script."
)

_DAEMON = (
    "**Reason** (strace -f -tt of `twistdlite -y`, and this table's *serving* rows, polled while the "
    "command runs): the launching process used to spend 30–50 ms finalizing the interpreter after the "
    "daemon reported READY (no system calls between reading READY and `exit_group`), while twistd's "
    "launching process leaves with `os._exit` at once. **Fix made** (by the launcher's engineer, commit "
    "f3f3d60, on this finding): the launching command flushes stdout/stderr and leaves with `os._exit(0)` "
    "once READY is read; the command now returns when the daemon serves (compare the *command returns* "
    "and *serving* rows). What is left is the foreground start-up (see the start-up entries) plus "
    "detaching: against plain Twisted (~210 ms here) 0.5× is ~105 ms, which needs the start-up fixes "
    "proposed there; against Twisted with its `tls` extra (~281 ms) it was met (0.49×, see the notes)."
)

_ECHO_VS_TWISTD = (
    "**Reason**: twistdlite on uvloop sits right at the 2× line, and on this shared machine the ratio "
    "moves with the run: five full runs on 2026-11-22 gave 1.87×, 1.90×, 2.20× and 2.23× when the "
    "machine was quiet (1.60× with other work taking 45% of it). The server's own cost per request "
    "(the *server CPU per request* table) is steadier: 9.1–9.5 µs for twistdlite on uvloop against "
    "20.3–22.6 µs for twistd on quiet runs, i.e. 2.2–2.4×; in a run where a few windows were slowed "
    "(see that table's max column) the medians pull closer. About 1 µs of twistdlite's cost is "
    "`LineReceiver.dataReceived`'s general loop (see the entry for the hand-written server). **Fix "
    "proposed**: the `LineReceiver` fast path described there, measured at +11–38% requests/s on uvloop, "
    "which puts the ratio clear of 2×."
)

_ECHO_VS_BARE = (
    "**Reason** (py-spy of the server under load, and `timeit` of one 64-byte line through "
    "`dataReceived`): the system calls dominate both servers, but `LineReceiver.dataReceived` runs its "
    "general loop for every line — re-entrancy flag, try/finally, buffer and position bookkeeping, "
    "MAX_LENGTH checks, the `transport.disconnecting` test, a second `find` to learn there is no more "
    "line — 1.19 µs per line against 0.38 µs for the hand-written `split`; with `StreamAdapter` in front "
    "that is +1–2 µs of a ~10 µs request. **Fix proposed** (twistdlite/basic.py belongs to the network "
    "engineer, so not made here): a fast path at the top of `dataReceived` for the common case — nothing "
    "buffered, not re-entered, line mode, not paused, and the chunk is exactly one line "
    "(`end = data.find(delimiter)`; `0 <= end <= MAX_LENGTH and end + len(delimiter) == len(data)`) — "
    "that calls `lineReceived(data[:end])` under the re-entrancy flag and falls back to the general path "
    "for anything buffered meanwhile. Tried on a scratch copy: 0.71 µs per line, and in this benchmark "
    "1.00× the hand-written server's requests/s on asyncio (0.88× without) and 0.98× on uvloop; the "
    "69 tests of test_protocols_basic.py, test_protocol_basic.py and test_network_tcp.py pass with it."
)

FINDINGS: dict = {
    "startup.asyncio.vs-bare": _STARTUP,
    "startup.uvloop.vs-bare": _STARTUP,
    "startup.asyncio.vs-twistd": _STARTUP_VS_TWISTD,
    "startup.uvloop.vs-twistd": _STARTUP_VS_TWISTD,
    "memory.asyncio.vs-bare": _MEMORY,
    "memory.uvloop.vs-bare": _MEMORY,
    "memory.asyncio.vs-twistd": _MEMORY_VS_TWISTD,
    "memory.uvloop.vs-twistd": _MEMORY_VS_TWISTD,
    "daemon.vs-twistd": _DAEMON,
    "echo.uvloop.vs-twistd": _ECHO_VS_TWISTD,
    "echo.asyncio.vs-twistd": _ECHO_VS_TWISTD,
    "echo.asyncio.vs-bare": _ECHO_VS_BARE,
    "echo.uvloop.vs-bare": _ECHO_VS_BARE,
}

NOTES = """
- **Which Twisted.** The reference is the twistd the run finds (the machine table says which, and whether
  Twisted's `tls` extra is installed). The `bench` extra installs plain Twisted, the lighter and so
  stricter reference. Run against Twisted with its `tls` extra (/work/venv-tw, 2026-11-22, same
  machine, `--only lifecycle`): twistd start-up 272 ms, RSS 44.9 MiB, `-oy` daemon start 281 ms; there
  twistdlite's ratios were 0.43× (start-up, target 0.4×), 0.54× (memory, target 0.7×) and 0.49×
  (daemon start, target 0.5×).
- **How the subjects are run.** Every server is a separate process started from this run's Python
  environment (`twistdlite` is its console script), on a port chosen just before; the bare script and
  the load generator use the same interpreter. `PYTHONDONTWRITEBYTECODE` is dropped for the spawned
  processes and round 0 of each start-up measurement is a warm-up, so every subject starts from `.pyc`
  files as an installed package would.
- **Stop (report only).** After removing its pidfile, twistdlite's daemon spends ~20 ms in interpreter
  finalization (strace shows no system call between the pidfile's `unlink` and `exit_group`); twistd
  re-raises SIGTERM on itself and dies at once. Proposed to the lead: end the daemon with `os._exit`
  once logging is flushed and closed (skipping interpreter teardown), or re-raise the signal as twistd
  does — either changes whether `atexit` handlers of the application run, so it is a design choice.
"""
