"""Use cases: core and adapters combined, one operation end to end; no syscalls of their own."""
