"""The Python API for research code: experiments, stored runs' views, plans and config diffs.

`experiment` holds `Experiment` and the functions over stored runs, `views` the inspection
views, `lifecycle` planning and config diffs, `reporter` the report in every format. Users
import them from `themis`, which names each one's home; this package imports none of them, so a
command that needs one module (e.g. a view reading the store) does not load the others (the
interpreter, trio, jinja2).
"""
