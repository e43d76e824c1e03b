"""`python -m storewire_local.fakes.serve NAME...`: the named fakes in a process of their own.

Prints one JSON line ``{name: url}`` once they listen, then serves until its stdin closes.
The emulator runs its fakes this way when asked (``Emulator(fakes_process=True)``, as the
reliability suite's load runs do), so their HTTP work does not share a GIL with moto and the
pollers. The environment gives their credentials, as for `start_fakes`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import start_fakes, stop_fakes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storewire_local.fakes.serve")
    parser.add_argument("names", nargs="+")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    urls = start_fakes(os.environ, args.host, names=args.names)
    print(json.dumps(urls), flush=True)
    try:
        sys.stdin.read()  # until the parent closes the pipe (or dies)
    finally:
        stop_fakes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
