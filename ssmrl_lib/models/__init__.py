"""Sequence models for RL: Decision Transformer, Decision Mamba, S5, and their shared scan."""
