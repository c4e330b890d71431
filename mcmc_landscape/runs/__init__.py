"""Runs: a run from its settings to its file and back: the typed config (``config``), the runner that
drives a kernel into the store (``runner``), start and resume (``sampling``), the two kinds of run
(``mlp_sampling``: an MLP on points; ``zoo_sampling``: a model of the zoo or a user's module) and runs
split into shards (``shards``).

The top room of the core: it imports every other."""
