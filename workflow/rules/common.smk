import math
from pathlib import Path

from snakemake.utils import validate

# ---------------------------------------------------------------- configuration

validate(config, schema="../schemas/config.schema.yaml")

#: Methods whose cell is searched here; `metanas` trains a published cell instead.
SEARCHED_METHODS = ("metantk-nas", "te-nas", "linear-regions", "random")
#: Methods of each table (Paper Table 1 rows reproduced here; Paper Table 2 rows).
TABLE1_METHODS = ("metantk-nas", "metanas")
TABLE2_METHODS = ("metantk-nas", "te-nas", "linear-regions", "random")
#: Which paper column a prepared dataset is compared with (by source format).
PAPER_DATASET = {
    "rfs-mini": "miniImageNet",
    "ravi-csv": "miniImageNet",
    "rfs-tiered": "tieredImageNet",
    "ren-tiered": "tieredImageNet",
}
SHOTS = (1, 5)
#: Package sources (src/metantk_nas/...), tracked as inputs so that code changes rerun jobs.
PACKAGE = Path("src/metantk_nas")


def check_config(cfg):
    """Cross-key checks the JSON schema cannot express; errors name the key and the allowed values."""
    names = sorted(cfg["datasets"])
    seen = set()
    for index, experiment in enumerate(cfg["experiments"]):
        key = f"experiments[{index}]"
        if experiment["dataset"] not in cfg["datasets"]:
            raise ValueError(
                f"config key {key}.dataset: {experiment['dataset']!r} is not a key of "
                f"'datasets'; allowed values: {names}"
            )
        pair = (experiment["dataset"], experiment["cells"])
        if pair in seen:
            raise ValueError(
                f"config key {key}: dataset {pair[0]!r} with cells {pair[1]} is listed twice; "
                "merge the two entries"
            )
        seen.add(pair)
    used = sorted({experiment["dataset"] for experiment in cfg["experiments"]})
    if cfg["ablation_dataset"] not in used:
        raise ValueError(
            f"config key ablation_dataset: {cfg['ablation_dataset']!r} has no experiments; "
            f"allowed values: {used}"
        )
    theory = cfg["theory"].get("dataset")
    if theory is not None and theory not in cfg["datasets"]:
        raise ValueError(
            f"config key theory.dataset: {theory!r} is not a key of 'datasets'; "
            f"allowed values: {names} or null"
        )


check_config(config)


wildcard_constraints:
    dataset="|".join(sorted(config["datasets"])),
    cells="5|8",
    method="|".join(SEARCHED_METHODS + ("metanas",)),
    seed=r"\d+",
    shot="1|5",


# ---------------------------------------------------------------- settings


def experiment(dataset, cells):
    """The experiment entry of (dataset, cells)."""
    for entry in config["experiments"]:
        if entry["dataset"] == dataset and entry["cells"] == int(cells):
            return entry
    raise ValueError(f"no experiment with dataset {dataset!r} and cells {cells}")


def settings(section, dataset, cells):
    """Section defaults overridden by the experiment's own block of the same name."""
    return {**config[section], **experiment(dataset, cells).get(section, {})}


def cli_options(options):
    """`{"lam_tau": inf, "decay_epochs": [60, 80]}` -> ["--lam-tau", "inf", "--decay-epochs", "60", "80"]."""
    argv = []
    for key, value in options.items():
        argv.append(f"--{key.replace('_', '-')}")
        values = value if isinstance(value, (list, tuple)) else [value]
        argv.extend(
            "inf" if isinstance(v, float) and math.isinf(v) else str(v) for v in values
        )
    return argv


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


#: The prepared store of a dataset.
STORE = "resources/{dataset}"


def store(dataset):
    """The prepared store's dataset.json (the file the rules depend on)."""
    return f"{STORE}/dataset.json".format(dataset=dataset)


RUN = "results/{dataset}/{cells}cell/{method}/seed{seed}"
#: Resume state of a run's search and training: not a declared output, so it survives a failed or
#: killed job. workflow/scripts/metantk.py appends a key of the command line and the input files,
#: so only an identical rerun resumes; a job rerun for changed code, config or data starts afresh.
WORK = "results/.work/{dataset}/{cells}cell/{method}/seed{seed}"

RUN_LOG = "{dataset}/{cells}cell/{method}/seed{seed}"
FIGURES = "results/figures"
THEORY = "results/theory"
#: Stem of a run's cell drawings (`arch draw` appends _normal/_reduce and .svg/.png).
CELLS = f"{FIGURES}/cells/{{dataset}}-{{cells}}cell-{{method}}-seed{{seed}}"


def runs(methods=None, datasets=None):
    """Wildcard dicts of every configured run, optionally restricted to methods/datasets."""
    found = []
    for entry in config["experiments"]:
        if datasets is not None and entry["dataset"] not in datasets:
            continue
        for method in entry["methods"]:
            if methods is not None and method not in methods:
                continue
            for seed in entry["seeds"]:
                found.append(
                    dict(
                        dataset=entry["dataset"],
                        cells=entry["cells"],
                        method=method,
                        seed=seed,
                    )
                )
    return found


def run_files(pattern, selected):
    """`pattern` (relative to a run folder) formatted for every selected run."""
    return [f"{RUN}/{pattern}".format(**run) for run in selected]


def table_runs(table):
    """Runs that feed Table 1 or Table 2."""
    if table == "table1":
        return runs(methods=TABLE1_METHODS)
    return runs(methods=TABLE2_METHODS, datasets=[config["ablation_dataset"]])


