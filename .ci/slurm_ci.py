"""Helpers of the SLURM CI stage (.ci/slurm.sh): test data, the miniature config, and the checks.

Run as ``python .ci/slurm_ci.py COMMAND ...`` from the scratch copy of the repository that
``.ci/slurm.sh`` makes; every command exits non-zero with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import yaml

# ---------------------------------------------------------------- the miniature
# Only sizes differ from config/paper.yaml; every other value (methods, kernels, λτ, ρ, learning
# rates, batch sizes, drop path, classifiers, C, search pairing, ...) is the paper's.

#: Test data: real-format fixtures with the real class counts (64/16/20 and 351/97/160).
FIXTURES = {"mini": ("rfs-mini", 0), "tiered": ("rfs-tiered", 1)}  # dataset -> (format, seed)
#: Evaluation queries per class; test classes get 5 shots + this many images (5-shot tasks need them).
EVAL_QUERIES = 1
TEST_IMAGES_PER_CLASS = 5 + EVAL_QUERIES
#: Train classes get fewer: search and theory tasks take 1 support + 1 query per class, and
#: training is the costliest step per image.
TRAIN_IMAGES_PER_CLASS = 2
#: Initial channels (paper 48). 4 is the smallest that the search supernet's GroupNorm accepts
#: (its last layer has 12·C channels in groups of 16).
CHANNELS = 4
#: Training epochs (paper 100 / 60); decay epochs are scaled with them (none left below 1 epoch).
EPOCHS = 1
SEARCH_SIZES = {"repeats": 1, "tasks": 1, "ntk_images": 2, "resolution": 8,
                "region_batches": 1, "region_batch_size": 10}
EVALUATE_SIZES = {"tasks": 10, "queries": EVAL_QUERIES, "n_aug": 1}
THEORY_SIZES = {"widths": [16, 32], "tasks": 2, "test_tasks": 2, "steps": 5, "checkpoints": 1,
                "jacobian_probes": 2, "image_size": 8}
#: Rules that request a GPU (resources gpu=1) and therefore `sbatch --gpus=1`.
GPU_RULES = {"search", "train", "evaluate"}


def fixtures(out: Path) -> None:
    """Write the miniImageNet and tieredImageNet fixtures under ``out/<dataset>``.

    The writers put the same number of images in every split; the train split's files come from a
    run with ``TRAIN_IMAGES_PER_CLASS``, the val and test splits' from one with ``TEST_IMAGES_PER_CLASS``.
    """
    import shutil
    import tempfile

    from metantk_nas.data.fixtures import FIXTURE_WRITERS

    for name, (fmt, seed) in FIXTURES.items():
        folder = FIXTURE_WRITERS[fmt](out / name, images_per_class=TRAIN_IMAGES_PER_CLASS, seed=seed)
        with tempfile.TemporaryDirectory(dir=out) as scratch:
            full = FIXTURE_WRITERS[fmt](scratch, images_per_class=TEST_IMAGES_PER_CLASS, seed=seed)
            replaced = sorted(f.name for f in full.iterdir() if "train" not in f.name)
            if not replaced or len(replaced) == len(list(full.iterdir())):
                raise SystemExit(f"{fmt} fixture: cannot tell the train split's files from the others")
            for file in replaced:
                shutil.copyfile(full / file, folder / file)
        print(f"{name}: {fmt} fixture in {folder}: {TRAIN_IMAGES_PER_CLASS} images per train class, "
              f"{TEST_IMAGES_PER_CLASS} per val/test class ({', '.join(replaced)})")


#: The methods each ``--methods`` choice keeps from paper.yaml's experiments: ``all`` (Table 1 and the
#: Table 2 ablation), ``table1`` (MetaNTK-NAS and MetaNAS(retrained): what the checks need; the default in
#: CI, where the ablation's six further searches do not fit the time budget of a 2-core machine) and
#: ``quick`` (no pruning search: a check of the SLURM machinery only; Table 1 then has the MetaNAS rows).
METHOD_SETS = {"all": None, "table1": ("metantk-nas", "metanas"), "quick": ("metanas", "random")}


def scaled_decay(decay: list[int], paper_epochs: int, epochs: int) -> list[int]:
    """The paper's decay epochs at the same fractions of ``epochs`` (ascending, each in 1..epochs-1)."""
    scaled = {math.floor(d * epochs / paper_epochs) for d in decay}
    return sorted(d for d in scaled if 0 < d < epochs)


