"""Small examples: a user model (``examples.tiny_model:make``) and its data (``examples/tiny.npz``)."""
