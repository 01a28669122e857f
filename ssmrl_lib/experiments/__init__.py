"""Experiments: profile settings, run configs, and the run functions the notebooks call."""
