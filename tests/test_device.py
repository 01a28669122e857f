"""The device choice (``--device`` / ``$SSMRL_DEVICE``) and what the GPU paths do on a CPU."""

from __future__ import annotations

import pytest
import torch

from ssmrl_lib import cli
from ssmrl_lib.device import DEVICE_VARIABLE, default_device, module_device
from ssmrl_lib.errors import SsmrlError
from ssmrl_lib.evaluate.peak_memory import PeakMemory
from ssmrl_lib.scan import resolve_scan_backend, scan_provenance
from ssmrl_lib.train.offline import DeviceLosses

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")


def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.delenv(DEVICE_VARIABLE, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device().type == expected
    monkeypatch.setenv(DEVICE_VARIABLE, "cpu")
    assert default_device() == torch.device("cpu")


def test_bad_device_choices(monkeypatch):
    monkeypatch.setenv(DEVICE_VARIABLE, "tpu")
    with pytest.raises(SsmrlError, match=r"unknown device .* 'tpu'; valid choices: auto, cpu"):
        default_device()


@needs_no_gpu
def test_cuda_without_a_gpu_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setenv(DEVICE_VARIABLE, "auto")  # restored after the CLI exports --device
    assert cli.main(["notebook", "01_dt_replication", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "device 'cuda'" in err and "no CUDA GPU" in err and "auto, cpu" in err


def test_cli_rejects_an_unknown_device_before_any_work(monkeypatch, capsys):
    monkeypatch.setenv(DEVICE_VARIABLE, "auto")
    assert cli.main(["notebook", "no_such_notebook", "--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "ssmrl: error: unknown device ($SSMRL_DEVICE) 'gpu'; valid choices: auto, cpu, cuda"
    )


def test_module_device():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")  # no parameters at all


def test_scan_backend_resolution_on_the_cpu():
    assert resolve_scan_backend("auto", "cpu") == "fused"
    assert resolve_scan_backend("associative", "cpu") == "associative"
    assert scan_provenance("auto", "cpu").startswith("fused")
    # without mamba-ssm (never installed on CPU machines) a GPU falls back to the fused scan
    assert resolve_scan_backend("auto", "cuda") in ("cuda", "fused")


def test_device_losses_are_the_items_and_stop_at_the_first_nan():
    losses = [torch.tensor(v) for v in (0.1, 0.2, 1 / 3)]
    pending, recorded = DeviceLosses(), [9.0]
    for loss in losses:
        pending.add(loss)
    pending.flush_into(recorded)
    assert recorded == [9.0, *(loss.item() for loss in losses)]
    pending.add(torch.tensor(0.5))
    pending.add(torch.tensor(float("nan")))
    with pytest.raises(SsmrlError, match="training diverged: loss is nan at step 5"):
        pending.flush_into(recorded)


def test_peak_memory_takes_the_gpu_figure_only_for_gpu_work():
    with PeakMemory("cpu") as memory:
        torch.ones(1000)
    assert memory.as_dict()["gpu_peak_mib"] is None
