"""Pure loss functions of arrays (jax and optax only: no flax, no model objects).

Import them into any JAX code:  `from jaxmethods.losses import bradley_terry_loss`.
"""

from jaxmethods.losses.common import masked_mean, masked_sum
from jaxmethods.losses.logprobs import sequence_logprobs, token_logprobs

__all__ = [
    "masked_mean",
    "masked_sum",
    "sequence_logprobs",
    "token_logprobs",
]
