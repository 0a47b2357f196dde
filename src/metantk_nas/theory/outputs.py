"""Run the theory measurements and write every output file of ``metantk-nas theory``."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from metantk_nas.io import atomic_write_text, write_json
from metantk_nas.provenance import collect
from metantk_nas.theory.config import TheoryConfig
from metantk_nas.theory.report import CRITERIA, evaluate_claims, summary_markdown, write_figures, write_tables
from metantk_nas.theory.run import run_theory

OUTPUT_FILES = ("convergence.csv", "convergence.png", "convergence.svg", "kernel_regression.csv",
                "kernel_regression.png", "kernel_regression.svg", "summary.md", "theory.json")


def run_and_write(config: TheoryConfig, dataset_dir: str | Path, out_dir: str | Path, device: torch.device) -> dict:
    """Measure every width and write :data:`OUTPUT_FILES` under ``out_dir`` (``theory.json`` last)."""
    out = Path(out_dir)
    started = time.perf_counter()
    records, curves = run_theory(config, dataset_dir, device)
    seconds = time.perf_counter() - started
    claims = evaluate_claims(records)
    out.mkdir(parents=True, exist_ok=True)
    write_tables(out, records, curves)
    write_figures(out, records, curves)
    atomic_write_text(out / "summary.md", summary_markdown(claims, records, config.to_dict(), seconds))
    payload = {
        "config": config.to_dict(),
        "dataset": str(dataset_dir),
        "device": str(device),
        "seconds": seconds,
        "claims": claims,
        "criteria": CRITERIA,
        "widths": records,
        "provenance": collect(config.to_dict(), config.seed),
    }
    write_json(out / "theory.json", payload)
    return payload
