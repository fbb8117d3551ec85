"""Alerts: the engine that raises them from verdicts, and their delivery to sinks."""
