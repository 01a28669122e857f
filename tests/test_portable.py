"""A behavior policy acts with the same bits whatever kernels NumPy and OpenBLAS pick for the CPU
(``ssmrl_lib/data/portable.py``), so a dataset built on one machine is the one any other builds.

Each setting runs the same actor in a fresh process with one of those choices forced: OpenBLAS's
kernel for an older CPU (``OPENBLAS_CORETYPE``), or NumPy's dispatched SIMD code switched off
(``NPY_DISABLE_CPU_FEATURES``). Plain NumPy (``x @ w``, ``np.tanh``, ``np.exp``) gives other bits
under some of them: that is what the actor must not do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ssmrl_lib.data import portable
from ssmrl_lib.data.actor import ActorPolicy

# Prints, as JSON, hashes of a SAC-sized actor's mean and sampled actions and of the HalfCheetah
# episodes it collects as a dataset recipe does (``portable``), and of the actor's computations
# in plain NumPy (``numpy``).
PROBE = """
import hashlib, json
import numpy as np
from ssmrl_lib.data.actor import ActorPolicy

def digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

rng = np.random.default_rng(0)
def layer(n_out, n_in):
    return (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)

obs_dim, hidden, act_dim = 17, 256, 6
arrays = {"w0": layer(hidden, obs_dim), "b0": layer(1, hidden)[0],
          "w1": layer(hidden, hidden), "b1": layer(1, hidden)[0],
          "w_mu": layer(act_dim, hidden), "b_mu": layer(1, act_dim)[0],
          "w_log_std": layer(act_dim, hidden), "b_log_std": layer(1, act_dim)[0],
          "low": -np.ones(act_dim, np.float32), "high": np.ones(act_dim, np.float32)}
actor = ActorPolicy(arrays, {})
obs = (3 * rng.standard_normal((64, obs_dim))).astype(np.float32)
sampled = actor.sampler(np.random.default_rng(1))
hidden_out = np.maximum(obs @ arrays["w0"].T + arrays["b0"], 0)
hidden_out = np.maximum(hidden_out @ arrays["w1"].T + arrays["b1"], 0)
mean = hidden_out @ arrays["w_mu"].T + arrays["b_mu"]
from ssmrl_lib.data.collect import collect_episodes
from ssmrl_lib.envs import get_task
episodes = collect_episodes(get_task("halfcheetah").gym_id, actor.sampler(np.random.default_rng(2)),
                            seed=0, steps=200, n_envs=2)
print(json.dumps({
    "portable": [digest(actor(obs)), digest(sampled(obs)), digest(sampled(obs))] + [
        digest(np.concatenate([e.observations.ravel(), e.actions.ravel(), e.rewards]))
        for e in episodes],
    "numpy": [digest(hidden_out), digest(np.tanh(mean)), digest(np.exp(mean))],
}))
"""


OTHER = portable.other_kernels()
SETTINGS = {
    "as found": {},
    "OpenBLAS Prescott kernel": {"OPENBLAS_CORETYPE": OTHER["OPENBLAS_CORETYPE"]},
    "OpenBLAS Sandybridge kernel": {"OPENBLAS_CORETYPE": "Sandybridge"},
    "NumPy baseline SIMD only": {"NPY_DISABLE_CPU_FEATURES": OTHER["NPY_DISABLE_CPU_FEATURES"]},
}


def _probe(overrides: dict[str, str]) -> dict[str, list[str]]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    result = subprocess.run([sys.executable, "-c", PROBE], env=env | overrides,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_actions_are_the_same_bits_whatever_kernels_the_cpu_gets():
    outputs = {name: _probe(overrides) for name, overrides in SETTINGS.items()}
    found = outputs["as found"]
    if all(output["numpy"] == found["numpy"] for output in outputs.values()):
        pytest.skip("no forced kernel changes plain NumPy's results on this CPU: nothing to tell")
    for name, output in outputs.items():
        assert output["portable"] == found["portable"], name


def test_portable_arithmetic_agrees_with_numpy_to_rounding():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    weight_t = rng.standard_normal((40, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    exact = x.astype(np.float64) @ weight_t.astype(np.float64) + bias
    np.testing.assert_allclose(portable.linear(x, weight_t, bias), exact, rtol=0, atol=1e-12)
    assert portable.linear(x, weight_t, bias).dtype == np.float64
    np.testing.assert_allclose(portable.tanh(exact), np.tanh(exact), rtol=1e-15)
    np.testing.assert_allclose(portable.exp(exact), np.exp(exact), rtol=1e-15)


def test_an_actor_acts_on_one_observation_as_on_a_batch_of_one():
    rng = np.random.default_rng(2)
    arrays = {"w0": rng.standard_normal((8, 3)).astype(np.float32),
              "b0": np.zeros(8, np.float32),
              "w_mu": rng.standard_normal((2, 8)).astype(np.float32),
              "b_mu": np.zeros(2, np.float32),
              "low": np.array([-1.0, 0.0], np.float32), "high": np.array([1.0, 4.0], np.float32)}
    actor = ActorPolicy(arrays, {})
    obs = rng.standard_normal(3).astype(np.float32)
    single, batch = actor(obs), actor(obs[None])
    assert single.shape == (2,) and batch.shape == (1, 2) and single.dtype == np.float32
    np.testing.assert_array_equal(single, batch[0])
    assert np.all((single >= arrays["low"]) & (single <= arrays["high"]))
