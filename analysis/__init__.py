"""Offline statistics of stored draws and minima: floor 2, reading chain files through the core's store and never
importing ``dss`` (the front door joins the two on plain data).

- ``reduction``: kernel PCA of draws (scikit-learn's ``KernelPCA`` / Nyström) and the plane fit of good minima, as
  scikit-learn estimators;
- ``minima``: good-minima selection, their statistics and the null sets they are held against;
- ``pipeline``: ``landscape analyze`` on a chain file, streamed in blocks;
- ``comparison``: two-sample tests between runs, matched Procrustes;
- ``experiment`` and ``rotation``: the invariance experiment over transforms of the data (rotation its one case);
- ``census``: the minima census: identity modulo symmetry, basin frequencies, the disconnectivity tree from minima
  and barriers given as data;
- ``plots`` and ``graph_plots``: the figures (the minima graph on the kernel-PCA map), each beside its numbers.
"""
