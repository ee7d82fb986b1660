"""Rate limiters: how many of something may happen per second."""
