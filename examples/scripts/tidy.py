#!/usr/bin/env python3
"""Clean: fix the known quirks of extracted DM and VS files.

    python3 scripts/tidy.py dm.csv vs.csv --out tidy/dm.csv tidy/vs.csv

Files are recognised by name (dm.csv, vs.csv) and written to the output with
the same name. For DM: sex codes become M/F/U, ages become whole numbers,
RFSTDTC becomes ISO 8601. For VS: VSDTC becomes ISO 8601. In both, exact
duplicate rows are dropped (the first one is kept). A value that cannot be
cleaned is left as it is, for validation to report.
"""

import argparse
import csv
import os
import sys

SEX = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "U": "U", "UNKNOWN": "U", "": "U"}
MONTHS = {m: i + 1 for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])}


def iso_date(text):
    """2024-03-05 or 05MAR2024 (SAS DATE9) -> 2024-03-05; anything else unchanged."""
    t = text.strip().upper()
    if len(t) == 9 and t[:2].isdigit() and t[2:5] in MONTHS and t[5:].isdigit():
        return "%s-%02d-%s" % (t[5:], MONTHS[t[2:5]], t[:2])
    return text


def whole_number(text):
    """'42', '42.0' -> '42'; '' stays ''; anything else unchanged."""
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else text


def clean_dm(row):
    row["SEX"] = SEX.get(row["SEX"].upper(), row["SEX"].upper())
    row["AGE"] = whole_number(row["AGE"])
    row["RFSTDTC"] = iso_date(row["RFSTDTC"])


def clean_vs(row):
    row["VSTESTCD"] = row["VSTESTCD"].upper()
    row["VSDTC"] = iso_date(row["VSDTC"])


CLEANERS = {"dm.csv": clean_dm, "vs.csv": clean_vs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="extracted dm.csv and/or vs.csv")
    parser.add_argument("--out", nargs="+", required=True, help="output files, same names")
    args = parser.parse_args()
    outputs = {os.path.basename(p): p for p in args.out}
    for src in args.inputs:
        name = os.path.basename(src)
        if name not in CLEANERS or name not in outputs:
            sys.exit("tidy: no cleaner or no output for %s" % src)
        with open(src, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        seen, kept = set(), []
        for row in rows:
            CLEANERS[name](row)
            key = tuple(row[k] for k in fields)
            if key not in seen:
                seen.add(key)
                kept.append(row)
        os.makedirs(os.path.dirname(outputs[name]) or ".", exist_ok=True)
        with open(outputs[name], "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
        print("tidy: %s -> %s (%d rows, %d duplicates dropped)"
              % (src, outputs[name], len(kept), len(rows) - len(kept)))


if __name__ == "__main__":
    main()
