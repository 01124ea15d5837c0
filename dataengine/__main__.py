"""The ``dataengine`` console script and ``python -m dataengine``.

Importing the commands takes a while (click, pydantic, YAML); Ctrl-C in that time would print a
traceback, so this module imports nothing heavy and catches it around the import. Once a command runs,
the root command itself turns Ctrl-C into the same one line (exit code 130).
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from dataengine.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted (Ctrl-C)\n")
        sys.exit(130)  # 128 + SIGINT, as dataengine.cli.INTERRUPTED_EXIT
    main(prog_name="dataengine")


if __name__ == "__main__":
    run()
