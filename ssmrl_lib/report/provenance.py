"""The book's provenance boxes: which profile, data, hardware and commit produced a chapter's
numbers, and where a recorded benchmark ran."""

from __future__ import annotations

from ssmrl_lib.provenance import git_commit, library_versions


def benchmark_caption(machine: dict) -> str:
    """One sentence naming where a recorded benchmark ran, for the chapter that shows it."""
    where = machine["gpu"] or f"{machine['cpu']} ({machine['logical_cpus']} logical CPUs)"
    return (
        f"Recorded on {where}, {machine['threads']} torch thread(s), torch {machine['torch']}, "
        f"code commit `{machine['commit']}`, 1-minute load average "
        f"{machine['load_average_1min']:.1f} when it finished."
    )


def provenance_markdown(
    profile: str, results: list[dict], inputs: list[str], notebook_wall_time_s: float,
    source: str | None = None,
) -> str:
    """A MyST admonition saying which profile, data, hardware and commit produced the numbers.

    ``inputs`` are the datasets the runs learned from, or, with ``source`` (the suite they come
    from, e.g. ``popgym``), the environments they trained in. The runs' time is their training
    time where they record one (the online runs' ``train_time_s``), else their wall time.
    """
    hardware_seen = sorted({r["hardware"] for r in results})
    # results recorded before runs named their device ran on the CPU
    devices = sorted({r.get("device", "cpu") for r in results})
    scans = sorted({r["scan_backend"] for r in results if "scan_backend" in r})
    commits = sorted({r["commit"] for r in results})
    trained = bool(results) and all("train_time_s" in r for r in results)
    run_time = sum(r["train_time_s" if trained else "wall_time_s"] for r in results)
    versions = results[0]["versions"] if results else library_versions()
    version_text = ", ".join(f"{k} {v}" for k, v in versions.items())
    names = ", ".join(f"`{name}`" for name in inputs)
    lines = [
        "```{admonition} Provenance",
        ":class: note",
        f"- **profile**: `{profile}`",
        f"- **environments**: {names} ({source})" if source else f"- **datasets**: {names}",
        f"- **runs**: {len(results)}, total {'training' if trained else 'run wall'} time "
        f"{run_time / 60:.1f} min (this execution of the notebook: "
        f"{notebook_wall_time_s / 60:.1f} min; finished runs are reused from the cache)",
        f"- **hardware**: {'; '.join(hardware_seen)}",
        f"- **device**: {', '.join(devices)}"
        + (f"; Decision Mamba's scan: {'; '.join(scans)}" if scans else ""),
        f"- **code commit**: runs {', '.join(f'`{c}`' for c in commits)}; "
        f"notebook executed at `{git_commit()}`",
        f"- **versions**: {version_text}",
        "```",
    ]
    return "\n".join(lines)


def scale_note(profile: str, results: list[dict]) -> str:
    """A warning box unless the numbers come from the paper-scale profile on a GPU."""
    on_gpu = any(r.get("device") == "cuda" for r in results)
    if profile == "full" and on_gpu:
        return ""
    where = "on a GPU" if on_gpu else "on CPU only"
    return (
        "```{admonition} Not paper scale\n:class: warning\n"
        f"These numbers come from the `{profile}` profile, run {where}, far below the papers' "
        "budgets (see the provenance box). The `full` profile (the papers' settings, meant for "
        "a GPU) has not produced this chapter yet.\n```"
    )