def table_inputs(table):
    """Every result file a table reads."""
    selected = table_runs(table)
    return (
        run_files("search/search.json", selected)
        + run_files("train/train.json", selected)
        + [
            f
            for shot in SHOTS
            for f in run_files(f"evaluate/{shot}shot.json", selected)
        ]
    )


def paper_datasets():
    """`name=paper column` arguments for the report (only datasets the paper measured)."""
    return [
        f"{name}={PAPER_DATASET[entry['format']]}"
        for name, entry in sorted(config["datasets"].items())
        if entry["format"] in PAPER_DATASET
    ]


def theory_dataset():
    """The dataset the theory checks read."""
    return config["theory"].get("dataset") or config["ablation_dataset"]


# ---------------------------------------------------------------- command lines
# Functions of the wildcards only: Snakemake records such params and reruns a job when they change
# (a params function that takes input or output is "derived" and never compared).


def prepare_args(wildcards):
    """`metantk-nas prepare` arguments of one dataset."""
    entry = config["datasets"][wildcards.dataset]
    argv = ["prepare", "--format", entry["format"], "--out", STORE.format(**wildcards)]
    if entry.get("root"):
        argv += ["--root", entry["root"]]
    options = {
        k: entry[k] for k in ("image_size", "images_per_class", "seed") if k in entry
    }
    return argv + cli_options(options)


def search_args(wildcards):
    """`metantk-nas search` arguments of one run; metanas trains the configured published cell."""
    method = wildcards.method
    argv = [
        "search",
        "--dataset",
        STORE.format(**wildcards),
        "--method",
        "fixed" if method == "metanas" else method,
        "--cells",
        wildcards.cells,
        "--channels",
        str(config["channels"]),
        "--seed",
        wildcards.seed,
        "--out",
        f"{RUN}/search".format(**wildcards),
    ]
    if method == "metanas":
        argv += ["--genotype", config["metanas_genotype"]]
    elif method != "random":
        argv += cli_options(settings("search", wildcards.dataset, wildcards.cells))
    return argv


def train_args(wildcards):
    """`metantk-nas train` arguments of one run (checkpoints go to the undeclared work folder)."""
    return [
        "train",
        "--genotype",
        f"{RUN}/search/genotype.json".format(**wildcards),
        "--dataset",
        STORE.format(**wildcards),
        "--cells",
        wildcards.cells,
        "--channels",
        str(config["channels"]),
        "--seed",
        wildcards.seed,
        "--out",
        f"{RUN}/train".format(**wildcards),
    ] + cli_options(settings("train", wildcards.dataset, wildcards.cells))


def evaluate_args(wildcards):
    """`metantk-nas evaluate` arguments of one run and shot count."""
    options = settings("evaluate", wildcards.dataset, wildcards.cells)
    shot = wildcards.shot
    classifier = options.pop(f"classifier_{shot}shot")
    penalty = options.pop(f"C_{shot}shot")
    for other in SHOTS:
        options.pop(f"classifier_{other}shot", None)
        options.pop(f"C_{other}shot", None)
    return [
        "evaluate",
        "--model",
        f"{RUN}/train/model.pt".format(**wildcards),
        "--dataset",
        STORE.format(**wildcards),
        "--shots",
        shot,
        "--seed",
        wildcards.seed,
        "--classifier",
        classifier,
        "--C",
        str(penalty),
        "--out",
        f"{RUN}/evaluate".format(**wildcards),
    ] + cli_options(options)


def draw_args(wildcards):
    """`metantk-nas arch draw` arguments of one run's cells."""
    stem = Path(CELLS.format(**wildcards))
    genotype = f"{RUN}/search/genotype.json".format(**wildcards)
    return ["arch", "draw", genotype, "--out", str(stem.parent), "--stem", stem.name]


def theory_args(wildcards):
    """`metantk-nas theory` arguments."""
    return [
        "theory",
        "--dataset",
        STORE.format(dataset=theory_dataset()),
        "--out",
        THEORY,
    ] + cli_options(config["theory"]["options"])


def report_args(table):
    """`metantk-nas report table1|table2` arguments."""
    argv = ["report", table, "--runs"] + [RUN.format(**r) for r in table_runs(table)]
    if paper_datasets():
        argv += ["--paper-dataset"] + paper_datasets()
    return argv + ["--out", f"results/{table}.csv"]


def figures_args(wildcards):
    """`metantk-nas report figures` arguments over every run."""
    argv = ["report", "figures", "--runs"] + [RUN.format(**r) for r in runs()]
    if paper_datasets():
        argv += ["--paper-dataset"] + paper_datasets()
    return argv + ["--ablation-dataset", config["ablation_dataset"], "--out", FIGURES]


# ---------------------------------------------------------------- targets


def get_final_output():
    """Tables, figures, every run's results and cell drawings, and (if enabled) the theory summary.

    The per-run result files are targets themselves, so deleting one run's search (or training,
    or evaluation) output reruns exactly that run's branch (and the tables and figures).
    """
    targets = [
        "results/table1.csv",
        "results/table1.md",
        "results/table2.csv",
        "results/table2.md",
        "results/figures/ablation.svg",
        "results/figures/search_cost.svg",
        "results/figures/search_trace.svg",
    ]
    targets += [f"{CELLS}_normal.svg".format(**run) for run in runs()]
    targets += run_files("search/genotype.json", runs())
    targets += run_files("train/model.pt", runs())
    targets += [
        f for shot in SHOTS for f in run_files(f"evaluate/{shot}shot.json", runs())
    ]
    if config["theory"]["enabled"]:
        targets.append("results/theory/summary.md")
    return targets
