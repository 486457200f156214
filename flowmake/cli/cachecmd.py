"""`flowmake cache stats|gc`, and which cache a command uses: --cache, else FLOWMAKE_CACHE, else [flow] cache."""

from __future__ import annotations

import json
import os

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Tuple

from ..errors import EXIT_OK, FlowError, UsageError

if TYPE_CHECKING:  # names for type checkers only
    from ..model import Flowfile

NO_CACHE_HINT = "name one with --cache DIR|URL, FLOWMAKE_CACHE, or [flow] cache = \"...\" in the Flowfile (docs/cache.md)"


def cache_url(option: Optional[str], *, flow_cache: Optional[str], root: Optional[Path]) -> Optional[Tuple[str, str]]:
    """(URL, the directory a relative path is taken from), or None when no cache is named.

    A relative directory on the command line or in FLOWMAKE_CACHE is taken
    from the current directory; one in the Flowfile, from the project root.
    """
    if option:
        return option, os.getcwd()
    env = os.environ.get("FLOWMAKE_CACHE")
    if env:
        return env, os.getcwd()
    if flow_cache and root is not None:
        return flow_cache, str(root)
    return None


def open_cache(flowfile: Flowfile, option: Optional[str], mode: str, *, warn: Callable[[str], None]):
    """A run's shared cache (engine/sharedcache.py), when one is named: --cache, FLOWMAKE_CACHE, [flow] cache."""
    found = cache_url(option, flow_cache=flowfile.cache, root=flowfile.root)
    if found is None:
        return None
    from ..cache.session import session_for
    from ..engine.sharedcache import SharedCache

    url, base = found
    session = session_for(url, base=base, mode=mode, timeout=cache_timeout(), warn=warn)
    return SharedCache(session, root=str(flowfile.root), project=flowfile.name)


def cache_timeout() -> Optional[float]:
    raw = os.environ.get("FLOWMAKE_CACHE_TIMEOUT")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise UsageError(f"FLOWMAKE_CACHE_TIMEOUT={raw!r} is not a number of seconds above 0",
                         hint="e.g. FLOWMAKE_CACHE_TIMEOUT=10")
    return value


def _backend(option: Optional[str], file: Optional[Path], directory: Optional[Path]):
    from ..cache.backends import open_backend
    from ..cache.session import DEFAULT_TIMEOUT

    flow_cache, root = None, None
    if not option and not os.environ.get("FLOWMAKE_CACHE"):
        from .commands import Project

        try:
            project = Project.load(file=file, directory=directory)
        except FlowError as exc:
            raise UsageError(f"no cache named, and no Flowfile to read [flow] cache from ({exc.message})",
                             hint=NO_CACHE_HINT) from None
        flow_cache, root = project.flowfile.cache, project.root
    elif directory is not None:
        from .commands import _enter

        _enter(directory)
    found = cache_url(option, flow_cache=flow_cache, root=root)
    if found is None:
        raise UsageError("no cache named", hint=NO_CACHE_HINT)
    url, base = found
    return open_backend(url, base=base, timeout=cache_timeout() or DEFAULT_TIMEOUT)


def cache_stats(option: Optional[str], *, file: Optional[Path], directory: Optional[Path], as_json: bool) -> int:
    from ..cache.maintenance import human_size, stats

    backend = _backend(option, file, directory)
    try:
        st = stats(backend)
    except Exception as exc:  # the cache itself cannot be read: say so, as a run would
        raise FlowError(f"cache {backend.url}: {type(exc).__name__}: {exc}") from None
    if as_json:
        print(json.dumps(st, indent=2))
        return EXIT_OK
    print(f"cache {st['url']}")
    print(f"  entries  {st['entries']}")
    print(f"  blobs    {st['blobs']} ({human_size(st['bytes'])})")
    if st["lookups"]:
        print(f"  hit rate {st['hit_rate']:.0%}: {st['hits']} restored of {st['lookups']} looked up, "
              f"over the last {st['recent_runs']} runs that used it")
    else:
        print("  hit rate (no run has looked anything up yet)")
    return EXIT_OK


def cache_gc(option: Optional[str], *, file: Optional[Path], directory: Optional[Path], max_size: Optional[str],
             older_than: Optional[str], as_json: bool) -> int:
    from ..cache.maintenance import gc, human_size, parse_age, parse_size

    if max_size is None and older_than is None:
        raise UsageError("cache gc needs --max-size or --older-than",
                         hint="e.g. flowmake cache gc --max-size 10GB, or --older-than 30d")
    size = parse_size(max_size) if max_size is not None else None
    age = parse_age(older_than) if older_than is not None else None
    backend = _backend(option, file, directory)
    try:
        result = gc(backend, max_size=size, older_than=age)
    except Exception as exc:
        raise FlowError(f"cache {backend.url}: {type(exc).__name__}: {exc}") from None
    if as_json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(f"removed {result['removed_entries']} entries and {result['removed_blobs']} blobs "
          f"({human_size(result['freed_bytes'])}); left {result['entries']} entries, {result['blobs']} blobs, "
          f"{human_size(result['bytes'])}")
    return EXIT_OK
