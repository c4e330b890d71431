"""Dynamic String Sampling (Freeman and Bruna). Uses tasks and the store; never imports ``analysis``.

Not built yet: see the tracker's DSS issue. The package exists so the layout of DESIGN.md holds.
"""
