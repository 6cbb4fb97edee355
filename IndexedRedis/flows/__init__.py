"""Flows: every operation written once as an I/O-free generator (see ``requests``)."""
