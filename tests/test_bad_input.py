"""Bad input: one clear line naming the problem and the choices, non-zero exit, nothing done."""

import os
import stat
from pathlib import Path

import pytest

from ssmrl_lib import cli, notebooks, profiles
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.experiments import bsuite_memory, meta_rl_dmc, offline_rl, popgym_ppo
from ssmrl_lib.runs.store import atomic_write_json


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def test_unknown_environment(capsys):
    code, err = run_cli(capsys, "data", "make", "--env", "hoper", "--id", "x/y-v0", "--steps", "5")
    assert code == 2
    assert err == (
        "ssmrl: error: unknown environment 'hoper'; valid choices: hopper, halfcheetah, walker2d"
    )


def test_unknown_dataset(capsys):
    code, err = run_cli(capsys, "data", "info", "nobody/nothing-v0")
    assert code == 2 and len(err.splitlines()) == 1
    assert "unknown dataset 'nobody/nothing-v0'" in err and "ssmrl data make" in err


def test_unknown_profile_and_parameter():
    expected = "unknown profile 'fast'; valid choices: smoke, quick, full"
    with pytest.raises(SsmrlError, match=expected):
        offline_rl.settings_for("fast")
    with pytest.raises(SsmrlError, match="unknown parameter 'step'; valid choices: .*steps"):
        offline_rl.settings_for("quick", step=10)
    with pytest.raises(SsmrlError, match="unknown environment 'ant'"):
        offline_rl.settings_for("quick", envs=["ant"])
    with pytest.raises(SsmrlError, match="parameter 'train.steps' = 'many': must be an integer"):
        offline_rl.settings_for("quick", **{"train.steps": "many"})


def test_overrides_apply_on_top_of_the_profile():
    settings = offline_rl.settings_for("smoke", envs=["walker2d"], seeds=4,
                                       **{"train.steps": None, "eval.episodes": 7})
    assert settings.envs == ("walker2d",) and settings.seeds == 4
    assert settings.train == offline_rl.PROFILES["smoke"].train
    assert settings.eval.episodes == 7
    assert settings.eval.every == offline_rl.PROFILES["smoke"].eval.every


def test_nested_settings_are_checked_by_their_dotted_names():
    with pytest.raises(SsmrlError, match=r"unknown parameter 'ppo\.learnig_rate'; valid "
                                         r"choices: envs, models, seeds, .*ppo\.learning_rate"):
        popgym_ppo.settings_for("smoke", **{"ppo.learnig_rate": 1e-3})
    with pytest.raises(SsmrlError, match=r"unknown parameter 'learning_rate'; .*ppo\.learn"):
        popgym_ppo.settings_for("smoke", learning_rate=1e-3)  # a name that moved
    with pytest.raises(SsmrlError, match="unknown parameter 'network.core'"):
        popgym_ppo.settings_for("smoke", **{"network.core": "gru"})  # set from `models`
    with pytest.raises(SsmrlError, match="unknown parameter 'a2c.epochs'"):
        bsuite_memory.settings_for("smoke", **{"a2c.epochs": 4})  # what makes PPO A2C
    with pytest.raises(SsmrlError, match="parameter 'ppo.learning_rate' = -1.0: must be a "
                                         "finite number above 0"):
        popgym_ppo.settings_for("smoke", **{"ppo.learning_rate": -1})
    with pytest.raises(SsmrlError, match="parameter 'network.encoder' = \\[16, 0\\]"):
        popgym_ppo.settings_for("smoke", **{"network.encoder": [16, 0]})
    with pytest.raises(SsmrlError, match="parameters ppo.num_envs=1000000000000, ppo.unroll=64, "
                                         "network.hidden=16, network.s5_layers=1 imply"):
        popgym_ppo.settings_for("smoke", **{"ppo.num_envs": 10**12})
    with pytest.raises(SsmrlError, match="unknown S5 block 'bogus'"):
        meta_rl_dmc.settings_for("smoke", **{"network.s5_block": "bogus"})
    settings = popgym_ppo.settings_for("smoke", **{"ppo.learning_rate": 1e-4, "ppo.gamma": 1})
    assert (settings.ppo.learning_rate, settings.ppo.gamma) == (1e-4, 1.0)
    assert settings.ppo.unroll == popgym_ppo.PROFILES["smoke"].ppo.unroll
    assert settings.network == popgym_ppo.PROFILES["smoke"].network


def test_unknown_notebook_parameter_is_rejected_before_running(capsys, tmp_path):
    code, err = run_cli(capsys, "notebook", "01_dt_replication", "-p", "stepz", "5",
                        "--output-dir", str(tmp_path))
    assert code == 2
    assert "unknown parameter of notebook 01_dt_replication 'stepz'; valid choices:" in err
    assert "train.steps" in err
    assert not list(tmp_path.iterdir())


