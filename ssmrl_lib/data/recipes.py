"""D4RL's dataset recipes, rebuilt from our own behavior policies as Minari datasets.

Each recipe (Fu et al. 2020, D4RL; replication-targets.md §B) is an object in one table,
:data:`RECIPES`, that ``ssmrl data build``/``make data`` (:mod:`rebuild`), ``ssmrl data make``
(which keeps off the recipes' ids) and the Datasets chapter read:

* ``random``: a uniformly random policy;
* ``medium``: the checkpoint chosen at D4RL's medium level (:mod:`checkpoint_choice`);
* ``medium-replay``: every transition the replay buffer held when the medium checkpoint was
  taken, cut into episodes (:mod:`replay`);
* ``medium-expert``: ``medium`` and ``expert`` together;
* ``expert``: the best checkpoint, only if it reached ``EXPERT_LEVEL``.

``random``/``medium``/``expert`` run 1M steps (fewer with ``steps``) in ``n_envs`` environments
in lockstep (:func:`collect_episodes`). A checkpoint acts by ``ACTION_SAMPLING``: ``"sample"``
(a draw from its tanh-Gaussian, as D4RL's and Minari's generation scripts did) or ``"mean"``
(its deterministic action); a policy whose training scored only its mean actions keeps acting
by its mean (:func:`recipe_action_sampling`). Each dataset is deterministic: the same
checkpoint, seed, ``n_envs`` and code give the same arrays, on any CPU (the actor computes by
:mod:`portable` arithmetic; MuJoCo is portable already). It is written under a temporary
store and moved into place only when complete, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from minari.data_collector import EpisodeBuffer

from ssmrl_lib.data.actor import load_actor
from ssmrl_lib.data.checkpoint_choice import (
    D4RL_DATASET_SCORES,
    EXPERT_LEVEL,
    SAMPLING_MODES,
    NotAvailable,
    choose_checkpoint,
    recipe_action_sampling,
    sampling_rule,
    score_column,
)
from ssmrl_lib.data.collect import collect_episodes, random_policy
from ssmrl_lib.data.files import file_sha256
from ssmrl_lib.data.local_store import building, dataset_lock, local_dataset_ids
from ssmrl_lib.data.minari_write import create_dataset
from ssmrl_lib.data.policy_dir import CHECKPOINT_DIR, task_policy_dir
from ssmrl_lib.data.portable import ACTOR_ARITHMETIC
from ssmrl_lib.data.replay import REPLAY_FILE, replay_episodes
from ssmrl_lib.envs import LocomotionTask, normalized_score
from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.paths import shown
from ssmrl_lib.provenance import git_commit

DEFAULT_STEPS = 1_000_000
EXPERT_SEED_OFFSET = 1_000_000  # expert episode k is reset with seed + EXPERT_SEED_OFFSET + k

Episodes = list[EpisodeBuffer]
# Where a dataset's episodes came from, stored as JSON in its ``ssmrl`` metadata.
Provenance = dict[str, Any]


def recipe_dataset_id(task: LocomotionTask, recipe: str) -> str:
    """The id of ``task``'s dataset made by ``recipe``: ``ssmrl/<env>/<recipe>-v0``."""
    return f"ssmrl/{task.name}/{recipe}-v0"


@dataclass(frozen=True)
class RecipeRequest:
    """One build's settings, as every recipe reads them."""

    task: LocomotionTask
    steps: int
    seed: int
    n_envs: int
    policy_dir: Path
    checkpoint: Path | None  # given instead of the chosen one (checkpoint recipes only)
    progress: bool
    action_sampling: str  # how checkpoints act: one of SAMPLING_MODES


@dataclass(frozen=True)
class Recipe(ABC):
    """How one kind of dataset is collected.

    ``build_cost``: the relative cost of building it, so that ``make data`` starts the long
    jobs first: collected steps (random also writes ~45k short episodes for Hopper and
    Walker2d) per step cost, which :mod:`rebuild` scales by the task's.
    """

    name: str
    description: str
    build_cost: float

    @property
    def parts(self) -> tuple[str, ...]:
        """The recipes whose datasets this one is made of (built before it)."""
        return ()

    @property
    def acts_by_checkpoint(self) -> bool:
        """Whether a policy checkpoint chooses the actions (so how it acts is recorded)."""
        return False

    def check_available(self, request: RecipeRequest) -> None:
        """Raise ``NotAvailable`` if the recipe cannot be built now, before collecting."""
        return None

    @abstractmethod
    def collect(self, request: RecipeRequest) -> tuple[Episodes, Provenance]:
        """The dataset's episodes and where they came from."""

    def outdated_reason(self, built: Provenance, task: LocomotionTask, policy_dir: Path) -> str:
        """Why a dataset built with provenance ``built`` no longer follows the recipe ("" if it
        does). While the recipe is not available, only a source gone from the policy directory
        can outdate it."""
        return ""


