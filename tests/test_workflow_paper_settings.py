"""Every job of the paper DAG runs with the settings of Appendix E and the official launcher.

The expected values are written here from the paper (Appendix E, §6.1) and the official launcher
(reference §0-§6), not read from config/paper.yaml. The workflow copy's config/config.yaml is
replaced by a config whose every value differs from the paper's, so a value leaking from the
embedded default into the paper DAG fails the test (and a key the schema refuses makes Snakemake
fail if it read that file at all).
"""

from __future__ import annotations

import math
import re

import pytest
import yaml

from _workflow_helpers import REPO, default_config, snakemake, workflow_copy
from metantk_nas import plan

#: Appendix E (kernel, λτ, ρ; classifier and C per shot) and the launcher's training recipe (reference §6.1).
APPENDIX_E = {
    ("mini", 5): {"kernel": "maml", "lam_tau": math.inf, "reg": 1e-3, "epochs": 100, "lr": 0.02,
                  "decay_epochs": (60, 80), "batch_size": 64, "drop_path": 0.2, 1: ("svc", 0.2), 5: ("lr", 0.6)},
    ("mini", 8): {"kernel": "anil", "lam_tau": 1.0, "reg": 1e-5, "epochs": 100, "lr": 0.02,
                  "decay_epochs": (60, 80), "batch_size": 40, "drop_path": 0.2, 1: ("svc", 0.35), 5: ("lr", 0.4)},
    ("tiered", 5): {"kernel": "maml", "lam_tau": math.inf, "reg": 1e-3, "epochs": 60, "lr": 0.01,
                    "decay_epochs": (30, 40, 50), "batch_size": 64, "drop_path": 0.1, 1: ("svc", 0.75),
                    5: ("lr", 0.8)},
    ("tiered", 8): {"kernel": "anil", "lam_tau": math.inf, "reg": 1e-3, "epochs": 60, "lr": 0.01,
                    "decay_epochs": (30, 40, 50), "batch_size": 56, "drop_path": 0.1, 1: ("lr", 0.95),
                    5: ("lr", 0.5)},
}
#: The official launcher's search settings (reference §0.1, §2, §3, §4; TE-NAS batch from its README).
OFFICIAL_SEARCH = {"channels": 48, "repeats": 3, "tasks": 3, "ways": 5, "shots": 1, "queries": 1,
                   "ntk_images": 30, "resolution": 32, "region_batches": 3, "region_batch_size": 1000,
                   "delta": "relative", "precision": 3, "init": "default", "output": "sum",
                   "pairing": "official", "edge_origin": "stale"}
#: RFS training (reference §6.1-6.2): SGD 0.9, weight decay 5e-4, ×0.1 decays, crop padding 8 at 84×84.
OFFICIAL_TRAIN = {"channels": 48, "momentum": 0.9, "weight_decay": 5e-4, "decay_rate": 0.1, "crop_padding": 8}
#: Few-shot test (reference §6.3): 1000 tasks, 5-way, 50 queries per class, 5 augmented copies per support.
OFFICIAL_EVALUATE = {"tasks": 1000, "n_way": 5, "queries": 50, "n_aug": 5, "split": "test"}
#: Methods of the paper's runs: Table 1 (both datasets) and Table 2 (miniImageNet).
METHODS = {"mini": {"metantk-nas", "metanas", "te-nas", "linear-regions", "random"},
           "tiered": {"metantk-nas", "metanas"}}


def _leaky_default() -> dict:
    """The embedded default with every shared value changed away from the paper's."""
    config = default_config()
    config["channels"] = 7
    config["search"].update(repeats=2, tasks=2, ntk_images=12, resolution=16, region_batches=2,
                            region_batch_size=100, pairing="paired")
    config["train"].update(epochs=5, lr=0.05, decay_epochs=[4], batch_size=32, drop_path=0.15, crop_padding=2)
    config["evaluate"].update(tasks=500, queries=15, n_aug=1, classifier_1shot="lr", C_1shot=3.0,
                              classifier_5shot="svc", C_5shot=3.0)
    config["theory"]["options"] = {"widths": [32, 64], "steps": 10}
    config["leaked"] = "a key the schema refuses: merged into any config, it fails the run"
    return config


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """A workflow copy with a leaky default config, the paper config, its jobs and their resolved settings."""
    root = workflow_copy(tmp_path_factory.mktemp("paper"))
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(_leaky_default()), encoding="utf-8")
    for name in ("miniImageNet", "tieredImageNet"):
        (root / "data" / name).mkdir(parents=True)
    config = plan.load([root / "config" / "paper.yaml"], workflow_dir=root, workdir=root)
    jobs = plan.jobs(config)
    return root, config, jobs, [plan.resolved_settings(job) for job in jobs]


