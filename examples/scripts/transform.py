#!/usr/bin/env python3
"""Transform: map cleaned DM and VS data to SDTM-like domains.

    python3 scripts/transform.py --study S01 --dm clean/dm.csv --vs clean/vs.csv \
        --out-dm sdtm/dm.csv --out-vs sdtm/vs.csv

DM: STUDYID, DOMAIN, USUBJID, SUBJID, SITEID, SEX, AGE, AGEU, RFSTDTC, one row
per input row, sorted by USUBJID. VS: STUDYID, DOMAIN, USUBJID, VSSEQ,
VSTESTCD, VSTEST, VSORRES, VSORRESU, VSSTRESN, VSDTC, sorted by subject, date
and test, with VSSEQ numbering each subject's records from 1. VSSTRESN is the
numeric result, empty when VSORRES is not a number.
"""

import argparse
import csv
import math
import os

DM_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "SUBJID", "SITEID",
              "SEX", "AGE", "AGEU", "RFSTDTC"]
VS_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD", "VSTEST",
              "VSORRES", "VSORRESU", "VSSTRESN", "VSDTC"]
# test code -> (test name, original unit)
VS_TESTS = {
    "SYSBP": ("Systolic Blood Pressure", "mmHg"),
    "DIABP": ("Diastolic Blood Pressure", "mmHg"),
    "PULSE": ("Pulse Rate", "beats/min"),
}


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path, columns, rows):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def numeric(text):
    """'120' -> '120', '98.60' -> '98.6', not a number -> ''."""
    try:
        value = float(text)
    except ValueError:
        return ""
    if not math.isfinite(value):
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


def transform_dm(study, rows):
    out = []
    for row in sorted(rows, key=lambda r: r["USUBJID"]):
        usubjid = row["USUBJID"]
        prefix = study + "-"
        out.append({
            "STUDYID": study,
            "DOMAIN": "DM",
            "USUBJID": usubjid,
            "SUBJID": usubjid[len(prefix):] if usubjid.startswith(prefix) else usubjid,
            "SITEID": row["SITEID"],
            "SEX": row["SEX"],
            "AGE": row["AGE"],
            "AGEU": "YEARS" if row["AGE"] else "",
            "RFSTDTC": row["RFSTDTC"],
        })
    return out


def transform_vs(study, rows):
    out, seq = [], {}
    for row in sorted(rows, key=lambda r: (r["USUBJID"], r["VSDTC"], r["VSTESTCD"])):
        usubjid = row["USUBJID"]
        seq[usubjid] = seq.get(usubjid, 0) + 1
        test, unit = VS_TESTS.get(row["VSTESTCD"], ("", ""))
        out.append({
            "STUDYID": study,
            "DOMAIN": "VS",
            "USUBJID": usubjid,
            "VSSEQ": seq[usubjid],
            "VSTESTCD": row["VSTESTCD"],
            "VSTEST": test,
            "VSORRES": row["VSORRES"],
            "VSORRESU": unit if row["VSORRES"] else "",
            "VSSTRESN": numeric(row["VSORRES"]),
            "VSDTC": row["VSDTC"],
        })
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--dm", required=True)
    parser.add_argument("--vs", required=True)
    parser.add_argument("--out-dm", required=True)
    parser.add_argument("--out-vs", required=True)
    args = parser.parse_args()
    dm = transform_dm(args.study, read_csv(args.dm))
    vs = transform_vs(args.study, read_csv(args.vs))
    write_csv(args.out_dm, DM_COLUMNS, dm)
    write_csv(args.out_vs, VS_COLUMNS, vs)
    print("transform: %s DM %d rows -> %s, VS %d rows -> %s"
          % (args.study, len(dm), args.out_dm, len(vs), args.out_vs))


if __name__ == "__main__":
    main()
