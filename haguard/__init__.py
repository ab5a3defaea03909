"""haguard: keepalived-driven LVS director high availability."""

__version__ = "0.1.0"
