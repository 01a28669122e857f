"""ssmrl: state-space models for RL, replicated."""
