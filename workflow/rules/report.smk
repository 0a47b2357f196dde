# Table 1 (every (method, dataset, cells) of the paper's main comparison) or Table 2 (the ablation),
# each number beside the published one.
rule table:
    input:
        runs=lambda wildcards: table_inputs(wildcards.table),
        code=code_files("report"),
    output:
        csv=report(
            "results/{table}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels=table_labels,
        ),
        md="results/{table}.md",
        json="results/{table}.json",
    log:
        "logs/report/{table}.log",
    benchmark:
        "logs/benchmarks/report/{table}.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        argv=lambda wildcards: plan.table_argv(config, wildcards.table),
    script:
        "../scripts/metantk.py"


# Ablation bars, search cost per method and the pruning traces, as PNG and SVG.
rule figures:
    input:
        runs=[f for table in plan.TABLES for f in table_inputs(table)],
        traces=run_files("search/trace.csv", plan.runs(config)),
        code=code_files("report", "search"),
    output:
        ablation=report(
            "results/figures/ablation.svg",
            caption="../report/ablation.rst",
            category="Figures",
            labels={"figure": "ablation"},
        ),
        ablation_png="results/figures/ablation.png",
        cost=report(
            "results/figures/search_cost.svg",
            caption="../report/search_cost.rst",
            category="Figures",
            labels={"figure": "search cost"},
        ),
        cost_png="results/figures/search_cost.png",
        trace=report(
            "results/figures/search_trace.svg",
            caption="../report/search_trace.rst",
            category="Figures",
            labels={"figure": "pruning trace"},
        ),
        trace_png="results/figures/search_trace.png",
    log:
        "logs/report/figures.log",
    benchmark:
        "logs/benchmarks/report/figures.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 1
    resources:
        runtime=10,
        mem_mb=4000,
    params:
        argv=lambda wildcards: plan.figures_argv(config),
    script:
        "../scripts/metantk.py"


# The normal and reduction cell of one run, drawn like Paper Fig. 2.
rule draw_cells:
    input:
        genotype=rules.search.output.genotype,
        code=code_files("space"),
    output:
        normal=report(
            f"{CELLS}_normal.svg",
            caption="../report/cells.rst",
            category="Cells",
            subcategory="{dataset}, {cells} cells",
            labels={"method": "{method}", "seed": "{seed}", "cell": "normal"},
        ),
        reduce=report(
            f"{CELLS}_reduce.svg",
            caption="../report/cells.rst",
            category="Cells",
            subcategory="{dataset}, {cells} cells",
            labels={"method": "{method}", "seed": "{seed}", "cell": "reduction"},
        ),
        normal_png=f"{CELLS}_normal.png",
        reduce_png=f"{CELLS}_reduce.png",
    log:
        f"logs/draw_cells/{RUN_LOG}.log",
    benchmark:
        f"logs/benchmarks/draw_cells/{RUN_LOG}.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        argv=lambda wildcards: plan.draw_argv(run_of(wildcards)),
    script:
        "../scripts/metantk.py"