@dataclass(frozen=True)
class RandomRecipe(Recipe):
    """Uniformly random actions (:func:`random_policy`, seeded with the build's seed)."""

    def collect(self, request: RecipeRequest) -> tuple[Episodes, Provenance]:
        env = gym.make(request.task.gym_id, disable_env_checker=True)
        act = random_policy(env.action_space, request.seed)
        env.close()
        buffers = collect_episodes(request.task.gym_id, act, request.seed, steps=request.steps,
                                   n_envs=request.n_envs, progress=request.progress)
        return buffers, {"algorithm_name": "random", "policy": "uniform random actions"}


@dataclass(frozen=True)
class CheckpointRecipe(Recipe):
    """The episodes of the checkpoint chosen at level ``name`` (or a given one).

    ``seed_offset``: episodes start from seed + offset, so that expert episodes start from
    other initial states than medium's (medium-expert holds both). ``minimum_score``: a given
    checkpoint must have been evaluated at least this high to be called ``name``.
    """

    seed_offset: int = 0
    minimum_score: float | None = None

    @property
    def acts_by_checkpoint(self) -> bool:
        return True

    def first_episode_seed(self, seed: int) -> int:
        """The reset seed of the first episode of a build with ``seed``."""
        return seed + self.seed_offset

    def check_available(self, request: RecipeRequest) -> None:
        choose_checkpoint(request.task, self.name, request.policy_dir, request.action_sampling)

    def collect(self, request: RecipeRequest) -> tuple[Episodes, Provenance]:
        task, action_sampling = request.task, request.action_sampling
        if request.checkpoint is not None:
            path, chosen_by = Path(request.checkpoint), "given"
        else:
            path = choose_checkpoint(task, self.name, request.policy_dir, action_sampling).path
            chosen_by = "evaluation"
        actor = load_actor(path, task)
        evaluation = actor.meta.get("evaluation", {})
        # The score of the actions collected, where the checkpoint records it.
        score_key = score_column(action_sampling)
        score_key = score_key if score_key in evaluation else "normalized_mean"
        score = evaluation.get(score_key, float("nan"))
        if self.minimum_score is not None and not score >= self.minimum_score:
            raise NotAvailable(
                f"checkpoint {path} was evaluated at {score} ({score_key}), below the "
                f"{self.name} level ({self.minimum_score:.0f}); it is not an {self.name}"
            )
        first_seed = self.first_episode_seed(request.seed)
        act = (actor if action_sampling == "mean"
               else actor.sampler(np.random.default_rng(first_seed)))
        buffers = collect_episodes(task.gym_id, act, first_seed, steps=request.steps,
                                   n_envs=request.n_envs, progress=request.progress)
        score_actions = "sample" if score_key.startswith("sampled") else "mean"
        return buffers, {
            "algorithm_name": f"{actor.meta.get('algorithm', '?')} (stable-baselines3)",
            "policy": f"{actor.meta.get('algorithm')} checkpoint {path.name}, step "
            f"{actor.meta.get('step')}, evaluated at normalized score {score:.1f} "
            f"({'sampled' if score_actions == 'sample' else 'mean'} actions)",
            "checkpoint": path.name,
            "checkpoint_sha256": file_sha256(path),
            "checkpoint_step": actor.meta.get("step"),
            "checkpoint_normalized_score": score,
            "checkpoint_score_actions": score_actions,
            "checkpoint_deterministic_score": evaluation.get("normalized_mean"),
            "chosen_by": chosen_by,
            "first_episode_seed": first_seed,
            "action_sampling": action_sampling,
            "actor_arithmetic": ACTOR_ARITHMETIC,
        }

    def outdated_reason(self, built: Provenance, task: LocomotionTask, policy_dir: Path) -> str:
        try:
            source = choose_checkpoint(task, self.name, policy_dir).path
        except NotAvailable:
            # Nothing to rebuild from; but a dataset whose checkpoint left the policy directory
            # (a retrained policy swapped in) could not be built by a fresh clone either.
            return self._gone_reason(built, policy_dir)
        if built.get("checkpoint_sha256") != file_sha256(source):
            was = built.get("checkpoint") or "another checkpoint"
            same_name = " (another file of that name)" if was == source.name else ""
            return (f"{self.name} was built from {was}; the recipe now takes "
                    f"{source.name}{same_name}")
        sampled, wanted = built.get("action_sampling", "mean"), recipe_action_sampling(
            task, policy_dir)
        if sampled != wanted:
            return (f"{self.name} was collected with {sampled} actions; the recipe now takes "
                    f"{wanted} actions")
        arithmetic = built.get("actor_arithmetic", "numpy-float32 (CPU-dependent)")
        if arithmetic != ACTOR_ARITHMETIC:
            return (f"{self.name}'s actions were computed by {arithmetic} arithmetic; the "
                    f"recipe now computes them by {ACTOR_ARITHMETIC}, the same on every CPU")
        return ""

    def _gone_reason(self, built: Provenance, policy_dir: Path) -> str:
        """Why ``built``'s checkpoint is no longer in ``policy_dir`` ("" while one there has its
        hash). Only the hash tells: a retrained policy's checkpoints may reuse the old names."""
        folder = policy_dir / CHECKPOINT_DIR
        if not folder.is_dir():  # no policy there at all (a mistyped --policies-dir?): no verdict
            return ""
        recorded = built.get("checkpoint_sha256")
        # The recorded name first: it holds the checkpoint unless the policy was replaced.
        candidates = [folder / str(built.get("checkpoint")), *sorted(folder.glob("*.npz"))]
        if recorded and any(path.is_file() and file_sha256(path) == recorded
                            for path in candidates):
            return ""
        was = built.get("checkpoint") or "a checkpoint"
        if recorded:
            was += f" (sha256 {recorded[:12]})"
        return f"{self.name} was built from {was}, which {shown(policy_dir)} no longer holds"


