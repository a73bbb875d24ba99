"""The pure policy layer: what the cluster should do, decided from one snapshot.

No I/O and no clock: `tests/test_layers.py` holds every module here to that.
"""
