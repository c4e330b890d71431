"""Offline geometry of sampled chains (kernel PCA, good minima, rotation experiment). Reads the chain store only.

Not built yet: see the tracker's analysis and rotation issues. The package exists so the layout of DESIGN.md holds.
"""
