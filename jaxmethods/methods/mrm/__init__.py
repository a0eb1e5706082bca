"""MRM: meta-learned personalized reward weights (arXiv 2601.18731)."""
