"""`flowmake report`: a run's evidence as one page, drawn from the state.

Unlike `flowmake.report` (the live reporters, which see only the events of
the run in progress), this package reads what the state recorded after the
fact: the run record, every task attempt, the audit chain and the lineage of
the outputs. `collect` turns that into one plain JSON-able document (the
`--format json` output, documented in docs/json.md); `layout` places the
graph and the timeline (pure geometry); `page` and `markdown` render the
document. Nothing here writes to the state or runs a task.
"""
