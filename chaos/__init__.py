"""Chaos suite: faults against a running stack, invariants against a clean run."""
