"""Offline RL data: loading Minari datasets, making new ones, and cutting DT training windows."""

from ssmrl_lib.data.minari_io import Trajectories, load_trajectories
from ssmrl_lib.data.windows import DTWindowSampler, StateNormalizer

__all__ = ["DTWindowSampler", "StateNormalizer", "Trajectories", "load_trajectories"]
