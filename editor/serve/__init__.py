"""Serving the editor to people and programs (issue 21)."""
