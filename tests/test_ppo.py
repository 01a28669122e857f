"""Recurrent PPO: GAE, resets that cut memory, replay = acting, determinism, resume, bad names."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ssmrl_lib.env_batch import EnvBatch
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.experiments.popgym_ppo import make_env
from ssmrl_lib.models.actor_critic import ActorCritic, NetworkConfig
from ssmrl_lib.models.memory import CORES, make_core
from ssmrl_lib.models.s5 import S5_BLOCKS
from ssmrl_lib.runs import RunStore
from ssmrl_lib.train.ppo import PPOAgentRunner, PPOConfig, gae, train_ppo

torch.set_num_threads(1)

TINY = dict(encoder=(16, 16), hidden=16, heads=(16,), s5_layers=2, s5_state=8)


class GuessBit(gym.Env):
    """Each step shows a random bit (one-hot); reward 1 for repeating it, else 0; 8 steps.

    Memoryless and learnable in a few thousand steps: a smoke test that PPO improves a policy.
    """

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        return np.eye(2, dtype=np.float32)[self.bit]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.bit = 0, int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        reward = float(action == self.bit)
        self.t += 1
        self.bit = int(self.np_random.integers(2))
        return self._obs(), reward, False, self.t >= 8, {}


def make_cartpole() -> gym.Env:
    return make_env("PositionOnlyCartPoleHard")


def make_pendulum() -> gym.Env:
    return make_env("PositionOnlyPendulumHard")


def test_gae_matches_hand_computation() -> None:
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 1.0, 1.5]])
    dones = torch.tensor([[False, True, False]])  # the episode ends after step 1
    last_value = torch.tensor([2.0])
    # Step 2 bootstraps from last_value; step 1 is terminal; step 0 bootstraps from step 1.
    d2 = 3.0 + gamma * 2.0 - 1.5
    d1 = 2.0 - 1.0
    d0 = 1.0 + gamma * 1.0 - 0.5
    a2, a1 = d2, d1
    a0 = d0 + gamma * lam * a1
    advantages, targets = gae(rewards, values, dones, last_value, gamma, lam)
    torch.testing.assert_close(advantages, torch.tensor([[a0, a1, a2]]))
    torch.testing.assert_close(targets, advantages + values)


@pytest.mark.parametrize("name", ["s5", "gru", "lstm"])
def test_reset_cuts_memory(name: str) -> None:
    """After a reset, outputs do not depend on the inputs or state before it."""
    torch.manual_seed(0)
    core = make_core(name, 6, 8, s5_layers=2, s5_state=8).double()
    x = torch.randn(3, 12, 6, dtype=torch.float64)
    reset = torch.zeros(3, 12, dtype=torch.bool)
    reset[:, 7] = True
    reset[1, 3] = True
    state = core.initial_state(3)
    y, _ = core(x, state, reset)
    x_other = x.clone()
    x_other[:, :7] = torch.randn(3, 7, 6, dtype=torch.float64)
    noisy_state = state + torch.randn_like(state.real).to(state.dtype)
    y_other, _ = core(x_other, noisy_state, reset)
    torch.testing.assert_close(y[:, 7:], y_other[:, 7:])
    assert not torch.allclose(y[:, :7], y_other[:, :7])
    # A reset at step 0 makes even the given initial state irrelevant.
    first = torch.zeros_like(reset)
    first[:, 0] = True
    torch.testing.assert_close(core(x, noisy_state, first)[0], core(x, state, first)[0])


def test_s5_without_reset_carries_memory_across_episodes() -> None:
    torch.manual_seed(0)
    core = make_core("s5_noreset", 6, 8, s5_layers=1, s5_state=8).double()
    x = torch.randn(2, 10, 6, dtype=torch.float64)
    reset = torch.zeros(2, 10, dtype=torch.bool)
    reset[:, 5] = True
    x_other = x.clone()
    x_other[:, :5] += 1.0
    y, _ = core(x, core.initial_state(2), reset)
    y_other, _ = core(x_other, core.initial_state(2), reset)
    assert not torch.allclose(y[:, 5:], y_other[:, 5:])


@pytest.mark.parametrize("name", CORES)
@pytest.mark.parametrize("make_env", [make_cartpole, make_pendulum], ids=["discrete", "box"])
def test_replayed_rollout_reproduces_acting(name: str, make_env) -> None:
    """Training's whole-sequence forward from the stored start state equals step-by-step acting.

    Two consecutive rollouts, so the second starts mid-episode from a carried state; short
    CartPole episodes under a random policy put several resets inside each rollout.
    """
    torch.manual_seed(0)
    envs = EnvBatch(make_env, 3, seed=0)
    agent = ActorCritic(envs.observation_space.shape[0], envs.action_space,
                        NetworkConfig(core=name, **TINY))
    runner = PPOAgentRunner(envs, agent, torch.device("cpu"))
    for _ in range(2):
        rollout, _, _ = runner.collect(agent, 40)
        if make_env is make_cartpole:
            assert rollout.resets[:, 1:].any()  # resets inside the sequence are exercised
        with torch.no_grad():
            policy_out, values, final = agent(rollout.obs, rollout.start_state, rollout.resets)
        torch.testing.assert_close(policy_out, rollout.policy_out, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(values, rollout.values, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(final, runner.state, atol=1e-5, rtol=1e-4)


def test_popgym_observation_has_previous_action_and_first_step_flag() -> None:
    """popgym's own wrappers, as ``make_env`` stacks them, work with this gymnasium."""
    env = make_env("RepeatPreviousHard")
    obs, _ = env.reset(seed=0)
    # [card suit one-hot (4), previous action one-hot (4), first-step flag one-hot (2)]
    assert obs.shape == (10,) and obs[:4].sum() == 1
    np.testing.assert_array_equal(obs[4:], [1, 0, 0, 0, 0, 1])  # null action 0, first step
    obs, *_ = env.step(2)
    np.testing.assert_array_equal(obs[4:], [0, 0, 1, 0, 1, 0])
    pendulum = make_pendulum()
    pendulum.reset(seed=0)
    obs, *_ = pendulum.step(np.array([-1.5], np.float32))
    np.testing.assert_allclose(obs[2:], [-1.5, 1.0, 0.0])  # [cos, sin, action, flag one-hot]


