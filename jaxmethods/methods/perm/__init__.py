"""PERM: psychology-grounded empathetic rewards (three perspectives + a bystander) for GRPO,
with optional per-user perspective weights meta-learned MRM-style. See docs/perm.md."""
