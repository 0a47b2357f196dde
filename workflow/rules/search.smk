# Prune the supernet (or draw/load a cell) into one genotype per run.
rule search:
    input:
        store=lambda wildcards: store(wildcards.dataset),
        settings=plan.SETTINGS_FILES["search"],
        code=code_files("search", "kernels", "proxies", "space", "data"),
    output:
        genotype=f"{RUN}/search/genotype.json",
        trace=f"{RUN}/search/trace.csv",
        summary=f"{RUN}/search/search.json",
    log:
        f"logs/search/{RUN_LOG}.log",
    benchmark:
        f"logs/benchmarks/search/{RUN_LOG}.tsv"
    # Longest work first: a search unlocks a training, the longest jobs of the DAG (see train.smk).
    priority: 3
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 1
    resources:
        runtime=360,
        mem_mb=24000,
        gpu=1,
    params:
        argv=lambda wildcards: plan.search_argv(run_of(wildcards)),
        resume=f"{WORK}/search",
    script:
        "../scripts/metantk.py"
