"""Tasks on a Dask distributed cluster (`--executor dask`, docs/scaling.md).

`executor` is the client side (the coordinator's executor: futures,
events, the cluster's health), `remote` what runs inside each worker,
`watchdog` the per-worker process that ends a dead worker's commands,
`cluster` connecting and checking the workers. Imported only when a run
asks for Dask: `distributed` is an optional extra (`flowmake[dask]`).
"""
