"""The one shape every report shares, so that the CLI, scripts and tests read them alike.

``ok`` is the verdict, ``exit_code`` what the CLI exits with for it (0 success, 1 a report with gaps), ``to_json``
the whole report as plain data (what ``--json`` prints).  Rendering for people is the front's job
(``bridge/report.py``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Report(Protocol):
    """A result of ``check``, ``convert``, ``verify``, ``inspect``, ``unused`` or a restore comparison."""

    @property
    def ok(self) -> bool: ...

    @property
    def exit_code(self) -> int: ...

    def to_json(self) -> dict[str, Any]: ...
