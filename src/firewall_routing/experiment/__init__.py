"""The experiment stage: train routers on outcome tables, evaluate them, render reports.

``config`` defines a ``reproduce`` run, ``run`` trains and scores routers, ``evaluation``
is the one evaluation path (``evaluate`` and ``reproduce``), ``results`` holds the typed
results and their JSON form, ``report`` and ``conclusion`` only render or compare what
``evaluation`` computed, ``sweep`` repeats the experiment over many model pairs,
``commands``/``sweep_commands`` hold the CLI commands and ``rundir`` the output-folder rules.
"""
