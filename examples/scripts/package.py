#!/usr/bin/env python3
"""Package: zip the deliverables with a manifest of their checksums.

    python3 scripts/package.py --zip dist/submission.zip --manifest dist/manifest.json \
        build/sdtm/S01/dm.csv ... dist/summary.md

Each file goes into the zip under its path minus the first directory
(build/sdtm/S01/dm.csv -> sdtm/S01/dm.csv, dist/summary.md -> summary.md),
together with manifest.json, which lists every file's path, size and sha256.
The same manifest is written next to the zip. Entries are sorted and carry a
fixed date, so the same files always give a byte-identical zip.
"""

import argparse
import hashlib
import json
import os
import sys
import zipfile

FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


def archive_name(path):
    parts = path.replace(os.sep, "/").split("/")
    return "/".join(parts[1:]) if len(parts) > 1 else parts[0]


def add(zf, name, data):
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, whatever the platform, for identical bytes
    info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
    zf.writestr(info, data, compresslevel=9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    contents = {}
    for path in args.files:
        name = archive_name(path)
        if name in contents or name == "manifest.json":
            sys.exit("package: two files would be stored as %s" % name)
        with open(path, "rb") as f:
            contents[name] = f.read()
    manifest = {
        "files": [{"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in sorted(contents.items())],
        "name": "study-pipeline submission",
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")

    for path in (args.zip, args.manifest):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with zipfile.ZipFile(args.zip, "w") as zf:
        for name in sorted(contents):
            add(zf, name, contents[name])
        add(zf, "manifest.json", manifest_bytes)
    with open(args.manifest, "wb") as f:
        f.write(manifest_bytes)
    print("package: %d files + manifest.json -> %s" % (len(contents), args.zip))


if __name__ == "__main__":
    main()