def _by_rule(paper, rule):
    _, _, jobs, resolved = paper
    return [(job, settings) for job, settings in zip(jobs, resolved) if job.rule == rule]


def test_the_dag_snakemake_builds_is_the_plan(paper):
    root, config, jobs, _ = paper
    result = snakemake(root, "-n", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    found = {(rule, tuple(sorted(wildcards.split(", "))))
             for rule, wildcards in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$", result.stdout, re.M)}
    planned = {(job.rule, tuple(sorted(f"{k}={v}" for k, v in job.wildcards.items())))
               for job in jobs if job.wildcards}
    assert {job for job in found if job[0] != "settings"} == planned
    settings_files = {f"{plan.SETTINGS}/{wildcards[0].removeprefix('job=')}.json"
                      for rule, wildcards in found if rule == "settings"}
    assert settings_files == {job.argv[job.argv.index("--config") + 1] for job in jobs if job.settings is not None}
    runs = {(j.wildcards["dataset"], j.wildcards["cells"], j.wildcards["method"]) for j in jobs if j.rule == "train"}
    assert runs == {(d, c, m) for (d, c) in APPENDIX_E for m in METHODS[d]}


def test_search_jobs_have_appendix_e_and_launcher_settings(paper):
    searched = [(job, s) for job, s in _by_rule(paper, "search") if job.wildcards["method"] != "random"]
    assert len(searched) == 36  # (mini: 4 methods + tiered: 2) x 2 cell counts x 3 seeds, random excluded
    for job, settings in searched:
        expected = APPENDIX_E[(job.wildcards["dataset"], job.wildcards["cells"])]
        assert settings["cells"] == job.wildcards["cells"]
        for key, value in OFFICIAL_SEARCH.items():
            assert settings[key] == value, (job.name(), key)
        if job.wildcards["method"] == "metanas":
            assert (settings["method"], settings["genotype"]) == ("metanas", "metanas/in-v2")
            continue
        assert settings["kernel"] == expected["kernel"], job.name()
        assert float(settings["lam_tau"]) == expected["lam_tau"], job.name()  # written "inf" in JSON
        assert settings["reg"] == expected["reg"], job.name()


def test_train_jobs_have_the_rfs_recipe_of_the_launcher(paper):
    trained = _by_rule(paper, "train")
    assert len(trained) == 42
    for job, settings in trained:
        expected = APPENDIX_E[(job.wildcards["dataset"], job.wildcards["cells"])]
        for key in ("epochs", "lr", "batch_size", "drop_path"):
            assert settings[key] == expected[key], (job.name(), key)
        assert tuple(settings["decay_epochs"]) == expected["decay_epochs"], job.name()
        for key, value in OFFICIAL_TRAIN.items():
            assert settings[key] == value, (job.name(), key)
        assert settings["cells"] == job.wildcards["cells"]


def test_evaluate_jobs_have_the_appendix_e_classifier_per_shot(paper):
    evaluated = _by_rule(paper, "evaluate")
    assert len(evaluated) == 84
    for job, settings in evaluated:
        shot = job.wildcards["shot"]
        expected = APPENDIX_E[(job.wildcards["dataset"], job.wildcards["cells"])][shot]
        assert tuple(settings["shots"]) == (shot,)
        assert (settings[f"classifier_{shot}shot"], settings[f"C_{shot}shot"]) == expected, job.name()
        for key, value in OFFICIAL_EVALUATE.items():
            assert settings[key] == value, (job.name(), key)


def test_every_job_reads_its_settings_file_back_unchanged(paper, tmp_path):
    """The command a job runs, given its settings file, resolves to exactly the planned settings."""
    import json

    from metantk_nas.cli import build_parser
    from metantk_nas.evaluate.cli import build_config as evaluate_config
    from metantk_nas.search.cli import build_config as search_config
    from metantk_nas.theory.cli import build_config as theory_config
    from metantk_nas.train.cli import build_config as train_config

    from metantk_nas.baselines.cli import build_settings as baseline_settings

    def as_dict(builder):
        return lambda args: builder(args).to_dict()

    builders = {"search": as_dict(search_config), "train": as_dict(train_config), "evaluate": as_dict(evaluate_config),
                "theory": as_dict(theory_config), "baseline_train": baseline_settings,
                "baseline_evaluate": baseline_settings, "baseline_probe": as_dict(evaluate_config)}
    _, config, jobs, _ = paper
    for job in [job for job in jobs if job.settings is not None][::7]:
        path = tmp_path / f"{job.rule}.json"
        path.write_text(json.dumps(plan.settings_of_file(config, job.argv[job.argv.index("--config") + 1])))
        argv = list(job.argv)
        argv[argv.index("--config") + 1] = str(path)
        resolved = builders[job.rule](build_parser().parse_args(argv))
        assert resolved == job.settings, job.name()


#: The baselines' papers (written here from the papers, not read from the code): MAML (Finn et al. 2017 §5.2),
#: ANIL (Raghu et al. 2020: MAML's), MetaOptNet (Lee et al. 2019 and its released command), RFS (Tian et al. 2020).
PAPER_BASELINES = {
    "maml": {"width": 1.0, "meta_steps": 60000, "meta_batch_1shot": 4, "meta_batch_5shot": 2, "queries": 15,
             "inner_steps": 5, "inner_steps_test": 10, "inner_lr": 0.01, "meta_lr": 0.001, "first_order": False},
    "metaoptnet": {"width": 1.0, "drop_rate": 0.1, "epochs": 60, "updates_per_epoch": 1000, "meta_batch": 8,
                   "train_shot": 15, "queries": 6, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
                   "decay_epochs": [20, 40, 50], "decay_factors": [0.06, 0.012, 0.0024], "C": 0.1,
                   "qp_iterations": 15, "label_smoothing": 0.1, "crop_padding": 8},
    "rfs": {"width": 1.0, "drop_rate": 0.1, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64,
            "epochs": 100, "decay_epochs": [60, 80], "decay_rate": 0.1, "crop_padding": 8},
}
PAPER_BASELINES["anil"] = PAPER_BASELINES["maml"]
#: RFS on tieredImageNet: 60 epochs, decays after 30, 40 and 50.
TIERED_RFS = {"epochs": 60, "decay_epochs": [30, 40, 50]}


def test_baseline_jobs_have_their_papers_settings_and_the_cells_tasks(paper):
    trained = _by_rule(paper, "baseline_train")
    assert len(trained) == 2 * 3 * (2 + 2 + 1 + 1)  # datasets x seeds x (MAML, ANIL per shot; MetaOptNet; RFS)
    for job, settings in trained:
        name, dataset = job.wildcards["baseline"], job.wildcards["dataset"]
        expected = {**PAPER_BASELINES[name], **(TIERED_RFS if (name, dataset) == ("rfs", "tiered") else {})}
        for key, value in expected.items():
            assert settings[key] == value, (job.name(), key)
        assert settings["seed"] == job.wildcards["seed"]
    cells = {(job.wildcards["dataset"], job.wildcards["seed"], job.wildcards["shot"]): s
             for job, s in _by_rule(paper, "evaluate") if job.wildcards["cells"] == 5}
    own = _by_rule(paper, "baseline_evaluate")
    probed = _by_rule(paper, "baseline_probe")
    assert (len(own), len(probed)) == (2 * 3 * 3 * 2, 2 * 3 * 4 * 2)
    for job, settings in own + probed:
        evaluate = settings.get("evaluate", settings)
        key = (job.wildcards["dataset"], job.wildcards["seed"], job.wildcards["shot"])
        assert evaluate == cells[key], job.name()  # the same tasks, queries and probe as the 5-cell runs
        if job.rule == "baseline_evaluate":
            name = job.wildcards["baseline"]
            assert {k: settings[name][k] for k in PAPER_BASELINES[name]} == PAPER_BASELINES[name], job.name()


def test_prepare_and_theory_use_the_paper_data_and_defaults(paper):
    _, config, _, _ = paper
    prepared = {job.wildcards["dataset"]: s for job, s in _by_rule(paper, "prepare")}
    assert {name: (s["fmt"], s["root"]) for name, s in prepared.items()} == {
        "mini": ("rfs-mini", "data/miniImageNet"), "tiered": ("rfs-tiered", "data/tieredImageNet")}
    (job, theory), = _by_rule(paper, "theory")
    assert job.argv[job.argv.index("--dataset") + 1] == "resources/mini"
    from metantk_nas.theory.config import TheoryConfig

    assert theory == TheoryConfig().to_dict()  # the theory defaults, not the embedded default's widths


def test_settings_command_prints_the_same_settings(paper, capsys):
    from metantk_nas.cli import main

    root, _, jobs, resolved = paper
    assert main(["settings", "--workflow", str(root), "--configfile", str(root / "config" / "paper.yaml"),
                 "--rule", "train", "--json"]) == 0
    import json

    out = capsys.readouterr().out
    printed = json.loads(out[:out.rindex("]") + 1])
    expected = [settings for job, settings in zip(jobs, resolved) if job.rule == "train"]
    assert [record["settings"] for record in printed] == json.loads(json.dumps(expected))
