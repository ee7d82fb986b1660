"""`--state`: what a node shares with the others (presence, counts, cache, limits, usage)."""
