"""Bad input: one clear line naming the problem and the choices, non-zero exit, nothing done."""

import pytest

from ssmrl_lib import cli, notebooks
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.experiments import offline_rl


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
    with pytest.raises(SsmrlError, match="parameter 'steps' = 'many': must be an integer"):
        offline_rl.settings_for("quick", steps="many")


def test_overrides_apply_on_top_of_the_profile():
    settings = offline_rl.settings_for("smoke", envs=["walker2d"], seeds=4, steps=None)
    assert settings.envs == ("walker2d",) and settings.seeds == 4
    assert settings.steps == offline_rl.PROFILES["smoke"].steps


def test_unknown_notebook_parameter_is_rejected_before_running(capsys, tmp_path):
    code, err = run_cli(capsys, "notebook", "01_dt_replication", "-p", "stepz", "5",
                        "--output-dir", str(tmp_path))
    assert code == 2
    assert "unknown parameter of notebook 01_dt_replication 'stepz'; valid choices:" in err
    assert "steps" in err
    assert not list(tmp_path.iterdir())


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
                          "unknown dataset 'mujoco/hopper/medium-v0' (offline)")
    assert "ssmrl data build" in err and "make data" in err and "download" in err
    assert not list(tmp_path.iterdir())


def test_notebook_parameters_are_discoverable():
    assert "profile" in notebooks.notebook_parameters("01_dt_replication")
