"""Data: the named data sets and their readers (``datasets``, ``realdata``) and the transforms of a data
set (``transforms``).

The lowest room of the core: it imports nothing of the core but ``errors``."""
