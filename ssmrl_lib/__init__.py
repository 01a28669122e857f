"""ssmrl: state-space models for RL, replicated."""

import warnings

# Minari imports tqdm.auto, which warns in every notebook kernel without ipywidgets; our own bars
# are text bars on terminals only, so the warning would be the only thing a chapter shows.
warnings.filterwarnings("ignore", message="IProgress not found")
