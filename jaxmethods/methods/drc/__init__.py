"""DRC (ACM MM 2025, arXiv 2504.17349) and its Pigeon baseline; see docs/drc.md."""