def overrides(paper_path: Path, data: Path, out: Path, methods: str = "all") -> None:
    """Write the overrides YAML: dataset roots and sizes, generated from config/paper.yaml.

    A later configfile replaces lists wholesale, so ``experiments`` is restated from paper.yaml
    with only its seeds (the first) and its training sizes changed, and its methods restricted to
    ``METHOD_SETS[methods]`` (experiments left without a method are dropped).
    """
    paper = yaml.safe_load(paper_path.read_text())
    datasets = {}
    for name, entry in paper["datasets"].items():
        fmt, _ = FIXTURES[name]
        if entry["format"] != fmt:
            raise SystemExit(f"config/paper.yaml: datasets.{name}.format is {entry['format']!r}, "
                             f"the fixture is {fmt!r}")
        datasets[name] = {**entry, "root": str((data / name).resolve())}
    experiments = []
    for entry in paper["experiments"]:
        entry = dict(entry, seeds=entry["seeds"][:1])
        if METHOD_SETS[methods] is not None:
            entry["methods"] = [m for m in entry["methods"] if m in METHOD_SETS[methods]]
            if not entry["methods"]:
                continue
        train = dict(entry.get("train", {}))
        paper_epochs = train.get("epochs") or (paper.get("train") or {}).get("epochs")
        decay = train.get("decay_epochs", (paper.get("train") or {}).get("decay_epochs", []))
        train["epochs"] = EPOCHS
        train["decay_epochs"] = scaled_decay(decay, paper_epochs, EPOCHS) if paper_epochs else []
        entry["train"] = train
        experiments.append(entry)
    theory = {"options": dict(THEORY_SIZES)}
    result = {
        "datasets": datasets,
        "channels": CHANNELS,
        "experiments": experiments,
        "search": dict(SEARCH_SIZES),
        "evaluate": dict(EVALUATE_SIZES),
        "theory": theory,
        # The stage tests the scheduler path of the paper's searched cells; the baselines (days of
        # meta-training at their papers' settings) run in the main job (make run) instead.
        "baselines": {"rows": []},
    }
    # Global training defaults, if paper.yaml has them: sizes only.
    if paper.get("train"):
        result["train"] = {"epochs": EPOCHS,
                           "decay_epochs": scaled_decay(paper["train"].get("decay_epochs", []),
                                                        paper["train"]["epochs"], EPOCHS)}
    header = ("# Written by .ci/slurm.sh from config/paper.yaml: dataset roots and sizes only;\n"
              "# every other value is the paper's.\n")
    if METHOD_SETS[methods] is not None:
        header += f"# --methods {methods}: methods restricted to {', '.join(METHOD_SETS[methods])}.\n"
    out.write_text(header + yaml.safe_dump(result, sort_keys=False))
    print(out.read_text())


# ---------------------------------------------------------------- SLURM's view of the jobs


