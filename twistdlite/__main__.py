"""``python -m twistdlite``: the same as the ``twistdlite`` command."""

if __name__ == "__main__":
    import gc

    gc.disable()  # as the console script does (twistdlite.launch.console): back on when the services start
    from twistdlite.launch.cli import main

    main(prog_name="twistdlite")
