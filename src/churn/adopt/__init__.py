"""`churn adopt` (`make adopt`): replace the example with a table someone brings (docs/adopt.md).

`profile` reads the table and decides each column; `draft` writes the domain
room's files from that; `baseline` measures the default model to set the
gate; `apply` checks the whole plan, then swaps it in.
"""
