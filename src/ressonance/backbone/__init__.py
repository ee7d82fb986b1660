"""Backbones: how a publish travels to every node with subscribers."""
