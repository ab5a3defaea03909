"""Pure core: no I/O, no root; takes values and returns values."""
