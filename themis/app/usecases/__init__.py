"""Use cases over a store: run, resume, replay, report, plan, diff and inspect runs."""
