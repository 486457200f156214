#!/usr/bin/env python3
"""Validate: check one study's SDTM-like DM and VS files before they ship.

    python3 scripts/validate.py --study S01 --dm sdtm/dm.csv --vs sdtm/vs.csv \
        --findings validation/S01.json

Prints every finding, writes them all to the --findings JSON file, and exits
1 if any finding is an error (warnings alone pass). Checks: required columns
present; USUBJID present and unique in DM; AGE a whole number in 0..120; SEX
one of M, F, U; dates in ISO 8601 (YYYY-MM-DD); every VS subject in DM; known
VS test codes; VSSEQ unique per subject; VSSTRESN numeric and plausible for
its test. A missing AGE or a missing VS result is a warning.
"""

import argparse
import csv
import json
import os
import re
import sys

DM_REQUIRED = ["STUDYID", "DOMAIN", "USUBJID", "SUBJID", "SITEID", "SEX", "AGE", "AGEU"]
VS_REQUIRED = ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD", "VSTEST",
               "VSORRES", "VSORRESU", "VSSTRESN", "VSDTC"]
PLAUSIBLE = {"SYSBP": (60, 250), "DIABP": (30, 150), "PULSE": (30, 220)}
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Findings:
    def __init__(self):
        self.items = []

    def add(self, level, check, path, line, usubjid, message):
        self.items.append({"level": level, "check": check, "file": path,
                           "line": line, "usubjid": usubjid, "message": message})
        where = "%s:%d" % (path, line) if line else path
        print("%-7s %s: %s [%s]" % (level.upper(), where, message, check))

    def count(self, level):
        return sum(1 for f in self.items if f["level"] == level)


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        # line 1 is the header, so the first record is on line 2
        return reader.fieldnames or [], [(n, row) for n, row in enumerate(reader, start=2)]


def missing_columns(found, path, columns, required):
    missing = [c for c in required if c not in columns]
    for column in missing:
        found.add("error", "required-column", path, 0, "", "column %s is missing" % column)
    return bool(missing)


def check_dm(found, path, rows):
    subjects = {}
    for line, row in rows:
        usubjid = row["USUBJID"]
        if not usubjid:
            found.add("error", "usubjid-missing", path, line, "", "USUBJID is empty")
        elif usubjid in subjects:
            found.add("error", "usubjid-unique", path, line, usubjid,
                      "USUBJID %s also on line %d" % (usubjid, subjects[usubjid]))
        else:
            subjects[usubjid] = line
        age = row["AGE"]
        if age == "":
            found.add("warning", "age-missing", path, line, usubjid, "AGE is missing")
        elif not (age.isascii() and age.isdigit()):
            found.add("error", "age-integer", path, line, usubjid,
                      "AGE %r is not a whole number" % age)
        elif not 0 <= int(age) <= 120:
            found.add("error", "age-range", path, line, usubjid,
                      "AGE %s is outside 0..120" % age)
        if row["SEX"] not in ("M", "F", "U"):
            found.add("error", "sex-code", path, line, usubjid,
                      "SEX %r is not one of M, F, U" % row["SEX"])
        date = row.get("RFSTDTC", "")
        if date and not ISO_DATE.match(date):
            found.add("error", "iso-date", path, line, usubjid,
                      "RFSTDTC %r is not an ISO 8601 date" % date)
    return set(subjects)


def check_vs(found, path, rows, subjects):
    seqs = set()
    for line, row in rows:
        usubjid, test = row["USUBJID"], row["VSTESTCD"]
        if usubjid not in subjects:
            found.add("error", "vs-subject-in-dm", path, line, usubjid,
                      "subject %s is not in DM" % usubjid)
        if (usubjid, row["VSSEQ"]) in seqs:
            found.add("error", "vsseq-unique", path, line, usubjid,
                      "VSSEQ %s repeats for this subject" % row["VSSEQ"])
        seqs.add((usubjid, row["VSSEQ"]))
        if test not in PLAUSIBLE:
            found.add("error", "vs-test-code", path, line, usubjid,
                      "VSTESTCD %r is not a known test" % test)
        if not ISO_DATE.match(row["VSDTC"]):
            found.add("error", "iso-date", path, line, usubjid,
                      "VSDTC %r is not an ISO 8601 date" % row["VSDTC"])
        if row["VSORRES"] == "":
            found.add("warning", "vs-result-missing", path, line, usubjid,
                      "%s result is missing" % test)
            continue
        try:
            value = float(row["VSSTRESN"])
        except ValueError:
            found.add("error", "vsstresn-numeric", path, line, usubjid,
                      "%s result %r is not numeric" % (test, row["VSORRES"]))
            continue
        low, high = PLAUSIBLE.get(test, (float("-inf"), float("inf")))
        if not low <= value <= high:
            found.add("error", "vsstresn-plausible", path, line, usubjid,
                      "%s %s is outside the plausible range %s..%s" % (test, row["VSSTRESN"], low, high))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--dm", required=True)
    parser.add_argument("--vs", required=True)
    parser.add_argument("--findings", required=True, help="JSON file to write")
    args = parser.parse_args()

    found = Findings()
    dm_columns, dm_rows = read_csv(args.dm)
    vs_columns, vs_rows = read_csv(args.vs)
    dm_ok = not missing_columns(found, args.dm, dm_columns, DM_REQUIRED)
    vs_ok = not missing_columns(found, args.vs, vs_columns, VS_REQUIRED)
    subjects = check_dm(found, args.dm, dm_rows) if dm_ok else set()
    if dm_ok and vs_ok:
        check_vs(found, args.vs, vs_rows, subjects)

    errors, warnings = found.count("error"), found.count("warning")
    report = {"study": args.study, "errors": errors, "warnings": warnings,
              "subjects": len(subjects), "vs_records": len(vs_rows),
              "findings": found.items}
    os.makedirs(os.path.dirname(args.findings) or ".", exist_ok=True)
    with open(args.findings, "w", encoding="utf-8", newline="\n") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    print("validate: %s: %d error(s), %d warning(s) -> %s"
          % (args.study, errors, warnings, args.findings))
    if errors:
        sys.stdout.flush()
        print("validate: %s FAILED: %d error-level finding(s); fix the raw data and rerun"
              % (args.study, errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
