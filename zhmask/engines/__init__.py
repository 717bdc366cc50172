"""Engines run work units: ``local`` (this process or a process pool) and ``ray``."""
