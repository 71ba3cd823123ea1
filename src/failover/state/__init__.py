"""Run state: the events a journal records and what a run is, replayed from them."""
