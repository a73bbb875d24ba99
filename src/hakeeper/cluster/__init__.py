"""The cluster brain: the scheduler (pure) now; the controller and agent loops later."""
