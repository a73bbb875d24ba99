"""Fencing: make sure a node that vanished is really off before its resources move."""
