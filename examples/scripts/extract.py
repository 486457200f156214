#!/usr/bin/env python3
"""Extract: copy raw CSV exports into the build area in one canonical form.

    python3 scripts/extract.py RAW.csv... --out BUILD.csv...

Each input is copied to the output at the same position. The copy is UTF-8
without a byte-order mark, has LF line endings, and every header and cell is
stripped of surrounding whitespace. Nothing else changes, so a raw edit that
only adds stray spaces gives a byte-identical extract and nothing downstream
reruns (flowmake's early cutoff).
"""

import argparse
import csv
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="raw CSV files")
    parser.add_argument("--out", nargs="+", required=True, help="one output per input")
    args = parser.parse_args()
    if len(args.inputs) != len(args.out):
        sys.exit("extract: %d inputs but %d outputs" % (len(args.inputs), len(args.out)))
    for src, dst in zip(args.inputs, args.out):
        if os.path.basename(src) != os.path.basename(dst):
            sys.exit("extract: %s and %s do not pair up" % (src, dst))
        # utf-8-sig drops a BOM if there is one; newline="" lets csv handle CRLF.
        with open(src, encoding="utf-8-sig", newline="") as f:
            rows = [[cell.strip() for cell in row] for row in csv.reader(f) if row]
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        with open(dst, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        print("extract: %s -> %s (%d rows)" % (src, dst, len(rows) - 1))


if __name__ == "__main__":
    main()
