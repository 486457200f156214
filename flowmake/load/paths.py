"""Project-relative paths: what a Flowfile may name, and what globs match.

Paths in a Flowfile are relative to the project root, written with '/',
and may not leave the root or enter flowmake's own state directory;
`clean_path` normalizes them or says what is wrong. Input globs (`*`, `?`,
`[..]` within one directory, `**` across any) are compiled to regexes once,
and `Disk` matches them against the project tree, stat'ing and listing each
directory at most once per load, so that ten thousand tasks globbing the
same directories cost one walk. Path lists keep declaration order, the
first of any repeat kept (`unique`, `merge`).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import stat
import time
from pathlib import Path

from ..layout import STATE_DIR
from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

_GLOB_CHARS_RE = re.compile(r"[*?\[]")
_DRIVE_RE = re.compile(r"[A-Za-z]:")


class PathError(Exception):
    """What is wrong with a path, worded to follow it ("... is absolute")."""


@functools.lru_cache(maxsize=1 << 18)
def clean_path(raw: str) -> str:
    """The normalized project-relative path, or PathError saying what is wrong."""
    if not raw.strip():
        raise PathError("is empty")
    if "\\" in raw:
        raise PathError("uses '\\'; write paths with '/'")
    if raw.startswith("/") or _DRIVE_RE.match(raw):
        raise PathError("is absolute")
    if raw.startswith("~"):
        raise PathError("starts with '~', which is not expanded")
    norm = posixpath.normpath(raw)
    if norm == ".." or norm.startswith("../"):
        raise PathError("escapes the project root")
    if norm == ".":
        raise PathError("is the project root itself")
    if norm == STATE_DIR or norm.startswith(STATE_DIR + "/"):
        raise PathError(f"is inside {STATE_DIR}/, which belongs to flowmake")
    return norm + "/" if raw.endswith("/") else norm


def is_glob(path: str) -> bool:
    return _GLOB_CHARS_RE.search(path) is not None


@functools.lru_cache(maxsize=4096)
def glob_to_regex(pattern: str) -> "re.Pattern[str]":
    """Compile a path glob: `*`, `?` and `[..]` stay within one directory, `**` spans any."""
    out: List[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            at_segment_start = i == 0 or pattern[i - 1] == "/"
            if at_segment_start and pattern.startswith("/", i + 2):
                out.append("(?:.*/)?")  # `a/**/b` also matches `a/b`
                i += 3
            else:
                out.append(".*")
                i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and _class_end(pattern, i) > 0:
            end = _class_end(pattern, i)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^/" + body[1:] + "]" if body[0] in "!^" else "(?!/)[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_end(pattern: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`, or -1 (then `[` is literal)."""
    j = start + 1
    if j < len(pattern) and pattern[j] in "!^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1  # a leading `]` is a member, as in fnmatch
    return pattern.find("]", j)


def literal_dir(pattern: str) -> str:
    """The directory part before the first glob character: where matches can be."""
    found = _GLOB_CHARS_RE.search(pattern)
    head = pattern[: found.start()] if found else pattern
    return head[: head.rfind("/") + 1]


if TYPE_CHECKING:
    # Directory (project-relative, "" for the root) -> {path: kind} of the checked paths in it.
    KindsByDir = Dict[str, Dict[str, Optional[str]]]
    # Directory -> (inode, mtime_ns, ctime_ns) when its entries were last seen as recorded.
    DirStamps = Dict[str, Tuple[int, int, int]]


def kinds_by_dir(kinds: Dict[str, Optional[str]]) -> KindsByDir:
    out: KindsByDir = {}
    for rel, found in kinds.items():
        out.setdefault(posixpath.dirname(rel), {})[rel] = found
    return out


def _kind_at(root_fd: Optional[int], path: str) -> Optional[str]:
    """ "dir", "file" or None (missing) for `path`, relative to `root_fd` if given."""
    try:
        return "dir" if stat.S_ISDIR(os.stat(path, dir_fd=root_fd).st_mode) else "file"
    except (OSError, ValueError):
        return None


