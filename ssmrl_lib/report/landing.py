"""One small figure per chapter for the landing page, drawn from the same runs as the Claims
page (glued by the Claims notebook, pasted into ``book/intro.md``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ssmrl_lib.data.policy_dir import policies_root, read_evaluations
from ssmrl_lib.envs import MUJOCO_TASKS
from ssmrl_lib.report import aggregate
from ssmrl_lib.report.claims import ENV_LABELS, Runs, offline_curve
from ssmrl_lib.report.labels import MODEL_LABELS
from ssmrl_lib.report.meta_rl import trial_return_curves
from ssmrl_lib.report.paper_numbers import DT_PAPER

SIZE = (3.4, 2.3)


def _figure(title: str) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=SIZE)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return fig, ax


def _done(fig: plt.Figure, ax: plt.Axes) -> plt.Figure:
    ax.legend(fontsize=6)
    fig.tight_layout()
    plt.close(fig)  # shown where it is pasted, not in the notebook
    return fig


def datasets_figure() -> plt.Figure:
    """Each behaviour policy's normalized score over its training."""
    fig, ax = _figure("behaviour policies")
    for env in MUJOCO_TASKS:
        evaluations = read_evaluations(policies_root() / env)
        if evaluations:
            ax.plot([r["step"] for r in evaluations], [r["normalized_mean"] for r in evaluations],
                    label=ENV_LABELS[env])
    ax.set_xlabel("environment steps", fontsize=7)
    ax.set_ylabel("normalized score", fontsize=7)
    return _done(fig, ax)


def offline_figure(runs: Runs, models: tuple[str, ...], title: str) -> plt.Figure:
    """Normalized score per environment, ours (mean over seeds) beside the DT paper's."""
    fig, ax = _figure(title)
    envs = list(ENV_LABELS)
    series = [(f"ours: {m}", [offline_curve(runs, env, m) for env in envs]) for m in models]
    width = 0.8 / (len(series) + 1)
    for k, (label, curves) in enumerate(series):
        ax.bar(np.arange(len(envs)) + k * width,
               [c[-1].mean if c else np.nan for c in curves], width, label=label)
    ax.bar(np.arange(len(envs)) + len(series) * width,
           [DT_PAPER[(env, "medium")][0] for env in envs], width, label="DT paper", color="grey")
    ax.set_xticks(np.arange(len(envs)) + width * len(series) / 2,
                  [ENV_LABELS[e] for e in envs], fontsize=7)
    ax.set_ylabel("normalized score", fontsize=7)
    return _done(fig, ax)


def popgym_figure(runs: Runs) -> plt.Figure:
    """IQM of MMER over the POPGym tasks run, per model."""
    fig, ax = _figure("POPGym: IQM of MMER over tasks")
    frame = pd.DataFrame([{**r["config"], "mmer": np.nan if r["mmer"] is None else r["mmer"]}
                          for r in runs.get("popgym_ppo", [])])
    glance = aggregate.aggregate(frame, np.linspace(-1, 1, 41), task="env", score="mmer",
                                 labels=MODEL_LABELS) if len(frame) else []
    for row, a in enumerate(glance):
        if a.iqm_interval is not None:
            ax.plot(a.iqm_interval, [row, row], lw=5, alpha=0.35, color=f"C{row}")
        ax.plot([a.iqm], [row], "o", color=f"C{row}", label=a.model)
    ax.set_yticks([])
    ax.set_xlabel("IQM of MMER", fontsize=7)
    return _done(fig, ax)


def bsuite_figure(runs: Runs) -> plt.Figure:
    """Final return against memory length, S5 and LSTM, mean over seeds."""
    fig, ax = _figure("bsuite: return vs memory length")
    results = runs.get("bsuite_memory", [])
    for model in dict.fromkeys(r["config"]["model"] for r in results):
        lengths = sorted({r["config"]["memory_length"] for r in results
                          if r["config"]["model"] == model})
        means = [np.nanmean([np.nan if r["final_return"] is None else r["final_return"]
                             for r in results if r["config"]["model"] == model
                             and r["config"]["memory_length"] == n]) for n in lengths]
        ax.plot(lengths, means, "o-", label=MODEL_LABELS.get(model, model))
    ax.set_xscale("log", base=2)
    ax.set(ylim=(-1.05, 1.05))
    ax.set_xlabel("memory length", fontsize=7)
    return _done(fig, ax)


def meta_rl_figure(runs: Runs) -> plt.Figure:
    """Return per trial of the projected-CartPole agents, past their training horizon."""
    fig, ax = _figure("meta-RL: return per trial")
    results = runs.get("meta_rl_cartpole", [])
    for model, (mean, _, _) in trial_return_curves(results).items():
        ax.plot(np.arange(1, len(mean) + 1), mean, label=MODEL_LABELS.get(model, model))
    if results:
        ax.axvline(results[0]["config"]["num_trials"] + 0.5, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("trial", fontsize=7)
    return _done(fig, ax)


def landing_figures(runs: Runs) -> dict[str, plt.Figure]:
    """Chapter (notebook name) -> its small figure."""
    return {
        "00_datasets": datasets_figure(),
        "01_dt_replication": offline_figure(runs, ("dt",), "DT: normalized score"),
        "02_mamba_vs_dt": offline_figure(runs, ("dt", "mamba"), "Mamba vs DT"),
        "03_s5_popgym": popgym_figure(runs),
        "04_bsuite_memory": bsuite_figure(runs),
        "05_meta_rl": meta_rl_figure(runs),
    }
