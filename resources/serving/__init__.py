"""Clients of the serving stores that gold is exported to."""
