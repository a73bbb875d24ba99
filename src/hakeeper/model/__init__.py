"""Plain data of the cluster model. No I/O."""
