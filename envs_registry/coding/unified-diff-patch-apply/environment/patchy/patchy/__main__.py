"""usage: python3 -m patchy [-p N] [-d DIR] [--dry-run] PATCHFILE|-"""
import argparse
import sys

from .core import PatchError, apply_patch


def main(argv=None):
    ap = argparse.ArgumentParser(prog="patchy", description="apply a unified diff")
    ap.add_argument("-p", dest="strip", type=int, default=0, help="strip N leading path components")
    ap.add_argument("-d", dest="root", default=".", help="directory to patch (default: current directory)")
    ap.add_argument("--dry-run", action="store_true", help="check that the patch applies, change nothing")
    ap.add_argument("patchfile")
    args = ap.parse_args(argv)
    text = sys.stdin.read() if args.patchfile == "-" else open(args.patchfile, encoding="utf-8").read()
    try:
        done = apply_patch(text, root=args.root, strip=args.strip, dry_run=args.dry_run)
    except (PatchError, OSError) as exc:
        print(f"patchy: error: {exc}", file=sys.stderr)
        return 1
    for path in done:
        print(("checking file " if args.dry_run else "patching file ") + path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
