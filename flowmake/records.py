"""`NamedTuple` and `TYPE_CHECKING` without importing `typing` at run time.

For the modules of the no-op fast path, `--version` and the shell's Tab,
where importing typing and pathlib would cost 8-9 ms of 18-110 (a no-op at
10,000 tasks: 107 ms with this module, 115 ms without; benchmarks/README.md,
"Typing on the no-op path"). Those modules import these two names from
here, and their other typing names under `if TYPE_CHECKING:`; every other
module uses typing as usual (tests/test_architecture.py holds both). Type checkers see
`typing.NamedTuple` itself; at run time a class body becomes a
`collections.namedtuple` with the same fields, defaults, methods and
docstring, which is all typing.NamedTuple builds, minus the run-time
annotations nothing here reads.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # type checkers take any `if TYPE_CHECKING:` as true

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # What a class statement puts in its namespace besides the body's own names.
    _CLASS_KEYS = frozenset({"__module__", "__qualname__", "__annotations__", "__annotate__", "__annotate_func__",
                             "__annotations_cache__", "__firstlineno__", "__static_attributes__", "__orig_bases__"})

    class _NamedTupleMeta(type):
        def __new__(mcls, name, bases, namespace):
            if not bases:  # NamedTuple itself
                return super().__new__(mcls, name, bases, namespace)
            # Every module here has `from __future__ import annotations`, so the
            # body's annotations are a plain dict of strings, in field order.
            fields = tuple(namespace.get("__annotations__", ()))
            defaults = [namespace[f] for f in fields if f in namespace]
            cls = namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            for key, value in namespace.items():
                if key not in _CLASS_KEYS and key not in fields:
                    setattr(cls, key, value)
            cls.__qualname__ = namespace["__qualname__"]
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        """Base for `class Point(NamedTuple): x: int; y: int = 0`, as typing's."""
