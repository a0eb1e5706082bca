"""Pure loss functions of arrays (jax and optax only: no flax, no model objects).

Import them into any JAX code:  `from jaxmethods.losses import bradley_terry_loss`.
"""

from jaxmethods.losses.cf import (
    bpr_drop_loss,
    bpr_loss,
    drop_highest_loss_mask,
    drop_rate_schedule,
    embedding_l2_reg,
    info_nce,
    sampled_bce_loss,
)
from jaxmethods.losses.common import masked_mean, masked_sum
from jaxmethods.losses.dro import (
    dv_aggregate,
    dv_weights,
    group_topk_indices,
    group_topk_mask,
    random_subset_indices,
    random_subset_mask,
    topk_count,
)
from jaxmethods.losses.importance_sampling import (
    importance_weights,
    sampling_probs,
    update_running_losses,
    weighted_mean,
)
from jaxmethods.losses.logprobs import (
    chunked_sequence_logprobs,
    chunked_token_logprobs,
    sequence_logprobs,
    token_logprobs,
)
from jaxmethods.losses.policy_gradient import clipped_surrogate, grpo_advantages, k3_kl
from jaxmethods.losses.preference import (
    DPOOutput,
    bradley_terry_loss,
    dpo_loss,
    masked_quantile,
    rpo_objective,
)
from jaxmethods.losses.rating import expected_rating, rating_probs
from jaxmethods.losses.sparse_autoencoder import (
    bernoulli_kl,
    dep_loss,
    kl_sparsity_loss,
    smooth_l1_loss,
    sparsity_rho_hat,
)
from jaxmethods.losses.token_weighted import (
    causal_fine_tuning_loss,
    igd_token_weights,
    position_decay_weights,
    shift_labels_and_weights,
    weighted_token_ce,
    weighted_token_nll,
)
from jaxmethods.losses.unlearning import (
    IGNORE_INDEX,
    gradient_ascent_loss,
    gradient_difference_loss,
    next_token_labels,
    npo_loss,
    num_label_tokens,
    retain_nll_loss,
    satimp_token_loss,
    sequence_mean_nll,
    sequence_nll,
    simnpo_loss,
    token_cross_entropy,
    token_cross_entropy_from_hidden,
    token_mean_nll,
)

__all__ = [
    "IGNORE_INDEX",
    "DPOOutput",
    "bernoulli_kl",
    "bpr_drop_loss",
    "bpr_loss",
    "bradley_terry_loss",
    "causal_fine_tuning_loss",
    "chunked_sequence_logprobs",
    "chunked_token_logprobs",
    "clipped_surrogate",
    "dep_loss",
    "dpo_loss",
    "drop_highest_loss_mask",
    "drop_rate_schedule",
    "dv_aggregate",
    "dv_weights",
    "embedding_l2_reg",
    "expected_rating",
    "gradient_ascent_loss",
    "gradient_difference_loss",
    "group_topk_indices",
    "group_topk_mask",
    "grpo_advantages",
    "igd_token_weights",
    "importance_weights",
    "info_nce",
    "k3_kl",
    "kl_sparsity_loss",
    "masked_mean",
    "masked_quantile",
    "masked_sum",
    "next_token_labels",
    "npo_loss",
    "num_label_tokens",
    "position_decay_weights",
    "random_subset_indices",
    "random_subset_mask",
    "rating_probs",
    "retain_nll_loss",
    "rpo_objective",
    "sampled_bce_loss",
    "sampling_probs",
    "satimp_token_loss",
    "sequence_logprobs",
    "sequence_mean_nll",
    "sequence_nll",
    "shift_labels_and_weights",
    "simnpo_loss",
    "smooth_l1_loss",
    "sparsity_rho_hat",
    "token_cross_entropy",
    "token_cross_entropy_from_hidden",
    "token_logprobs",
    "token_mean_nll",
    "topk_count",
    "update_running_losses",
    "weighted_mean",
    "weighted_token_ce",
    "weighted_token_nll",
]
