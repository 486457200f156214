#!/usr/bin/env python3
"""Write synthetic raw study exports, the kind a data team receives from an EDC.

For each study it writes RAW/<study>/dm.csv (demographics) and
RAW/<study>/vs.csv (vital signs). The data are made up from a seed, so the
same arguments always give byte-identical files, and deliberately messy the
way real exports are: a UTF-8 byte-order mark, CRLF line endings, padded
whitespace, mixed-case sex codes, a missing age, dates in two formats
(2024-03-05 and 05MAR2024), a repeated VS row and a missing VS result.

    python3 scripts/generate_raw.py --out raw            # the committed files
    python3 scripts/generate_raw.py --out raw --bad      # S02 fails validation
    python3 scripts/generate_raw.py --out raw --bad S03  # S03 fails instead
    python3 scripts/generate_raw.py --out raw --studies S04   # a new study

Any study id made of letters, digits, _, . and - works (the characters a
flowmake matrix value may hold); S01, S02 and S03 have fixed sites, any other
id gets one to three sites numbered after the digits in its id (S04: 401, ...).

--bad injects two errors into one study's dm.csv (an AGE of 250 and a second
record for an existing subject); every other file stays byte-identical.
"""

import argparse
import csv
import datetime
import os
import random
import re
import zlib

SITES = {"S01": ["101", "102"], "S02": ["201", "202", "203"], "S03": ["301"]}
STUDY_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
SEX_SPELLINGS = ["M", "F", "m", "f", "Male", "female", " F ", "M "]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN",
          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
# test code -> (typical value, spread)
VITALS = {"SYSBP": (125, 15), "DIABP": (80, 10), "PULSE": (72, 12)}


def messy_date(rng, day):
    """ISO 8601 or SAS DATE9 (05MAR2024), chosen at random."""
    if rng.random() < 0.5:
        return day.isoformat()
    return "%02d%s%d" % (day.day, MONTHS[day.month - 1], day.year)


def pad(rng, text):
    """Sometimes surround a value with stray spaces."""
    return " %s  " % text if rng.random() < 0.15 else text


def sites_of(study):
    """The study's site ids: fixed for S01..S03, else derived from the id alone."""
    if study in SITES:
        return SITES[study]
    # crc32, unlike hash(), is the same in every process: same id, same sites.
    crc = zlib.crc32(study.encode("utf-8"))
    number = str(int("".join(c for c in study if c.isdigit()) or crc % 90 + 10))
    return ["%s%02d" % (number, k + 1) for k in range(1 + crc % 3)]


def study_id(text):
    if not STUDY_ID.match(text):
        raise argparse.ArgumentTypeError(
            "%r: use letters, digits, _, . and - only (e.g. S04)" % text)
    return text


def make_study(study, seed):
    rng = random.Random("%s-%s" % (seed, study))
    dm, vs = [], []
    n_subjects = rng.randint(8, 12)
    missing_age = rng.randrange(n_subjects)
    sites = sites_of(study)
    for i in range(n_subjects):
        site = rng.choice(sites)
        usubjid = "%s-%s-%04d" % (study, site, i + 1)
        age = "" if i == missing_age else str(rng.randint(18, 80))
        start = datetime.date(2024, 1, 8) + datetime.timedelta(days=rng.randrange(90))
        dm.append([pad(rng, usubjid), site, rng.choice(SEX_SPELLINGS),
                   pad(rng, age), messy_date(rng, start)])
        for visit in range(2):
            day = start + datetime.timedelta(days=14 * visit)
            for test, (mean, spread) in VITALS.items():
                value = str(round(rng.gauss(mean, spread)))
                vs.append([usubjid, test, pad(rng, value), messy_date(rng, day)])
    vs[rng.randrange(len(vs))][2] = ""  # a measurement that was not done
    vs.insert(7, list(vs[6]))  # the export repeated a row
    return dm, vs


def make_bad(dm):
    """Two error-level problems that validation must catch."""
    dm[1][3] = "250"  # an impossible age
    dup = list(dm[0])  # a second, different record for an existing subject
    dup[3] = "61" if dup[3].strip() != "61" else "62"
    dm.append(dup)


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # The BOM and CRLF line endings mimic an export saved from a Windows tool.
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="raw", help="output directory (default: raw)")
    parser.add_argument("--studies", nargs="+", default=["S01", "S02", "S03"], type=study_id,
                        metavar="STUDY", help="studies to write (default: S01 S02 S03)")
    parser.add_argument("--seed", default="20240301")
    parser.add_argument("--bad", nargs="?", const="S02", metavar="STUDY",
                        help="inject invalid records into STUDY (default S02)")
    args = parser.parse_args()
    for study in args.studies:
        dm, vs = make_study(study, args.seed)
        if study == args.bad:
            make_bad(dm)
        write_csv(os.path.join(args.out, study, "dm.csv"),
                  ["USUBJID", "SITEID", "SEX", "AGE", "RFSTDTC"], dm)
        write_csv(os.path.join(args.out, study, "vs.csv"),
                  ["USUBJID", "VSTESTCD", "VSORRES", "VSDTC"], vs)
        print("wrote %s/%s/dm.csv (%d subjects), vs.csv (%d rows)%s"
              % (args.out, study, len(dm), len(vs),
                 "  [with injected errors]" if study == args.bad else ""))


if __name__ == "__main__":
    main()
