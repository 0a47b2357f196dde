# Theorems 1 and 2 measured on MLPs of growing width (global convergence, MAML = MetaNTK regression).
rule theory:
    input:
        store=lambda wildcards: store(plan.theory_dataset(config)),
        settings=plan.SETTINGS_FILES["theory"],
        code=code_files("theory", "kernels", "data"),
    output:
        summary=report(
            f"{THEORY}/summary.md",
            caption="../report/theory.rst",
            category="Theory",
        ),
    log:
        "logs/theory/theory.log",
    benchmark:
        "logs/benchmarks/theory/theory.tsv"
    conda:
        "../../envs/metantk-nas.yaml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    params:
        argv=lambda wildcards: plan.theory_argv(config),
    script:
        "../scripts/metantk.py"
