"""The namespace lab: the director pair, a switch and a client on one Linux box."""