class Disk:
    """The project tree as the loader sees it: stats, listings and glob matches, each done once."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._kinds: Dict[str, Optional[str]] = {}
        self._listings: Dict[Tuple[str, bool], Tuple[List[str], List[str]]] = {}
        self._globs: Dict[str, Tuple[str, ...]] = {}

    def kind(self, rel: str) -> Optional[str]:
        """ "dir", "file" or None (missing) for a project-relative path."""
        if rel not in self._kinds:
            self._kinds[rel] = _kind_at(None, os.path.join(self.root, rel))
        return self._kinds[rel]

    def observations(self) -> Tuple[Dict[str, Optional[str]], Dict[str, Tuple[str, ...]]]:
        """Every fact about the disk that loading depended on: path kinds and glob matches."""
        return dict(self._kinds), dict(self._globs)

    def stamps(self, grouped: KindsByDir, *, racy_window_ns: int) -> DirStamps:
        """The directories whose inode, mtime and ctime can vouch for the kinds of the paths in them.

        A path changes kind (appears, goes, becomes a directory) only by an
        entry of its directory changing, which moves that directory's mtime
        and ctime; so while the directory's inode and both times hold, its
        paths need no stat. (The mtime alone can be put back by utime; the
        ctime cannot.)
        Not for a directory modified within `racy_window_ns` (a change in the
        same timestamp tick would not show), nor one where a checked path is a
        symlink (its target can go without its directory noticing).
        """
        now = time.time_ns()
        out: DirStamps = {}
        for directory, in_dir in grouped.items():
            try:
                st = os.stat(os.path.join(self.root, directory))
            except OSError:
                continue
            if now - st.st_mtime_ns <= racy_window_ns:
                continue
            if any(os.path.islink(os.path.join(self.root, rel)) for rel in in_dir):
                continue
            out[directory] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        return out

    def agrees_with(self, grouped: KindsByDir, stamps: DirStamps, globs: Dict[str, Tuple[str, ...]]) -> bool:
        """Whether the disk still gives the same answers (so a cached load still holds)."""
        return self._kinds_agree(grouped, stamps) and all(
            self.glob(pattern) == tuple(hit) for pattern, hit in globs.items())

    def _kinds_agree(self, grouped: KindsByDir, stamps: DirStamps) -> bool:
        # One stat per unchanged directory rather than one per path: a cached
        # load of 10,000 tasks checks 10,000 sources, most often in a few directories.
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return False
        try:
            for directory, in_dir in grouped.items():
                stamp = stamps.get(directory)
                if stamp is not None:
                    try:
                        st = os.stat(directory or ".", dir_fd=root_fd)
                        if (st.st_ino, st.st_mtime_ns, st.st_ctime_ns) == tuple(stamp):
                            continue
                    except OSError:
                        pass
                for rel, expected in in_dir.items():
                    if _kind_at(root_fd, rel) != expected:
                        return False
        finally:
            os.close(root_fd)
        return True

    @property
    def globbed(self) -> bool:
        """Whether any glob was matched against the disk (the file set may then change)."""
        return bool(self._globs)

    def glob(self, pattern: str) -> Tuple[str, ...]:
        """Existing files matching `pattern` (never under .git/ or .flowmake/), sorted."""
        hit = self._globs.get(pattern)
        if hit is None:
            regex = glob_to_regex(pattern)
            base = literal_dir(pattern)
            # Without `**` a match lies a fixed number of directories below base,
            # so the walk stops there; with `**` it does not follow directory
            # symlinks, which could loop.
            depth = None if "**" in pattern else pattern.count("/") - base.count("/")
            hit = tuple(sorted(p for p in self._walk(base, depth) if regex.fullmatch(p)))
            self._globs[pattern] = hit
        return hit

    def _walk(self, base: str, depth: Optional[int]) -> Iterator[str]:
        files, dirs = self._list(base, follow=depth is not None)
        yield from files
        if depth is None or depth > 0:
            for sub in dirs:
                yield from self._walk(sub, None if depth is None else depth - 1)

    def _list(self, base: str, *, follow: bool) -> Tuple[List[str], List[str]]:
        key = (base, follow)
        hit = self._listings.get(key)
        if hit is None:
            files: List[str] = []
            dirs: List[str] = []
            try:
                with os.scandir(os.path.join(self.root, base)) as entries:
                    for entry in entries:
                        if entry.name == ".git" or (not base and entry.name == STATE_DIR):
                            continue
                        try:
                            if entry.is_dir(follow_symlinks=follow):
                                dirs.append(f"{base}{entry.name}/")
                            elif entry.is_file():
                                files.append(base + entry.name)
                        except OSError:
                            continue
            except OSError:  # missing or unreadable directory: nothing matches there
                pass
            hit = self._listings[key] = (files, dirs)
        return hit


def unique(paths: Sequence[str]) -> Tuple[str, ...]:
    """Declaration order, the first of any duplicate kept."""
    return tuple(paths) if len(paths) < 2 else tuple(dict.fromkeys(paths))


def merge(groups: Iterable[Sequence[str]]) -> Tuple[str, ...]:
    """All groups' paths in declaration order, the first of any duplicate kept."""
    merged: List[str] = []
    for paths in groups:
        merged.extend(paths)
    return unique(merged)
