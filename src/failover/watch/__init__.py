"""Watching for trouble: a runbook's triggers evaluated on a schedule (``failover watch``), what
each decides (:mod:`.state`), what the state store keeps of them (:mod:`.records`), who is told
(:mod:`.notify`), and the loop that ties them together (:mod:`.loop`)."""
