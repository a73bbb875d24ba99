"""The runtime layer: the loops that act on the policy's decisions on every node.

The node daemon (`daemon.py`), the controller, the executor, and the cluster store that is the
only owner of the coordinator and its key layout.
"""
