"""The experiment stage: train routers on outcome tables, evaluate them, render reports.

``run`` trains and evaluates, ``report`` and ``conclusion`` only render what ``run``
computed, ``sweep`` repeats the experiment over many model pairs, ``commands`` holds the
``evaluate``/``reproduce``/``sweep`` CLI commands and ``rundir`` the output-folder rules.
"""
