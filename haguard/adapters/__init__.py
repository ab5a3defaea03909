"""The only code that touches the system: netlink, sockets, files, processes."""
