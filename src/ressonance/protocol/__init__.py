"""The sans-I/O Pusher Channels core.

Rules kept by every module in this package:
1. No sockets, tasks, threads or clock reads: time comes in as a parameter.
2. Nothing from the rest of Ressonance is imported here.
3. Input is size-checked before it is parsed.
"""
