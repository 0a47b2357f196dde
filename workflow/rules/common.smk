import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The package's torch-free `plan` module resolves the config and every job's command line, so
# `metantk-nas settings` shows exactly what the jobs run. This checkout's sources come first.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from metantk_nas import plan  # noqa: E402
from metantk_nas.baselines.algorithms import ALGORITHMS as BASELINE_ROWS  # noqa: E402
from metantk_nas.baselines.algorithms import get_algorithm  # noqa: E402
from metantk_nas.search.methods import RUN_METHODS  # noqa: E402

# ---------------------------------------------------------------- configuration
# Command-line strings become numbers, the schema fills its defaults (the paper's values), then the
# cross-key checks run: a config that cannot run stops here, before any job.

try:
    plan.prepare(config, workflow.basedir)
    plan.check(config)
except ValueError as error:
    raise WorkflowError(f"config: {error}") from None

SHOTS = plan.SHOTS
#: Package sources (src/metantk_nas/...), tracked as inputs so that code changes rerun jobs.
PACKAGE = Path("src/metantk_nas")


wildcard_constraints:
    dataset="|".join(sorted(config["datasets"])),
    cells="5|8",
    method="|".join(RUN_METHODS),
    job=r"[^.]+(?:/[^.]+)*",
    seed=r"\d+",
    shot="1|5",
    table="|".join(plan.TABLES),
    baseline="|".join(BASELINE_ROWS),
    regime="all|1shot|5shot",


def code_files(*concerns):
    """Package sources a step runs: the shared helpers plus each named concern's files."""
    files = [p for p in PACKAGE.glob("*.py") if p.name != "cli.py"]
    for concern in concerns:
        files += [
            p
            for p in (PACKAGE / concern).rglob("*")
            if p.suffix in {".py", ".json", ".yaml"} and "__pycache__" not in p.parts
        ]
    return sorted(str(p) for p in files)


# ---------------------------------------------------------------- paths

STORE = plan.STORE
RUN = plan.RUN
#: Resume state of a run's search and training: not a declared output, so it survives a failed or
#: killed job. workflow/scripts/metantk.py appends a key of the command line and the input files,
#: so only an identical rerun resumes; a job rerun for changed code, config or data starts afresh.
WORK = "results/.work/{dataset}/{cells}cell/{method}/seed{seed}"
RUN_LOG = "{dataset}/{cells}cell/{method}/seed{seed}"
BASELINE = plan.BASELINE_RUN
BASELINE_WORK = "results/.work/{dataset}/baselines/{baseline}/seed{seed}"
BASELINE_LOG = "{dataset}/baselines/{baseline}/seed{seed}"
FIGURES = plan.FIGURES
THEORY = plan.THEORY
CELLS = plan.CELLS


def store(dataset):
    """The prepared store's dataset.json (the file the rules depend on)."""
    return f"{STORE}/dataset.json".format(dataset=dataset)


def run_files(pattern, selected):
    """`pattern` (relative to a run folder) formatted for every selected run."""
    return [f"{RUN}/{pattern}".format(**run) for run in selected]


def table_labels(wildcards):
    """A table's label in the report: "Table 1" for table1."""
    return {"table": wildcards.table.replace("table", "Table ")}


def baseline_results(table):
    """Every baseline result file a table reads (Table 1: models' summaries, own protocol, probe)."""
    if table != "table1":
        return []
    files = []
    for run in plan.baseline_runs(config):
        algorithm = get_algorithm(run["baseline"])
        base = BASELINE.format(**run)
        files += [f"{base}/train-{regime}/train.json" for regime in algorithm.regimes()]
        files += [f"{base}/probe/{shot}shot.json" for shot in SHOTS]
        if algorithm.protocol != "probe":
            files += [f"{base}/evaluate/{shot}shot.json" for shot in SHOTS]
    return files


def table_inputs(table):
    """Every result file a table reads."""
    selected = plan.table_runs(config, table)
    return baseline_results(table) + (
        run_files("search/search.json", selected)
        + run_files("train/train.json", selected)
        + [
            f
            for shot in SHOTS
            for f in run_files(f"evaluate/{shot}shot.json", selected)
        ]
    )


# ---------------------------------------------------------------- command lines
# Functions of the wildcards only: Snakemake records such params and reruns a job when they change
# (a params function that takes input or output is "derived" and never compared).


def run_of(wildcards):
    """The run a job's wildcards name, with integer cells and seed."""
    return dict(
        dataset=wildcards.dataset,
        cells=int(wildcards.cells),
        method=wildcards.method,
        seed=int(wildcards.seed),
    )


def baseline_of(wildcards):
    """The baseline run a job's wildcards name, with an integer seed."""
    return dict(
        dataset=wildcards.dataset,
        baseline=wildcards.baseline,
        seed=int(wildcards.seed),
    )


# ---------------------------------------------------------------- targets


def get_final_output():
    """Tables, figures, every run's results and cell drawings, and (if enabled) the theory summary and the
    proxy study.

    The per-run result files are targets themselves, so deleting one run's search (or training,
    or evaluation) output reruns exactly that run's branch (and the tables and figures).
    """
    every_run = plan.runs(config)
    targets = [
        f"results/{table}.{ext}" for table in plan.TABLES for ext in ("csv", "md")
    ]
    targets += [
        "results/figures/ablation.svg",
        "results/figures/search_cost.svg",
        "results/figures/search_trace.svg",
    ]
    targets += [f"{CELLS}_normal.svg".format(**run) for run in every_run]
    targets += run_files("search/genotype.json", every_run)
    targets += run_files("train/model.pt", every_run)
    targets += [
        f for shot in SHOTS for f in run_files(f"evaluate/{shot}shot.json", every_run)
    ]
    targets += [f for table in plan.TABLES for f in baseline_results(table)]
    if config["theory"]["enabled"]:
        targets.append("results/theory/summary.md")
    if config["study"]["enabled"]:
        targets.append(plan.STUDY_SUMMARY)
    return targets
