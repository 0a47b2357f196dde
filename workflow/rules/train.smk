# RFS supervised training of the final network; resumes from its undeclared work checkpoints.
rule train:
    input:
        store=lambda wildcards: store(wildcards.dataset),
        settings=plan.SETTINGS_FILES["train"],
        genotype=rules.search.output.genotype,
        code=code_files("train", "space", "data"),
    output:
        model=f"{RUN}/train/model.pt",
        metrics=f"{RUN}/train/metrics.csv",
        summary=f"{RUN}/train/train.json",
    log:
        f"logs/train/{RUN_LOG}.log",
    benchmark:
        f"logs/benchmarks/train/{RUN_LOG}.tsv"
    # Above the short evaluations: started last, a training ran alone on an idle machine (2-core CPU run:
    # 100 s of one idle core at the end).
    priority: 2
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 8
    resources:
        runtime=1440,
        mem_mb=32000,
        gpu=1,
    params:
        argv=lambda wildcards: plan.train_argv(run_of(wildcards)),
        resume=f"{WORK}/train",
    script:
        "../scripts/metantk.py"
