"""Synthetic DSS tasks: the loss an explicit function of a 2-D θ, no data."""

import torch


class Landscape:
    """A synthetic task: the loss is an explicit function of a 2-D θ (no data)."""

    dtype = torch.float64
    box = None
    p = 2

    def __init__(self, fn):
        self.fn = fn

    def loss_train(self, theta):
        return self.fn(theta)

    loss_eval = loss_train


class Synthetic(Landscape):
    def config(self):
        return {"task": "synthetic"}