def test_misspelt_dotted_setting_is_rejected_before_running(capsys, tmp_path):
    code, err = run_cli(capsys, "notebook", "03_s5_popgym", "-p", "profile", "smoke",
                        "-p", "ppo.learnig_rate", "1", "--output-dir", str(tmp_path))
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("ssmrl: error: unknown parameter of notebook 03_s5_popgym "
                          "'ppo.learnig_rate'; valid choices: profile, envs, models, seeds, ")
    assert "ppo.learning_rate" in err and "network.s5_block" in err
    assert not list(tmp_path.iterdir())


def test_settings_without_a_variable_go_into_the_overrides():
    parameters = notebooks.with_overrides(
        "05_meta_rl", {"profile": "smoke", "seeds": 1, "ppo.unroll": 16,
                       "dmc.ppo.unroll": 8, "overrides": {"network.hidden": 8}})
    assert parameters == {"profile": "smoke", "seeds": 1, "overrides": {
        "network.hidden": 8, "ppo.unroll": 16, "dmc.ppo.unroll": 8}}
    notebooks.check_parameters("05_meta_rl", parameters)
    with pytest.raises(SsmrlError, match="'seeds' is a variable of notebook 05_meta_rl"):
        notebooks.check_parameters("05_meta_rl", {"overrides": {"seeds": 2}})
    with pytest.raises(SsmrlError, match="parameter 'overrides' = 3: must be a mapping"):
        notebooks.check_parameters("05_meta_rl", {"overrides": 3})
    # a notebook without an overrides dict keeps every name for its own check
    assert notebooks.with_overrides("06_claims", {"steps": 1}) == {"steps": 1}


def test_unknown_notebook(capsys):
    code, err = run_cli(capsys, "notebook", "99_nothing")
    assert code == 2 and "unknown notebook '99_nothing'; valid choices: " in err
    assert "01_dt_replication" in err and "02_mamba_vs_dt" in err


def test_bad_profile_is_rejected_before_the_kernel_starts(capsys, tmp_path):
    code, err = run_cli(capsys, "notebook", "01_dt_replication", "-p", "profile", "fastest",
                        "--output-dir", str(tmp_path))
    assert code == 2
    assert err == "ssmrl: error: unknown profile 'fastest'; valid choices: smoke, quick, full"
    assert not list(tmp_path.iterdir())


def test_failing_notebook_leaves_no_output(capsys, tmp_path):
    """A failure inside the kernel (here: a dataset that is neither local nor downloadable
    offline, which the smoke profile must not make up) leaves no executed notebook."""
    code, err = run_cli(capsys, "notebook", "01_dt_replication", "-p", "profile", "smoke",
                        "-p", "dataset", "mujoco/{env}/medium-v0", "--output-dir", str(tmp_path))
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("ssmrl: error: notebook 01_dt_replication failed: SsmrlError: "
                          "unknown dataset 'mujoco/hopper/medium-v0' (not local, downloads off)")
    assert "ssmrl data build" in err and "make data" in err and "download" in err
    assert not list(tmp_path.iterdir())


def test_notebook_parameters_are_discoverable():
    assert "profile" in notebooks.notebook_parameters("01_dt_replication")


def _one_line_before_any_work(capsys, tmp_path, argv):
    """Run the CLI; return its one-line error after checking that nothing was created."""
    runs = Path(os.environ["SSMRL_RUNS_DIR"])
    before = sorted(runs.rglob("*")) if runs.exists() else []
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert (sorted(runs.rglob("*")) if runs.exists() else []) == before
    assert not list(tmp_path.iterdir())
    return err


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("train.steps", "0", "parameter 'train.steps' = 0: must be a positive integer"),
    ("train.steps", "-5", "parameter 'train.steps' = -5: must be a positive integer"),
    ("seeds", "-1", "parameter 'seeds' = -1: must be a positive integer"),
    ("envs", "[]", "parameter 'envs' = []: must be a non-empty list"),
    ("train.batch_size", "0", "parameter 'train.batch_size' = 0: must be a positive integer"),
    ("eval.episodes", "1000000000000",
     "parameters eval.episodes=1000000000000, cost_episodes=2 imply"),
    ("model.context_len", "1.5", "parameter 'model.context_len' = 1.5: must be an integer"),
    ("envs", "[hopper", "parameter 'envs' = '[hopper' is not valid YAML"),
    ("dataset", "badid", "malformed dataset id 'badid'"),
])
def test_notebook_parameters_are_checked_before_the_kernel_starts(
    capsys, tmp_path, name, value, expected
):
    err = _one_line_before_any_work(capsys, tmp_path, [
        "notebook", "01_dt_replication", "-p", "profile", "smoke", "-p", name, value,
        "--output-dir", str(tmp_path),
    ])
    assert err.startswith(f"ssmrl: error: {expected}")


