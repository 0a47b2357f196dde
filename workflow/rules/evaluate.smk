# Few-shot test: 1000 tasks of the test split, one job per shot setting.
rule evaluate:
    input:
        store=lambda wildcards: store(wildcards.dataset),
        settings=plan.SETTINGS_FILES["evaluate"],
        model=rules.train.output.model,
        code=code_files("evaluate", "train", "space", "data"),
    output:
        result=f"{RUN}/evaluate/{{shot}}shot.json",
    log:
        f"logs/evaluate/{RUN_LOG}-{{shot}}shot.log",
    benchmark:
        f"logs/benchmarks/evaluate/{RUN_LOG}-{{shot}}shot.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 8
    resources:
        runtime=120,
        mem_mb=16000,
        gpu=1,
    params:
        argv=lambda wildcards: plan.evaluate_argv(run_of(wildcards), wildcards.shot),
    script:
        "../scripts/metantk.py"
