"""``python -m bridge.cli`` is the ``bridge`` command."""

from bridge.cli import main

main()
