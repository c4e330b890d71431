"""Dynamic String Sampling (Freeman and Bruna 2017): paths between models and the barriers along them. Floor 2: it
uses the core's zoo, tasks and store, and never imports ``analysis``.

- tasks: ``tasks`` (the paper's regressions, appendix D's permutation, the sampler's classifier), ``module_task``
  (any zoo ``nn.Module``), ``real_tasks`` (MNIST, CIFAR-10, PTB), ``device``;
- strings: ``string`` (Algorithm 1), ``variants`` (constrained, breadth-first), ``baselines`` (straight line,
  Bézier, AutoNEB), ``optim`` (bead training), ``interpolation`` (batched scans of links), ``barriers`` (a path's
  maximum and the climbing image to the saddle);
- runs of many: ``sweep`` and ``sweep_tasks`` (levels × pairs as tasks writing their own files), ``graph`` and
  ``graph_tasks`` (the minima graph);
- ``store`` (atomic writes, resumable) and ``plots``.
"""
