"""The Python API for research code: experiments, stored runs' views, plans and config diffs."""