@dataclass(frozen=True)
class ReplayRecipe(Recipe):
    """The exported replay transitions (``replay_medium.npz``), cut into episodes."""

    def collect(self, request: RecipeRequest) -> tuple[Episodes, Provenance]:
        if request.checkpoint is not None:
            raise SsmrlError(f"{self.name} comes from the stored replay transitions, not "
                             "a checkpoint")
        path = request.policy_dir / REPLAY_FILE
        buffers, meta = replay_episodes(path, request.task)
        return buffers, {
            "algorithm_name": "replay buffer",
            "policy": f"replay buffer of the behavior policy up to step {meta['until_step']}",
            "replay_file_sha256": file_sha256(path),
            "replay_until_step": meta["until_step"],
        }

    def outdated_reason(self, built: Provenance, task: LocomotionTask, policy_dir: Path) -> str:
        path = policy_dir / REPLAY_FILE
        if path.is_file() and built.get("replay_file_sha256") != file_sha256(path):
            return f"{self.name} was built from other replay transitions; the recipe now " \
                f"takes {path.name}"
        return ""


# What a combined dataset records of each part's provenance.
_PART_KEYS = ("algorithm_name", "policy", "checkpoint", "checkpoint_sha256", "checkpoint_step",
              "checkpoint_normalized_score", "checkpoint_score_actions",
              "checkpoint_deterministic_score", "chosen_by", "first_episode_seed",
              "action_sampling", "actor_arithmetic")


