"""`flowmake report`: a run's evidence as one page, drawn from the state.

Unlike `flowmake.report` (the live reporters, which see only the events of
the run in progress), this package reads what the state recorded after the
fact: the run record, every task attempt, the audit chain and the lineage of
the outputs. `collect` turns that into one plain JSON-able document (the
`--format json` output, documented in docs/json.md), with the outputs'
lineage as a flat table of files (`lineage`); `layout` places the graph and
the timeline (pure geometry); `page` renders the document as HTML (with
`drawings`, `tasks` and `markup`), `markdown` as a CI summary. Nothing here
writes to the state or runs a task.
"""
