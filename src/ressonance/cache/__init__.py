"""Cache stores: the last event of each cache channel."""
