"""Checks that read a signal over HTTP rather than through a cloud's SDK: a Prometheus query
(``prometheus.query``) and an HTTP probe (``http.probe``). They run at any site, need no cloud
placement and no permission, and import no cloud SDK: only urllib3 (:mod:`.fetch`)."""