SMOKE = PPOConfig(total_steps=4 * 32 * 3, num_envs=4, unroll=32, epochs=2, minibatches=2,
                  learning_rate=1e-3, checkpoint_every=1)


def test_training_is_deterministic_and_resumes(tmp_path) -> None:
    network = NetworkConfig(core="s5", **TINY)
    _, first = train_ppo(make_cartpole, network, SMOKE, seed=3, progress=False)
    _, second = train_ppo(make_cartpole, network, SMOKE, seed=3, progress=False)
    assert first.mean_return == second.mean_return and first.losses == second.losses
    assert len(first.steps) == 3 and first.steps[-1] == 384

    class Killed(Exception):
        pass

    def kill_after_two(update: int, history) -> None:
        if update == 2:
            raise Killed

    run = RunStore(tmp_path).run_dir("ppo", {"test": 1})
    with pytest.raises(Killed):
        train_ppo(make_cartpole, network, SMOKE, seed=3, run=run, on_update=kill_after_two,
                  progress=False)
    _, resumed = train_ppo(make_cartpole, network, SMOKE, seed=3, run=run, progress=False)
    assert resumed.mean_return == first.mean_return and resumed.losses == first.losses


@pytest.mark.parametrize("s5_block", S5_BLOCKS)
def test_both_s5_blocks_train(s5_block: str) -> None:
    """One PPO update with each S5 block: finite losses, every S5 parameter updated."""
    network = NetworkConfig(core="s5", s5_block=s5_block, **TINY)
    config = PPOConfig(total_steps=4 * 32, num_envs=4, unroll=32, epochs=1, minibatches=1,
                       learning_rate=1e-3)
    torch.manual_seed(0)
    env = make_cartpole()
    initial = ActorCritic(env.observation_space.shape[0], env.action_space, network)
    initial = {name: value.clone() for name, value in initial.core.state_dict().items()}
    agent, history = train_ppo(make_cartpole, network, config, seed=0, progress=False)
    assert all(np.isfinite(v) for v in history.losses[-1].values())
    for name, value in agent.core.state_dict().items():
        assert not torch.equal(value, initial[name]), name


def test_ppo_learns_a_trivial_task() -> None:
    config = PPOConfig(total_steps=8 * 32 * 12, num_envs=8, unroll=32, epochs=4, minibatches=2,
                       learning_rate=3e-3, gamma=0.0, gae_lambda=0.0)
    _, history = train_ppo(GuessBit, NetworkConfig(core="mlp", **TINY), config, seed=0,
                           progress=False)
    assert history.mean_return[0] < 5.5  # random: 4 of 8 on average
    assert history.mmer > 7.0


def test_bad_names_fail_with_choices() -> None:
    with pytest.raises(SsmrlError, match="unknown memory model 'rnn'; valid choices: s5,"):
        make_core("rnn", 4, 4)
    with pytest.raises(SsmrlError, match="multiple of minibatches"):
        PPOConfig(num_envs=6, minibatches=4).check()


