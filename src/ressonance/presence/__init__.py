"""Presence stores: who is subscribed where, cluster-wide."""
