"""The commands, each over the options that shape a plan (:class:`~bridge.commands.plan_request.PlanRequest`).

``inspect`` (what a checkpoint holds), ``check`` (the plan), ``convert`` (the plan executed) and ``verify`` (the
result proven).  Each module also keeps the keyword function of the Python API (``bridge.check(src, to=...)``), which
builds the request; the CLI builds it once from its shared option group.  Importing this package loads nothing.
"""
