"""``python -m failover.cli``: the same as the ``failover`` command."""

from failover.cli import entry

entry()
