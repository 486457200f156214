#!/usr/bin/env python3
"""Summary: a Markdown summary of every study, for the submission package.

    python3 scripts/summary.py --out dist/summary.md --studies S01 S02 ... \
        --sdtm build/sdtm/S01/dm.csv build/sdtm/S01/vs.csv ... \
        --findings build/validation/S01.json ...

Per study: subjects by site and sex, age mean/min/max, the mean of each vital
sign, and the validation finding counts. Files are recognised by the STUDYID
and DOMAIN columns inside them (and "study" in the findings), not by their
names. With --studies, the summary must cover exactly those studies: a listed
study without DM or VS rows, or data of a study not listed, is an error. The
output depends only on the inputs: no dates, no host names.
"""

import argparse
import csv
import json
import os
import sys
from collections import defaultdict


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def fmt(value):
    return "%.1f" % value


def study_section(study, dm, vs, findings):
    lines = ["## %s" % study, ""]
    sexes = ["F", "M", "U"]
    by_site = defaultdict(lambda: dict.fromkeys(sexes, 0))
    for row in dm:
        by_site[row["SITEID"]][row["SEX"]] = by_site[row["SITEID"]].get(row["SEX"], 0) + 1
    lines += ["Subjects: %d" % len(dm), "",
              "| Site | F | M | U | Total |", "|---|---:|---:|---:|---:|"]
    for site in sorted(by_site):
        counts = by_site[site]
        lines.append("| %s | %s | %d |" % (
            site, " | ".join(str(counts[s]) for s in sexes), sum(counts.values())))
    ages = [int(r["AGE"]) for r in dm if r["AGE"]]
    missing = len(dm) - len(ages)
    lines.append("")
    if ages:
        lines.append("Age (years): n=%d, mean %s, min %d, max %d%s" % (
            len(ages), fmt(sum(ages) / len(ages)), min(ages), max(ages),
            ", %d missing" % missing if missing else ""))
    else:
        lines.append("Age (years): no values")

    lines += ["", "| Vital sign | Unit | n | Mean | Min | Max |",
              "|---|---|---:|---:|---:|---:|"]
    values, units = defaultdict(list), {}
    for row in vs:
        if row["VSSTRESN"]:
            values[(row["VSTESTCD"], row["VSTEST"])].append(float(row["VSSTRESN"]))
            units[row["VSTESTCD"]] = row["VSORRESU"]
    for (code, name), vals in sorted(values.items()):
        lines.append("| %s (%s) | %s | %d | %s | %s | %s |" % (
            name, code, units[code], len(vals), fmt(sum(vals) / len(vals)),
            fmt(min(vals)), fmt(max(vals))))

    lines.append("")
    if findings is None:
        lines.append("Validation: no findings file")
    else:
        lines.append("Validation: %d error(s), %d warning(s)"
                     % (findings["errors"], findings["warnings"]))
        for f in findings["findings"]:
            lines.append("- %s `%s` %s: %s" % (
                f["level"], f["check"], f["usubjid"] or "-", f["message"]))
    return lines + [""]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sdtm", nargs="+", required=True, help="DM and VS CSV files")
    parser.add_argument("--findings", nargs="*", default=[], help="validation JSON files")
    parser.add_argument("--studies", nargs="+", help="the studies the summary must cover")
    args = parser.parse_args()

    domains = defaultdict(lambda: {"DM": [], "VS": []})
    for path in args.sdtm:
        for row in read_csv(path):
            domains[row["STUDYID"]][row["DOMAIN"]].append(row)
    findings = {}
    for path in args.findings:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        findings[data["study"]] = data

    studies = sorted(domains)
    if args.studies:
        expected = sorted(set(args.studies))
        missing = [s for s in expected if not (domains[s]["DM"] and domains[s]["VS"])]
        extra = [s for s in studies if s not in expected]
        problems = (["no DM or VS data for " + ", ".join(missing)] if missing else []) + \
                   (["data for unlisted " + ", ".join(extra)] if extra else [])
        if problems:
            sys.exit("summary: expected studies %s: %s" % (", ".join(expected), "; ".join(problems)))
        studies = expected
    lines = ["# Study pipeline summary", "",
             "Studies: %s. Subjects: %d. Vital sign records: %d." % (
                 ", ".join(studies),
                 sum(len(d["DM"]) for d in domains.values()),
                 sum(len(d["VS"]) for d in domains.values())),
             ""]
    for study in studies:
        lines += study_section(study, domains[study]["DM"], domains[study]["VS"],
                               findings.get(study))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))
    print("summary: %d studies -> %s" % (len(studies), args.out))


if __name__ == "__main__":
    main()
