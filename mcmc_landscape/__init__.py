"""mcmc-landscape: sample and measure the loss landscapes of small neural networks."""

__version__ = "0.1.0"
