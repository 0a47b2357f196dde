# Convert a dataset (or render the embedded glyphs) into the memory-mapped store.
rule prepare:
    input:
        code=code_files("data"),
    output:
        store=f"{STORE}/dataset.json",
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare/{dataset}.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 2
    resources:
        runtime=240,
        mem_mb=16000,
    params:
        argv=lambda wildcards: plan.prepare_argv(config, wildcards.dataset),
    script:
        "../scripts/metantk.py"
