"""`flowmake daemon`: an opt-in resident watcher that answers the no-op `flowmake run` (docs/daemon.md).

`client` is what the fast path asks through the socket (standard library
only: imported once the socket file exists); `server` the resident loop,
`proof` what it verified, `watches` its inotify watches, `answer` the no-op
run made on the client's streams, `control` `daemon start|stop|status`.
"""
