"""Return per trial of a trained recurrent PPO agent on multi-trial (meta-RL) environments.

Every environment plays exactly one episode, all in one batch. The agent's memory starts from
its initial state and is never reset inside the episode, as in training, so how return changes
from trial to trial shows what the agent learns in context, including past the number of trials
it was trained on. Actions are sampled from the policy, as during training.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from ssmrl_lib.models.actor_critic import ActorCritic

# Evaluation episodes are seeded from here up, so that none of them replays a training
# environment's seed.
EVAL_SEED_OFFSET = 1_000_000


@torch.no_grad()
def trial_returns(
    agent: ActorCritic,
    envs: list[gym.Env],
    seeds: list[int],
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One episode per environment (``reset(seed=seeds[i])``); per episode its trial returns.

    Each entry is ``{"trial_returns": [...]}`` plus ``"task"`` when the environment's reset
    ``info`` names one. Environments must report ``trial_returns`` in the last step's ``info``
    (see ``ssmrl_lib.meta_envs.TrialEnv``).
    """
    device = torch.device(device)
    torch.manual_seed(seeds[0])
    results: list[dict[str, Any]] = [{} for _ in envs]
    observations = []
    for i, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
        obs, info = env.reset(seed=seed)
        observations.append(obs)
        if "task" in info:
            results[i]["task"] = info["task"]
    obs = np.stack(observations).astype(np.float32)
    state = agent.initial_state(len(envs)).to(device)
    reset = torch.zeros(len(envs), 1, dtype=torch.bool, device=device)
    reset[:, 0] = True
    active = np.ones(len(envs), dtype=bool)
    longest = max(env.num_trials * env.trial_length for env in envs)
    bar = tqdm(total=longest, desc="evaluate", unit="step", mininterval=2.0, disable=not progress)
    while active.any():
        policy_out, _, state = agent(torch.from_numpy(obs).to(device)[:, None], state, reset)
        actions = agent.distribution(policy_out[:, 0]).sample().cpu().numpy()
        reset[:] = False
        for i in np.flatnonzero(active):
            action = (
                actions[i] if isinstance(envs[i].action_space, gym.spaces.Box) else int(actions[i])
            )
            obs[i], _, terminated, truncated, info = envs[i].step(action)
            if terminated or truncated:
                active[i] = False
                results[i]["trial_returns"] = [float(r) for r in info["trial_returns"]]
        bar.update()
    bar.close()
    return results


def per_trial_mean(episodes: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Mean and std over episodes of the return of each trial index (equal trial counts)."""
    returns = np.array([e["trial_returns"] for e in episodes], dtype=float)
    return returns.mean(axis=0).tolist(), returns.std(axis=0).tolist()
