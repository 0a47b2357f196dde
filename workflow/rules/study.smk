# The proxy validity study: every proxy of every study run's cell, ranked against the accuracy the run reaches
# (the runs themselves are drawn, trained and evaluated by search.smk, train.smk and evaluate.smk).
rule study_score:
    input:
        store=lambda wildcards: store(wildcards.dataset),
        settings=plan.SETTINGS_FILES["study_score"],
        genotype=f"{RUN}/search/genotype.json",
        code=code_files("study", "search", "kernels", "proxies", "space", "data"),
    output:
        scores=plan.STUDY_SCORES,
    log:
        f"logs/study_score/{RUN_LOG}.log",
    benchmark:
        f"logs/benchmarks/study_score/{RUN_LOG}.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=24000,
        gpu=1,
    params:
        argv=lambda wildcards: plan.study_score_argv(config, run_of(wildcards)),
    script:
        "../scripts/metantk.py"


# Kendall τ and Spearman ρ of every proxy against 1- and 5-shot accuracy, with bootstrap intervals.
rule study_summary:
    input:
        scores=[plan.STUDY_SCORES.format(**run) for run in plan.study_runs(config)],
        evaluations=[
            f"{RUN}/evaluate/{shot}shot.json".format(**run)
            for run in plan.study_runs(config)
            for shot in SHOTS
        ],
        code=code_files("study", "proxies"),
    output:
        summary=report(
            plan.STUDY_SUMMARY,
            caption="../report/proxies.rst",
            category="Proxy study",
        ),
        architectures="results/proxies_architectures.csv",
        scatter=report(
            f"{FIGURES}/proxies_scatter.svg",
            caption="../report/proxies_scatter.rst",
            category="Proxy study",
        ),
        tau=report(
            f"{FIGURES}/proxies_tau.svg",
            caption="../report/proxies_tau.rst",
            category="Proxy study",
        ),
        scatter_png=f"{FIGURES}/proxies_scatter.png",
        tau_png=f"{FIGURES}/proxies_tau.png",
    log:
        "logs/study/summary.log",
    benchmark:
        "logs/benchmarks/study/summary.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    params:
        argv=lambda wildcards: plan.study_summary_argv(config),
    script:
        "../scripts/metantk.py"


# `snakemake study` (make study): the study alone, whether or not study.enabled adds it to `all`.
rule study:
    input:
        rules.study_summary.output,