@pytest.mark.parametrize(("notebook", "name", "value", "expected"), [
    ("00_datasets", "envs", "[ant]", "unknown environment 'ant'"),
    ("03_s5_popgym", "ppo.learning_rate", "-0.5", "parameter 'ppo.learning_rate' = -0.5"),
    ("03_s5_popgym", "ppo.learning_rate", ".nan",
     "'ppo.learning_rate' = nan: must be a finite number"),
    ("03_s5_popgym", "ppo.minibatches", "3", "num_envs (1) must be a multiple of minibatches"),
    ("04_bsuite_memory", "lengths", "[4, 0]", "parameter 'lengths' = [4, 0]"),
    ("04_bsuite_memory", "a2c.gae_lambda", "2", "parameter 'a2c.gae_lambda' = 2.0"),
    ("05_meta_rl", "dmc_seeds", "0", "parameter 'seeds' = 0"),
    ("05_meta_rl", "dmc.ppo.unroll", "0", "parameter 'ppo.unroll' = 0"),
    ("05_meta_rl", "network.s5_block", "bogus", "unknown S5 block 'bogus'"),
    ("06_claims", "campaign", "maybe", "parameter 'campaign' = 'maybe': must be true or false"),
])
def test_every_notebook_checks_its_parameters(capsys, tmp_path, notebook, name, value, expected):
    err = _one_line_before_any_work(capsys, tmp_path, [
        "notebook", notebook, "-p", "profile", "smoke", "-p", name, value,
        "--output-dir", str(tmp_path),
    ])
    assert expected in err


def test_scientific_notation_is_a_number():
    assert cli.parse_parameter("learning_rate", "1e-3") == 0.001
    assert cli.parse_parameter("learning_rate", "5E+2") == 500.0
    assert cli.parse_parameter("steps", "5") == 5 and cli.parse_parameter("x", "a1e3") == "a1e3"
    settings = offline_rl.settings_for(
        "smoke", **{"train.learning_rate": cli.parse_parameter("lr", "1e-3")})
    assert settings.train.learning_rate == 0.001
    # papermill's -y reads YAML 1.1, where 1e-4 is a string: a float setting takes it
    assert popgym_ppo.settings_for("smoke", **{"ppo.learning_rate": "1e-4"}).ppo.learning_rate \
        == 1e-4


@pytest.mark.parametrize(("argv", "expected"), [
    (["data", "make", "--env", "hopper", "--id", "x/y-v0", "--steps", "5", "--seed", "-1"],
     "argument --seed: must be an integer of at least 0, got '-1'"),
    (["data", "make", "--env", "hopper", "--id", "x/y-v0", "--steps", "0"],
     "argument --steps: must be a positive integer, got '0'"),
    (["data", "build", "--env", "hopper", "--quality", "random", "--n-envs", "0"],
     "argument --n-envs: must be a positive integer, got '0'"),
    (["data", "make", "--env", "hopper", "--id", "badid", "--steps", "5"],
     "malformed dataset id 'badid'"),
    (["data", "make", "--env", "hopper", "--id", "mujoco/hopper/medium-v0", "--steps", "5"],
     "Minari's hosted namespace mujoco/"),
    (["data", "make", "--env", "hopper", "--id", "ssmrl/hopper/medium-v0", "--steps", "5"],
     "`ssmrl data build --env hopper --quality medium`"),
    (["data", "make", "--env", "hopper", "--id", "ssmrl-smoke/hopper/random-v0", "--steps", "5"],
     "kept for the smoke profile's stand-ins"),
    (["notebook", "01_dt_replication", "-p", "profile", "smoke", "--output-dir", "/proc/x"],
     "cannot write the executed notebook to /proc/x"),
])
def test_cli_arguments_give_one_line(capsys, tmp_path, isolated_store, argv, expected):
    err = _one_line_before_any_work(capsys, tmp_path, argv)
    assert expected in err
    assert not any(p.name in ("badid", "mujoco", "x") for p in isolated_store.glob("*"))


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    def broken(_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_data_info", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["data", "info", "x/y-v0"])


def test_results_are_written_with_the_users_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "result.json", {"x": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o640


@pytest.mark.parametrize("name", notebooks.notebook_names())
def test_every_notebook_parameter_reaches_a_checked_setting(name):
    """A new notebook needs its entry in NOTEBOOK_SETTINGS, and each of its parameters must be
    a setting there (checked before the kernel starts), else this fails; so must every setting
    its overrides accept, each at the profile's own value."""
    assert name in notebooks.NOTEBOOK_SETTINGS
    switches = notebooks.notebook_switches(name, "smoke")  # the notebook's own, at defaults
    parameters = {p: switches.get(p) for p in notebooks.notebook_parameters(name)
                  if p not in ("profile", notebooks.OVERRIDES)}
    notebooks.check_parameters(name, {"profile": "smoke", **parameters})
    targets = dict(reversed(notebooks._targets(name)))  # prefix -> module
    for setting in notebooks.override_names(name, "smoke"):
        prefix, rest = notebooks._split(setting, list(targets), ".")
        value = profiles.setting_values(targets[prefix].PROFILES["smoke"])[rest]
        notebooks.check_parameters(name, {"profile": "smoke", "overrides": {
            setting: list(value) if isinstance(value, tuple) else value}})
