"""flowmake's own deletions, and the one rule every one of them follows.

A declared output passes every lexical check (relative, no `..`) and can
still lead out of the project through a symbolic link on its way: with
`sub/up` a link to a folder elsewhere (a cloned repository can carry one),
deleting `sub/up/victim.txt` deletes a file that is not the project's. So
whatever flowmake deletes is named relative to a boundary directory (the
project root for outputs; for its own files the directory it keeps them
in, which may itself be a link to another disk), and is deleted only when
the directories holding it resolve inside that boundary. A link that is
itself the path to delete is removed as a link, which never touches what it
points to; a tree is removed by shutil.rmtree, which removes the links
inside it without following them.

What a task does itself (reading inputs through such a link, writing its
outputs through one) is its own doing and stays allowed.
"""

from __future__ import annotations

import os
import stat
from typing import Optional, Tuple


def way_out(base: str, rel: str, *, itself: bool = False) -> Optional[Tuple[str, str]]:
    """(the link, where it leads) through which the way from `base` to `rel` leaves `base`; None if it stays in.

    Only the directories holding `rel` count, which is what deleting it
    reaches through; with `itself`, `rel` too (where it resolves). The link
    is named relative to base (`rel` itself when it leaves by `..`).
    """
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not itself:
        parts = parts[:-1]
    if ".." not in parts and not os.path.isabs(rel):
        # The usual case costs an lstat per directory: no link, no way out.
        here = base
        for part in parts:
            here = os.path.join(here, part)
            try:
                mode = os.lstat(here).st_mode
            except OSError:  # missing (or not a directory): nothing beyond it to pass through
                return None
            if stat.S_ISLNK(mode):
                break
        else:
            return None
    root = os.path.realpath(base)
    if _inside(os.path.realpath(os.path.join(base, *parts)), root):
        return None  # a link on the way, but one that stays in (or comes back)
    for n in range(1, len(parts) + 1):
        step = os.path.join(base, *parts[:n])
        target = os.path.realpath(step)
        if os.path.islink(step) and not _inside(target, root):
            return "/".join(parts[:n]), target
    return rel, os.path.realpath(os.path.join(base, *parts))


def remove(base: str, rel: str, *, tree: bool = False, boundary: str = "the project") -> Optional[str]:
    """Delete base/rel (with `tree`, a directory and all in it) unless that reaches outside `base` through a link.

    None when it is gone (or was never there); else, deleting nothing, the
    warning to give, naming the link and where it points. OSError for
    anything else that stops the deletion.
    """
    leak = way_out(base, rel)
    if leak is not None:
        return refusal(rel, leak, boundary=boundary)
    path = os.path.join(base, rel.rstrip("/"))
    try:
        if tree and stat.S_ISDIR(os.lstat(path).st_mode):
            import shutil  # trees are rare (clean, prune): not worth its 4 ms on every run

            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    return None


def refusal(rel: str, leak: Tuple[str, str], *, boundary: str = "the project") -> str:
    link, target = leak
    if link == rel:
        return f"not deleting {rel}: it leads outside {boundary}, to {target}"
    return f"not deleting {rel}: {link} is a symbolic link to {target}, outside {boundary}"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
