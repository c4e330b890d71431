"""Models: the MLP spec and flat layout (``nets``), the zoo of ``nn.Module``s (``zoo``), the symmetry
groups of the MLP (``symmetry``) and of the zoo's convnets (``zoo_symmetry``) and the energies U and ∇U (``energy``).

Imports ``data`` only; no sampler."""
