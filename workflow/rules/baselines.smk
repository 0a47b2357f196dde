# Table 1's baselines (MAML, ANIL, MetaOptNet, RFS): trained at their papers' settings, evaluated on the
# cells' test tasks with their own protocol and with the cells' linear probe.
rule baseline_train:
    input:
        store=lambda wildcards: store(wildcards.dataset),
        settings=plan.SETTINGS_FILES["baseline_train"],
        code=code_files("baselines", "train", "space", "data"),
    output:
        model=f"{BASELINE}/train-{{regime}}/model.pt",
        metrics=f"{BASELINE}/train-{{regime}}/metrics.csv",
        summary=f"{BASELINE}/train-{{regime}}/train.json",
    log:
        f"logs/baseline_train/{BASELINE_LOG}-{{regime}}.log",
    benchmark:
        f"logs/benchmarks/baseline_train/{BASELINE_LOG}-{{regime}}.tsv"
    priority: 2  # as train (train.smk)
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 8
    resources:
        runtime=1440,
        mem_mb=32000,
        gpu=1,
    params:
        argv=lambda wildcards: plan.baseline_train_argv(
            baseline_of(wildcards), wildcards.regime
        ),
        resume=f"{BASELINE_WORK}/train-{{regime}}",
    script:
        "../scripts/metantk.py"


# A baseline's own test protocol (MAML/ANIL adaptation, the MetaOptNet SVM) on the cells' tasks.
rule baseline_evaluate:
    input:
        store=lambda wildcards: store(wildcards.dataset),
        settings=plan.SETTINGS_FILES["baseline_evaluate"],
        model=lambda wildcards: plan.baseline_model(
            baseline_of(wildcards), wildcards.shot
        ),
        code=code_files("baselines", "evaluate", "space", "data"),
    output:
        result=f"{BASELINE}/evaluate/{{shot}}shot.json",
    log:
        f"logs/baseline_evaluate/{BASELINE_LOG}-{{shot}}shot.log",
    benchmark:
        f"logs/benchmarks/baseline_evaluate/{BASELINE_LOG}-{{shot}}shot.tsv"
    priority: 1  # MAML's per-task adaptation is long (train.smk)
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 8
    resources:
        runtime=120,
        mem_mb=16000,
        gpu=1,
    params:
        argv=lambda wildcards: plan.baseline_evaluate_argv(
            baseline_of(wildcards), wildcards.shot
        ),
    script:
        "../scripts/metantk.py"


# The cells' linear probe on a baseline's features (like-for-like backbone comparison).
rule baseline_probe:
    input:
        store=lambda wildcards: store(wildcards.dataset),
        settings=plan.SETTINGS_FILES["baseline_probe"],
        model=lambda wildcards: plan.baseline_model(
            baseline_of(wildcards), wildcards.shot
        ),
        code=code_files("evaluate", "space", "data"),
    output:
        result=f"{BASELINE}/probe/{{shot}}shot.json",
    log:
        f"logs/baseline_probe/{BASELINE_LOG}-{{shot}}shot.log",
    benchmark:
        f"logs/benchmarks/baseline_probe/{BASELINE_LOG}-{{shot}}shot.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 8
    resources:
        runtime=120,
        mem_mb=16000,
        gpu=1,
    params:
        argv=lambda wildcards: plan.baseline_probe_argv(
            baseline_of(wildcards), wildcards.shot
        ),
    script:
        "../scripts/metantk.py"
