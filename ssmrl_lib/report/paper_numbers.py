"""Published numbers the book compares against; only the "paper" columns ever show these.

Sources: Chen et al. 2021 (Decision Transformer), Table 2, D4RL normalized scores; CORL
(Tarasov et al. 2022) DT reproduction, last and best normalized scores.
"""

from __future__ import annotations

# Training steps behind the DT paper's scores (its gym experiments: 100k gradient steps).
DT_PAPER_TRAIN_STEPS = 100_000

# (env, D4RL dataset quality) -> (mean, std) normalized score, DT paper.
DT_PAPER = {
    ("halfcheetah", "medium"): (42.6, 0.1),
    ("hopper", "medium"): (67.6, 1.0),
    ("walker2d", "medium"): (74.0, 1.4),
    ("halfcheetah", "medium-replay"): (36.6, 0.8),
    ("hopper", "medium-replay"): (82.7, 7.0),
    ("walker2d", "medium-replay"): (66.6, 3.0),
    ("halfcheetah", "medium-expert"): (86.8, 1.3),
    ("hopper", "medium-expert"): (107.6, 1.8),
    ("walker2d", "medium-expert"): (108.1, 0.2),
}

# (env, quality) -> (last, best) normalized score, CORL's DT.
CORL_DT = {
    ("halfcheetah", "medium"): (42.20, 42.73),
    ("hopper", "medium"): (65.10, 69.42),
    ("walker2d", "medium"): (67.63, 74.70),
    ("halfcheetah", "medium-replay"): (38.91, 40.31),
    ("hopper", "medium-replay"): (81.77, 88.74),
    ("walker2d", "medium-replay"): (59.86, 68.22),
    ("halfcheetah", "medium-expert"): (91.55, 93.40),
    ("hopper", "medium-expert"): (110.44, 111.18),
    ("walker2d", "medium-expert"): (107.11, 108.71),
}

# Rezaei & Patel, Table 2: mean reward over 500 episodes (units not stated in the paper).
REZAEI_TABLE2 = {
    ("hopper", "dt"): (4.5, 1.1),
    ("halfcheetah", "dt"): (3.1, 1.0),
    ("walker2d", "dt"): (4.9, 1.1),
    ("hopper", "mamba"): (4.7, 1.2),
    ("halfcheetah", "mamba"): (2.9, 1.2),
    ("walker2d", "mamba"): (4.3, 1.3),
}
REZAEI_PARAMETERS = {"dt": 1_200_000, "mamba": 900_000}
# Rezaei & Patel, Table 3: inference runtime (s) and memory (GB).
REZAEI_TABLE3 = {"dt": (27.0, 3.1), "mamba": (25.0, 2.9)}

# Lu et al. 2023 ("Structured State Space Models for In-Context RL"), §4.3, read off the
# figures (all ≈). Meta-RL 1: randomly projected StatelessCartPole, 16 trials of 200 steps per
# episode (a trial returns at most 1), 4 seeds. Final MMER per model (the maximum is 16):
LU2023_META_CARTPOLE_MMER = {"s5": 6.8, "s5_noreset": 5.9, "gru": 5.9, "mlp": 2.9}
LU2023_META_CARTPOLE_TRIALS = 16
LU2023_META_CARTPOLE_TRIAL_LENGTH = 200
LU2023_META_CARTPOLE_EVAL_TRIALS = 32
# Evaluated to 32 trials: (low, high) return per trial past the 16th.
LU2023_META_CARTPOLE_BEYOND = {"s5": (0.40, 0.46), "gru": (0.31, 0.33)}
LU2023_META_CARTPOLE_GRU_OVER_S5_TIME = 2.0  # "S5 twice as fast as GRU"

# Meta-RL 2 (Algorithm 1, Muesli, 2e9 frames): mean return over the training tasks and the
# (low, high) mean over the held-out tasks, dm_control's 1000-step scale; pendulum_swingup
# fails for all models.
LU2023_META_DMC_TRAIN = {"s5": 810.0, "lstm": 670.0, "mlp": 235.0}
LU2023_META_DMC_HELDOUT = {"s5": (500.0, 600.0), "lstm": (400.0, 440.0), "mlp": (200.0, 200.0)}
LU2023_META_DMC_FAILED = ("pendulum_swingup",)
LU2023_META_DMC_FRAMES = 2_000_000_000
