"""Loaders for the OIE training corpora (filled in by the OIE-task work)."""