def test_popgym_settings_reject_bad_names() -> None:
    from ssmrl_lib.experiments import popgym_ppo

    with pytest.raises(SsmrlError, match="unknown environment 'CartPole'; valid choices: Pos"):
        popgym_ppo.settings_for("smoke", envs=["CartPole"])
    with pytest.raises(SsmrlError, match="unknown model 'transformer'; valid choices: s5, "):
        popgym_ppo.settings_for("smoke", models=["transformer"])
    with pytest.raises(SsmrlError, match="unknown parameter 'lr'"):
        popgym_ppo.settings_for("smoke", lr=1e-3)
    with pytest.raises(SsmrlError, match="unknown profile 'fast'"):
        popgym_ppo.settings_for("fast")
    with pytest.raises(SsmrlError, match="multiple of minibatches"):
        popgym_ppo.settings_for("smoke", **{"ppo.num_envs": 3, "ppo.minibatches": 2})


def test_popgym_returns_are_normalised() -> None:
    """popgym scales returns into [-1, 1]; an oracle for RepeatPrevious earns exactly 1."""
    env = make_env("RepeatPreviousEasy")  # k = 4, 52 cards
    obs, _ = env.reset(seed=0)
    cards, total, done = [int(np.argmax(obs[:4]))], 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(cards[-4] if len(cards) >= 4 else 0)
        cards.append(int(np.argmax(obs[:4])))
        total += reward
        done = terminated or truncated
    assert total == pytest.approx(1.0)


def test_popgym_smoke_grid_and_report(tmp_path) -> None:
    from ssmrl_lib.experiments import popgym_ppo
    from ssmrl_lib.report import claims
    from ssmrl_lib.report import popgym as report
    from ssmrl_lib.runs import LocalExecutor

    settings = popgym_ppo.settings_for("smoke", **{"ppo.total_steps": 128})
    specs = popgym_ppo.grid(settings)
    assert [(s.config.env, s.config.model) for s in specs] == [
        ("PositionOnlyCartPoleHard", "s5"), ("PositionOnlyCartPoleHard", "gru")
    ]
    results = LocalExecutor(RunStore(tmp_path)).run_all(specs)
    for result in results:
        returns = [r for r in result["curve"]["mean_return"] if r is not None]
        assert result["mmer"] == max(returns) and 0 < result["mmer"] <= 1
        assert result["curve"]["steps"] == [64, 128]
    table = report.mmer_table(report.popgym_frame(results))
    assert list(table["MMER paper"]) == ["1.00 ± 0.00", "1.00 ± 0.00"]
    rows = {c.claim: c.verdict for c in claims.popgym_claims({"popgym_ppo": results}, {})}
    # One seed at 0.00085 % of the paper's budget: nothing is decided.
    assert str(rows["Table 5: S5 (⊕ resets) MMER on PositionOnlyCartPoleHard"]) == (
        "no interval: 1 seed")
    assert not any(v.decided for v in rows.values())


def test_report_paper_normalisation() -> None:
    from ssmrl_lib.report import popgym as report

    # Dividing by the best model per task turns Table 5 into Figure 3's end points.
    endpoints = report.paper_normalized_endpoints()
    assert endpoints == pytest.approx({"s5": 0.98, "gru": 0.68, "mlp": 0.32}, abs=0.005)


@pytest.mark.parametrize("gain", [np.sqrt(2), 2.0])
def test_the_heads_hidden_layers_take_the_configured_orthogonal_gain(gain):
    config = NetworkConfig(core="mlp", encoder=(8,), hidden=16, heads=(8, 8), head_gain=gain)
    agent = ActorCritic(4, gym.spaces.Discrete(2), config)
    for head in (agent.actor, agent.critic):
        hidden_layers = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][:-1]
        for layer in hidden_layers:  # W Wᵀ = gain² I for an orthogonal W with rows <= columns
            singular_values = torch.linalg.svdvals(layer.weight.detach())
            torch.testing.assert_close(singular_values, torch.full_like(singular_values, gain))
    encoder = next(m for m in agent.encoder.modules() if isinstance(m, torch.nn.Linear))
    assert torch.linalg.svdvals(encoder.weight.detach()).max() == pytest.approx(np.sqrt(2))


def test_the_paper_profiles_use_the_authors_head_gain_and_quick_keeps_cleanrls():
    from ssmrl_lib.experiments import meta_rl_cartpole, meta_rl_dmc, popgym_ppo

    for module in (popgym_ppo, meta_rl_cartpole, meta_rl_dmc):
        assert module.settings_for("full").network.head_gain == 2.0
        assert module.settings_for("quick").network.head_gain == pytest.approx(np.sqrt(2))
