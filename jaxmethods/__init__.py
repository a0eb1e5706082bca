"""jaxmethods: JAX/Flax NNX reimplementations of ten recent research methods.

The pure, importable API lives in `jaxmethods.losses` (functions of arrays, jax/optax only).
"""

__version__ = "0.1.0"
