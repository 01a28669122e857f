"""Published numbers the book compares against; only the "paper" columns ever show these.

Sources: Chen et al. 2021 (Decision Transformer), Table 2, D4RL normalized scores; CORL
(Tarasov et al. 2022) DT reproduction, last and best normalized scores.
"""

from __future__ import annotations

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
