"""BalDRO: DRO-balanced LLM unlearning (NPO / SimNPO / SatImp, plain, BalDRO-G, BalDRO-DV)."""
