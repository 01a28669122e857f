"""Evaluation: batched rollouts in gymnasium environments and the scores reported from them."""
