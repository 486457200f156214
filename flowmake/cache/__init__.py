"""The shared output cache: build once, restore anywhere (docs/cache.md).

A task's outputs are kept under its key (the task's fingerprint and its
declared outputs: key.py) in a cache that several projects, clones and CI
jobs share: a directory or any fsspec URL (backends.py). Outputs are
content-addressed blobs, deduplicated across tasks and projects, plus one
small entry per key (entry.py), written blobs first and entry last so that
no reader ever finds an entry whose blobs are not whole. `session` is what a
run holds (look up, restore, store, with timeouts: a slow or unreachable cache
is a warning, never a hang); `maintenance` is `flowmake cache stats|gc`.

On the store's floor: it reads and writes files and knows nothing of the
engine, which hands it a fingerprint and gets back verified files.
"""
