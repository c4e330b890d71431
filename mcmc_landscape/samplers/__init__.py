"""Sampler kernels: ``init(...) -> State`` and ``run_block(state, n) -> (state, draws, info)``.

A kernel knows nothing of files; the runner drives it into the store.
"""
