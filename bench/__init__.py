"""`make bench`: throughput, latency and memory of Alliance Radar on a realistic news mix.

Run as `python -m bench` from the repository root; see bench/__main__.py for the figures and
how each is measured.
"""