def slurm_jobs() -> dict[str, dict[str, str]]:
    """Every job slurmctld still holds (MinJobAge keeps finished ones), by job id.

    ``scontrol show job -o`` prints one ``Key=Value ...`` line per job; the values used here
    (JobState, Comment, TresPerJob, Partition, NodeList, JobName) contain no spaces.
    """
    out = subprocess.run(["scontrol", "show", "job", "-o"], check=True, capture_output=True, text=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def cancel(comment: str, started: Path, times: int, pid: int, delay: float, record: Path) -> None:
    """``scancel`` the SLURM job whose comment is ``comment`` mid-run: ``delay`` seconds after its command
    started, i.e. after the job's rule log ``started`` was (re)written since the job's start.

    Repeats for a resubmitted attempt (the profile's ``retries``) up to ``times`` cancellations, and
    stops when the Snakemake process ``pid`` ends. The cancelled job ids go to ``record``.
    """
    import os
    import time
    from datetime import datetime

    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    cancelled: list[str] = []
    while alive() and len(cancelled) < times:
        for job_id, job in slurm_jobs().items():
            if job.get("Comment") != comment or job_id in cancelled or job.get("JobState") != "RUNNING":
                continue
            job_start = datetime.fromisoformat(job["StartTime"]).timestamp()
            try:
                stat = started.stat()
            except FileNotFoundError:
                continue
            if stat.st_size == 0 or stat.st_mtime < job_start - 1 or time.time() < stat.st_mtime + delay:
                continue
            subprocess.run(["scancel", job_id], check=True)
            cancelled.append(job_id)
            print(f"scancel {job_id} ({comment}), {time.time() - job_start:.0f} s after the job started, "
                  f"its command running: {started.read_text().splitlines()[0][:60]}...", flush=True)
            record.write_text("\n".join(cancelled) + "\n")
        time.sleep(0.2)  # a miniature training runs a few seconds: poll often enough to catch it
    if not cancelled:
        raise SystemExit(f"no running SLURM job with comment {comment!r} was seen; nothing was cancelled")


# ---------------------------------------------------------------- what Snakemake did


def parse_log(text: str) -> dict[str, dict]:
    """Jobs of one Snakemake invocation's output, by Snakemake job id.

    Each: ``rule``, ``local`` (a localrule), ``log`` (the rule's log files), ``wildcards``,
    ``slurm`` (SLURM job ids, one per submitted attempt), ``finished``, ``failed``.
    """
    # Failed jobs' logs are shown inline (show-failed-logs): "Logfile PATH:", a rule of 80 "=", the
    # log (a SLURM job log holds the job's own Snakemake output, with its own "rule"/"jobid" lines),
    # and another rule of 80 "=". Leave them out.
    lines, inline = [], False
    all_lines = text.splitlines()
    for index, line in enumerate(all_lines):
        if inline:
            inline = line != "=" * 80
            continue
        if re.match(r"^Logfile .*:$", line) and index + 1 < len(all_lines) and all_lines[index + 1] == "=" * 80:
            all_lines[index + 1] = ""  # the opening rule
            inline = True
            continue
        lines.append(line)
    text = "\n".join(lines)
    jobs: dict[str, dict] = {}
    current = None
    for line in lines:
        header = re.match(r"^(local)?rule (\w+):$", line.strip()) if not line.startswith(" ") else None
        if header:
            current = {"rule": header.group(2), "local": bool(header.group(1)), "log": [], "wildcards": "",
                       "slurm": [], "finished": False, "failed": False}
            continue
        if current is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "jobid":
                current = jobs.setdefault(value, current)
            elif key == "log":
                current["log"] = [v.strip() for v in value.split(",") if v.strip()]
            elif key == "wildcards":
                current["wildcards"] = value
            continue
        current = None if not line.startswith(" ") else current
        submitted = re.search(r"Job (\d+) has been submitted with SLURM jobid (\d+)", line)
        if submitted:
            jobs.setdefault(submitted.group(1), {"rule": "?", "local": False, "log": [], "wildcards": "",
                                                 "slurm": [], "finished": False, "failed": False})
            jobs[submitted.group(1)]["slurm"].append(submitted.group(2))
        finished = re.search(r"Finished jobid: (\d+)|Finished job (\d+)\.", line)
        if finished:
            job_id = finished.group(1) or finished.group(2)
            if job_id in jobs:
                jobs[job_id]["finished"] = True
    for match in re.finditer(r"^Error in rule (\w+):\n(?:\s+.*\n)*?\s+jobid: (\d+)", text, re.M):
        if match.group(2) in jobs:
            jobs[match.group(2)]["failed"] = True
    return jobs


def workflow_local_rules(workdir: Path) -> set[str]:
    """The rules that run on the submitting host: the Snakefile's ``localrules:`` and ``localrule: True`` rules."""
    snakefile = (workdir / "Snakefile").read_text(encoding="utf-8")
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", snakefile, re.M)
    rules = set(re.findall(r"(\w+),", block.group(1))) if block else set()
    for path in sorted((workdir / "workflow" / "rules").glob("*.smk")):
        rules |= set(re.findall(r"^rule (\w+):\n(?:    .*\n|\n)*?    localrule: True", path.read_text(encoding="utf-8"),
                                re.M))
    return rules | {"all"}


def _selects_a_device(job: dict) -> bool:
    """Whether the job's command runs on a device: a search of a method without a pruning search (a
    given or random cell: ``METHODS[...].source``) writes its genotype without selecting one."""
    from metantk_nas.search.methods import METHODS

    method = re.search(r"\bmethod=([\w-]+)", job["wildcards"])
    return not (job["rule"] == "search" and method and METHODS[method.group(1)].source != "search")


def check_run(log: Path, workdir: Path, local_rules: set[str], expect_complete: bool) -> dict[str, dict]:
    """Every job of one invocation ran as a SLURM job (except the workflow's localrules), GPU rules
    asked SLURM for a GPU and got one, and (``expect_complete``) every job finished."""
    text = log.read_text()
    jobs = parse_log(text)
    slurm = slurm_jobs()
    problems = []
    for job_id, job in sorted(jobs.items(), key=lambda item: int(item[0])):
        name = f"job {job_id} ({job['rule']}{', ' + job['wildcards'] if job['wildcards'] else ''})"
        if job["local"]:
            if job["rule"] not in local_rules:
                problems.append(f"{name} ran locally, but {job['rule']} is not a localrule")
            continue
        if not job["slurm"]:
            problems.append(f"{name} was never submitted to SLURM")
            continue
        if expect_complete and not job["finished"]:
            problems.append(f"{name} did not finish")
        for slurm_id in job["slurm"]:
            info = slurm.get(slurm_id)
            if info is None:
                problems.append(f"{name}: SLURM job {slurm_id} is unknown to slurmctld")
                continue
            if not info.get("Comment", "").startswith(f"rule_{job['rule']}"):
                problems.append(f"{name}: SLURM job {slurm_id} has comment {info.get('Comment')!r}")
            gpu = "gpu" in info.get("TresPerJob", "") or "gpu" in info.get("TresPerNode", "")
            if (job["rule"] in GPU_RULES) != gpu:
                problems.append(f"{name}: SLURM job {slurm_id} TresPerJob={info.get('TresPerJob')!r} "
                                f"({'no GPU requested' if not gpu else 'a GPU for a CPU rule'})")
        if job["finished"]:
            state = slurm.get(job["slurm"][-1], {}).get("JobState")
            if state != "COMPLETED":
                problems.append(f"{name} finished, but its SLURM job {job['slurm'][-1]} is {state}")
            if job["rule"] in GPU_RULES and _selects_a_device(job):
                # The command writes which GPU it claimed (metantk_nas.device): a GPU is visible only to
                # a job Slurm allocated one to (it sets CUDA_VISIBLE_DEVICES).
                claimed = [m for f in job["log"] if (workdir / f).exists()
                           for m in re.findall(r"^metantk-nas: claimed GPU (\S+)", (workdir / f).read_text(), re.M)]
                if not claimed:
                    problems.append(f"{name}: its log {job['log']} shows no GPU from SLURM")
    if problems:
        raise SystemExit(f"{log}: " + "\n  ".join(["SLURM check failed:"] + problems))
    remote = [j for j in jobs.values() if not j["local"]]
    gpu = [j for j in remote if j["rule"] in GPU_RULES]
    local = sorted({j["rule"] for j in jobs.values() if j["local"]})
    print(f"{log.name}: {len(remote)} jobs ran as SLURM jobs ({', '.join(sorted({j['rule'] for j in remote}))}; "
          f"{sum(j['finished'] for j in remote)} finished COMPLETED, {sum(j['failed'] for j in remote)} failed), "
          f"{len(gpu)} of them GPU rules submitted with --gpus=1 (TresPerJob gres:gpu:1), each finished one "
          f"with a GPU from SLURM in its log; {len(jobs) - len(remote)} local jobs ({', '.join(local) or 'none'})")
    return jobs


def check_table(path: Path, methods_set: str = "all") -> None:
    """Table 1 holds MetaNTK-NAS and MetaNAS (retrained) for both datasets and cell counts, numeric
    (``quick``: MetaNAS only)."""
    methods = ("metanas",) if methods_set == "quick" else ("metantk-nas", "metanas")
    expected = {(method, dataset, cells) for method in methods
                for dataset in FIXTURES for cells in ("5", "8")}
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["method"] in {"metantk-nas", "metanas"}]
    found = {(row["method"], row["dataset"], row["cells"]) for row in rows}
    if found != expected:
        raise SystemExit(f"{path}: rows {sorted(found)}, expected {sorted(expected)}")
    for row in rows:
        for column in ("params_m", "search_hours", "acc_1shot_mean", "acc_5shot_mean"):
            value = float(row[column])
            if not math.isfinite(value):
                raise SystemExit(f"{path}: {row['method']} {row['dataset']} {row['cells']}: {column} = {row[column]!r}")
        for column in ("acc_1shot_mean", "acc_5shot_mean"):
            if not 0.0 <= float(row[column]) <= 100.0:
                raise SystemExit(f"{path}: {row['method']} {row['dataset']}: {column} = {row[column]!r}")
    print(f"{path}: {len(rows)} rows ({', '.join(methods)} × mini, tiered × 5, 8 cells), numeric cells")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fixtures")
    p.add_argument("out", type=Path)
    p = sub.add_parser("overrides")
    p.add_argument("--paper", type=Path, default=Path("config/paper.yaml"))
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--methods", choices=METHOD_SETS, default="all")
    p = sub.add_parser("cancel")
    p.add_argument("--comment", required=True)
    p.add_argument("--started", type=Path, required=True, help="the job's rule log")
    p.add_argument("--times", type=int, default=1)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--delay", type=float, default=0.5)
    p.add_argument("--record", type=Path, required=True)
    p = sub.add_parser("check-run")
    p.add_argument("log", type=Path)
    p.add_argument("--local-rules", default=None, help="comma-separated (default: read from the workflow)")
    p.add_argument("--complete", action="store_true")
    p.add_argument("--json", type=Path)
    p = sub.add_parser("check-table")
    p.add_argument("csv", type=Path)
    p.add_argument("--methods", choices=METHOD_SETS, default="all")
    args = parser.parse_args(argv)
    if args.command == "fixtures":
        fixtures(args.out)
    elif args.command == "overrides":
        overrides(args.paper, args.data, args.out, args.methods)
    elif args.command == "cancel":
        cancel(args.comment, args.started, args.times, args.pid, args.delay, args.record)
    elif args.command == "check-run":
        local = set(args.local_rules.split(",")) if args.local_rules else workflow_local_rules(Path.cwd())
        jobs = check_run(args.log, Path.cwd(), local, args.complete)
        if args.json:
            args.json.write_text(json.dumps(jobs, indent=1))
    elif args.command == "check-table":
        check_table(args.csv, args.methods)


if __name__ == "__main__":
    main()
