#!/usr/bin/env python3
"""Validate every *.sav file in a directory (non-recursive). Exit status 1 if any fails."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from savefmt import SaveError, load  # noqa: E402


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "/app/saves"
    bad = 0
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.endswith(".sav") or not os.path.isfile(path):
            continue
        try:
            info = load(path)
            print(f"OK   {name} (v{info['version']}, slot {info['slot']}, player {info['values']['player']})")
        except SaveError as exc:
            bad += 1
            print(f"BAD  {name}: {exc}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
