"""Models: the MLP spec and flat layout (``nets``), the zoo of ``nn.Module``s (``zoo``), the symmetry
group (``symmetry``) and the energies U and ∇U (``energy``).

Imports ``data`` only; no sampler."""
