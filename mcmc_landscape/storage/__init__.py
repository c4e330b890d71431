"""Storage: the HDF5 chain store (``store``), one writer per file (``locking``) and the virtual-dataset
join of shard files (``join``).

Knows no sampler and no model."""
