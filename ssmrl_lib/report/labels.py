"""The names the chapters show for the memory cores and the PPO benchmark's workloads.

Every chapter that trains a memory core (POPGym, bsuite, meta-RL, the landing page and the
Claims page) labels it the same way from here.
"""

from __future__ import annotations

MODEL_LABELS = {
    "s5": "S5 (⊕ resets)", "s5_noreset": "S5 (no resets)", "gru": "GRU", "lstm": "LSTM",
    "mlp": "MLP", "attention": "self-attention",
}
# ``benchmarks/ppo_throughput.py``'s workloads, on the CPU and in the GPU check.
THROUGHPUT_WORKLOADS = {
    "paper": "paper's (Table 3)",
    "small": "small",
}
