"""Embedding-dimension scaling in collaborative filtering (arXiv 2509.15709): BPR, NeuMF,
LightGCN, SGL and BPR_Drop trained at every size of a power-of-two grid. See docs/cf_scaling.md."""
