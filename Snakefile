# MetaNTK-NAS: prepare -> search -> train -> evaluate -> tables, figures, report (+ theory checks).
# Run: snakemake --profile profiles/local   (config/README.md documents every config key)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# ---------------------------------------------------------------- rules


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/theory.smk"


# ---------------------------------------------------------------- target


localrules:
    all,
    table1,
    table2,
    figures,
    draw_cells,


rule all:
    default_target: True
    input:
        get_final_output(),
