"""Verdicts: pure functions from check results to node status, score and launch gates."""
