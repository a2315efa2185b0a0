"""``python -m twistdlite``: the same as the ``twistdlite`` command."""

if __name__ == "__main__":
    from twistdlite.launch.console import defer_collections

    defer_collections()  # as the console script does: back on when the services start
    from twistdlite.launch.cli import main

    main(prog_name="twistdlite")
