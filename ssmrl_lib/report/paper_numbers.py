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

# Peers shown beside ours (not claims of the two papers), D4RL normalized scores.
# Chen et al. 2021, Table 2: behaviour cloning and CQL on the same D4RL datasets.
DT_PAPER_BC = {
    ("halfcheetah", "medium"): 43.1, ("hopper", "medium"): 63.9, ("walker2d", "medium"): 77.3,
    ("halfcheetah", "medium-replay"): 4.3, ("hopper", "medium-replay"): 27.6,
    ("halfcheetah", "medium-expert"): 59.9, ("hopper", "medium-expert"): 79.6,
    ("walker2d", "medium-expert"): 36.6,
}
DT_PAPER_CQL = {
    ("halfcheetah", "medium"): 44.4, ("hopper", "medium"): 58.0, ("walker2d", "medium"): 79.2,
    ("halfcheetah", "medium-replay"): 46.2, ("hopper", "medium-replay"): 48.6,
    ("halfcheetah", "medium-expert"): 62.4, ("hopper", "medium-expert"): 111.0,
    ("walker2d", "medium-expert"): 98.7,
}
# CORL's README (corl-team/CORL), DT over 4 seeds: (last mean, last std, best mean, best std).
CORL_DT_STD = {
    ("halfcheetah", "medium"): (42.20, 0.26, 42.73, 0.10),
    ("hopper", "medium"): (65.10, 1.61, 69.42, 3.64),
    ("walker2d", "medium"): (67.63, 2.54, 74.70, 0.56),
    ("halfcheetah", "medium-replay"): (38.91, 0.50, 40.31, 0.28),
    ("hopper", "medium-replay"): (81.77, 6.87, 88.74, 3.02),
    ("walker2d", "medium-replay"): (59.86, 2.73, 68.22, 1.20),
    ("halfcheetah", "medium-expert"): (91.55, 0.95, 93.40, 0.21),
    ("hopper", "medium-expert"): (110.44, 0.33, 111.18, 0.21),
    ("walker2d", "medium-expert"): (107.11, 0.96, 108.71, 0.34),
}
# (env, quality) -> (last, best) normalized score, CORL's DT.
CORL_DT = {key: (last, best) for key, (last, _, best, _) in CORL_DT_STD.items()}
# Lv et al. 2024 ("Decision Mamba", NeurIPS 2024), Table 1 (repository aopolin-lv/DecisionMamba,
# assets/main_result.png; 100k steps, K = 20): their DT, and Decision Mamba (mean, std; 4 seeds).
LV2024_DT = {
    ("halfcheetah", "medium"): 42.6, ("hopper", "medium"): 70.4, ("walker2d", "medium"): 74.0,
    ("halfcheetah", "medium-replay"): 37.4, ("hopper", "medium-replay"): 82.7,
    ("walker2d", "medium-replay"): 66.6, ("halfcheetah", "medium-expert"): 87.3,
    ("hopper", "medium-expert"): 106.5, ("walker2d", "medium-expert"): 109.2,
}
LV2024_DECISION_MAMBA = {
    ("halfcheetah", "medium"): (43.8, 0.23), ("hopper", "medium"): (98.5, 8.19),
    ("walker2d", "medium"): (80.3, 0.07), ("halfcheetah", "medium-replay"): (40.8, 0.43),
    ("hopper", "medium-replay"): (89.1, 4.32), ("walker2d", "medium-replay"): (79.3, 1.94),
    ("halfcheetah", "medium-expert"): (93.5, 0.11), ("hopper", "medium-expert"): (111.9, 1.84),
    ("walker2d", "medium-expert"): (111.6, 3.31),
}
# nikhilbarhate99/min-decision-transformer (README): DT after 20k updates (mean, std).
MIN_DT_20K = {("halfcheetah", "medium"): (42.18, 0.77), ("hopper", "medium"): (68.54, 5.9)}
MIN_DT_STEPS = 20_000

# Lu et al. 2023, POPGym: the POPGym paper's (Morad et al. 2023) MMER on the same Hard tasks,
# as Lu et al.'s Table 5 quotes them (peers, not Lu et al.'s own runs).
POPGYM_PAPER_MMER = {
    "gru": {"PositionOnlyCartPoleHard": 1.000, "NoisyPositionOnlyCartPoleHard": 0.390,
            "PositionOnlyPendulumHard": 0.828, "NoisyPositionOnlyPendulumHard": 0.657,
            "RepeatPreviousHard": -0.428},
    "lmu": {"PositionOnlyCartPoleHard": 0.987, "NoisyPositionOnlyCartPoleHard": 0.352,
            "PositionOnlyPendulumHard": 0.806, "NoisyPositionOnlyPendulumHard": 0.563,
            "RepeatPreviousHard": 0.191},
    "s4d": {"PositionOnlyCartPoleHard": 0.127, "NoisyPositionOnlyCartPoleHard": 0.207,
            "PositionOnlyPendulumHard": 0.303, "NoisyPositionOnlyPendulumHard": 0.289,
            "RepeatPreviousHard": -0.491},
}
# Lu et al. 2023, Figure 3 (≈): normalized MMER at the end of training, averaged over tasks.
LU2023_NORMALIZED_MMER = {"s5": 0.96, "s5_noreset": 0.90, "gru": 0.68, "mlp": 0.32}
# Lu et al. 2023, bsuite memory length (Figure 2, ≈): runtime at length 2048 (s) and memory at
# length 4096 (GiB) of one model each.
LU2023_BSUITE_RUNTIME_2048_S = {"attention": 52_700.0, "lstm": 4_500.0, "s5": 3_000.0}
LU2023_BSUITE_MEMORY_4096_GIB = {"attention": 48.5, "s5": 3.1, "lstm": 1.6}

# Lu et al. (2023), Table 5: (model, task) -> (mean, std) MMER.
LU2023_TABLE5 = {
    ("s5", "PositionOnlyCartPoleHard"): (1.0, 0.0),
    ("s5", "NoisyPositionOnlyCartPoleHard"): (0.28, 0.0),
    ("s5", "PositionOnlyPendulumHard"): (0.79, 0.01),
    ("s5", "NoisyPositionOnlyPendulumHard"): (0.55, 0.01),
    ("s5", "RepeatPreviousHard"): (0.91, 0.01),
    ("gru", "PositionOnlyCartPoleHard"): (1.0, 0.0),
    ("gru", "NoisyPositionOnlyCartPoleHard"): (0.27, 0.0),
    ("gru", "PositionOnlyPendulumHard"): (0.75, 0.0),
    ("gru", "NoisyPositionOnlyPendulumHard"): (0.61, 0.01),
    ("gru", "RepeatPreviousHard"): (-0.46, 0.01),
    ("mlp", "PositionOnlyCartPoleHard"): (0.26, 0.0),
    ("mlp", "NoisyPositionOnlyCartPoleHard"): (0.22, 0.0),
    ("mlp", "PositionOnlyPendulumHard"): (0.41, 0.02),
    ("mlp", "NoisyPositionOnlyPendulumHard"): (0.34, 0.01),
    ("mlp", "RepeatPreviousHard"): (-0.48, 0.0),
}
# Lu et al. (2023), end-to-end training time on one A40 (text and Figure 3), seconds.
LU2023_WALL_TIME_S = {"s5": 1_750.0, "gru": 11_800.0}
# Lu et al. (2023)'s POPGym budget per run: 15M environment steps.
LU2023_PAPER_STEPS = 15_000_000