@dataclass(frozen=True)
class CombinedRecipe(Recipe):
    """The datasets of checkpoint recipes ``part_names`` together, in that order (D4RL's
    medium-expert is its medium and expert datasets together). A part is taken from the store
    where the stored dataset holds exactly what collecting would give, else collected now."""

    part_names: tuple[str, ...] = ()

    @property
    def parts(self) -> tuple[str, ...]:
        return self.part_names

    @property
    def acts_by_checkpoint(self) -> bool:
        return any(RECIPES[part].acts_by_checkpoint for part in self.parts)

    def check_available(self, request: RecipeRequest) -> None:
        for part in reversed(self.parts):  # the rarer level (expert) is named first
            RECIPES[part].check_available(request)

    def collect(self, request: RecipeRequest) -> tuple[Episodes, Provenance]:
        self.check_available(request)  # fail before collecting a million steps, not after
        request = replace(request, checkpoint=None)  # each part takes its chosen checkpoint
        episodes: Episodes = []
        infos: dict[str, Provenance] = {}
        for part in self.parts:
            buffers, infos[part] = (self._stored(part, request)
                                    or RECIPES[part].collect(request))
            for episode in buffers:
                episodes.append(EpisodeBuffer(**{**episode.__dict__, "id": len(episodes)}))
        return episodes, {
            "algorithm_name": " + ".join(info["algorithm_name"] for info in infos.values()),
            "policy": " and ".join(f"{part} ({info['policy']})" for part, info in infos.items()),
            **infos,
        }

    def _stored(self, part: str, request: RecipeRequest) -> tuple[Episodes, Provenance] | None:
        """The stored ``part`` dataset, if it was collected from the same checkpoint, seeds,
        ``n_envs``, actions and number of steps as this request would collect."""
        task, seed = request.task, request.seed
        name = recipe_dataset_id(task, part)
        if name not in local_dataset_ids():
            return None
        first_seed = RECIPES[part].first_episode_seed(seed)
        try:
            dataset = minari.load_dataset(name)
            provenance = json.loads(dataset.storage.metadata["ssmrl"])
            chosen = choose_checkpoint(task, part, request.policy_dir, request.action_sampling)
            same_policy_and_seeds = (
                provenance.get("checkpoint_sha256") == file_sha256(chosen.path)
                and provenance.get("seed") == seed
                and provenance.get("n_envs") == request.n_envs
                # a dataset that records no first seed started at ``seed``
                and provenance.get("first_episode_seed", seed) == first_seed
                # and one that records no action sampling took the mean action
                and provenance.get("action_sampling", "mean") == request.action_sampling
                and provenance.get("actor_arithmetic") == ACTOR_ARITHMETIC
            )
            if not same_policy_and_seeds:
                return None
            stored = list(dataset.iterate_episodes())
            seeds = [m.get("seed") for m in dataset.storage.get_episode_metadata(
                range(len(stored)))]
        except Exception:  # a damaged or foreign dataset is simply not reused
            return None
        total, last = sum(len(e.rewards) for e in stored), len(stored[-1].rewards)
        if not total - last < request.steps <= total:  # collection stops past ``steps``
            return None
        buffers = [
            EpisodeBuffer(id=e.id, seed=episode_seed, observations=e.observations,
                          actions=e.actions, rewards=e.rewards, terminations=e.terminations,
                          truncations=e.truncations)
            for e, episode_seed in zip(stored, seeds, strict=True)
        ]
        return buffers, {key: provenance.get(key) for key in _PART_KEYS} | {
            "first_episode_seed": first_seed, "action_sampling": request.action_sampling,
            "taken_from": name}

    def outdated_reason(self, built: Provenance, task: LocomotionTask, policy_dir: Path) -> str:
        for part in self.parts:
            reason = RECIPES[part].outdated_reason(built.get(part, {}), task, policy_dir)
            if reason:
                return reason
        return ""


# In D4RL's order (the order of `ssmrl data build --quality all` and of the chapter's tables).
RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        RandomRecipe("random", "uniformly random actions", build_cost=1.2),
        CheckpointRecipe("medium", "the checkpoint at D4RL's medium level", build_cost=1.0),
        ReplayRecipe("medium-replay", "the replay buffer up to the medium checkpoint",
                     build_cost=0.05),
        CombinedRecipe("medium-expert", "the medium and expert datasets together",
                       build_cost=0.1, part_names=("medium", "expert")),
        CheckpointRecipe("expert", "the best checkpoint, if it reached the expert level",
                         build_cost=1.0, seed_offset=EXPERT_SEED_OFFSET,
                         minimum_score=EXPERT_LEVEL),
    )
}


