"""Blocks the notes name that torch lacks (one concept per file)."""
