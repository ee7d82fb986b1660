"""The asyncio shell around the protocol core: the only place with sockets, tasks and timers."""