def build_dataset(
    task: LocomotionTask,
    quality: str,
    steps: int | None = None,
    seed: int = 0,
    n_envs: int = 8,
    policy_dir: Path | None = None,
    checkpoint: Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    action_sampling: str | None = None,
    locked: bool = False,
) -> minari.MinariDataset:
    """Build ``ssmrl/<env>/<quality>-v0`` in the local Minari store by the recipe ``quality``.

    ``checkpoint`` overrides the chosen policy for ``medium``/``expert``: its evaluated level
    is recorded (``chosen_by: given``), and an expert checkpoint must still have reached
    ``EXPERT_LEVEL``. ``steps`` shortens the 1M-step collections for quick builds.
    ``action_sampling`` (``SAMPLING_MODES``) is how medium and expert checkpoints act, by
    default :func:`recipe_action_sampling`; it is recorded with the reason. ``locked``: the
    caller already holds the id's :func:`local_store.dataset_lock`.
    """
    check_choice("quality", quality, RECIPES)
    if action_sampling is not None:
        check_choice("action sampling", action_sampling, SAMPLING_MODES)
    steps = DEFAULT_STEPS if steps is None else steps
    if steps <= 0:
        raise SsmrlError("steps must be positive")
    if seed < 0 or n_envs < 1:
        raise SsmrlError(
            f"seed must be a non-negative integer and n_envs a positive one, got {seed}, {n_envs}"
        )
    name = recipe_dataset_id(task, quality)
    policy_dir = task_policy_dir(task.name, policy_dir)
    rule = "given" if action_sampling is not None else sampling_rule(task, policy_dir)
    request = RecipeRequest(
        task, steps, seed, n_envs, policy_dir, checkpoint, progress,
        action_sampling or recipe_action_sampling(task, policy_dir),
    )
    with nullcontext() if locked else dataset_lock(name):
        if name in local_dataset_ids() and not overwrite:
            raise SsmrlError(f"dataset {name!r} already exists; pass --overwrite to replace it")
        _write(RECIPES[quality], request, name, rule)
    return minari.load_dataset(name)


def _write(recipe: Recipe, request: RecipeRequest, name: str, rule: str) -> None:
    task = request.task
    code_commit = git_commit()  # the code that collects, not whatever is checked out after
    buffers, provenance = recipe.collect(request)
    returns = np.array([float(np.sum(b.rewards)) for b in buffers])
    scores = normalized_score(task, returns)
    provenance |= {
        "recipe": recipe.name,
        "seed": request.seed,
        "n_envs": request.n_envs,
        "env_id": task.gym_id,
        "gymnasium": gym.__version__,
        "code_commit": code_commit,
        "normalized_score_mean": round(float(scores.mean()), 3),
        "normalized_score_std": round(float(scores.std()), 3),
        "d4rl_dataset_normalized_score": D4RL_DATASET_SCORES[task.name][recipe.name],
    }
    if recipe.acts_by_checkpoint:
        provenance["action_sampling_rule"] = rule
    with building(name), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`author", category=UserWarning)
        dataset = create_dataset(
            name,
            buffers,
            env=task.gym_id,
            eval_env=task.gym_id,
            algorithm_name=provenance["algorithm_name"],
            code_permalink=f"ssmrl commit {provenance['code_commit']}",
            ref_min_score=task.ref_min_score,
            ref_max_score=task.ref_max_score,
            description=f"D4RL-style {recipe.name} dataset of {task.gym_id} rebuilt by ssmrl: "
            f"{provenance['policy']}",
        )
        dataset.storage.update_metadata({"ssmrl": json.dumps(provenance, sort_keys=True)})
        del dataset


def outdated_reason(task: LocomotionTask, quality: str, policy_dir: Path | None = None) -> str:
    """Why the stored ``quality`` dataset no longer follows its recipe ("" if it does).

    It does not when the checkpoint the recipe chooses now (or the replay file) is not the one
    it was built from: the policy trained on into a closer medium or a better expert. While the
    recipe is not available, a dataset is outdated only when the policy directory no longer holds
    its checkpoint (a retrained policy was swapped in): ``make data`` then removes it.
    """
    policy_dir = task_policy_dir(task.name, policy_dir)
    try:
        built = json.loads(
            minari.load_dataset(recipe_dataset_id(task, quality)).storage.metadata["ssmrl"])
    except Exception:
        return ""  # not one of ours, or unreadable: loading it reports that
    return RECIPES[quality].outdated_reason(built, task, policy_dir)
