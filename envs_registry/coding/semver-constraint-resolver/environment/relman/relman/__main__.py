"""usage: python3 -m relman pick [--pre] CONSTRAINT FILE

FILE lists one available version per line. Prints the highest matching version."""
import sys

from .versions import pick


def main(argv):
    args = list(argv)
    allow_pre = "--pre" in args
    if allow_pre:
        args.remove("--pre")
    if len(args) != 3 or args[0] != "pick":
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[2]) as fh:
        available = [line.strip() for line in fh if line.strip()]
    best = pick(available, args[1], allow_pre)
    if best is None:
        print("no matching version", file=sys.stderr)
        return 1
    print(best)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
