# MetaNTK-NAS: prepare -> search -> train -> evaluate -> tables, figures, report (+ theory checks).
# Run: snakemake --profile profiles/local (GPU) or profiles/cpu (config/README.md documents every config key)
from snakemake.utils import min_version

min_version("9.0")


# The embedded default applies only when no --configfile is given: a config file given on the
# command line is complete on its own (keys it leaves out take the schema defaults, the paper's values).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# ---------------------------------------------------------------- rules


include: "workflow/rules/common.smk"
include: "workflow/rules/settings.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/study.smk"


# ---------------------------------------------------------------- target


localrules:
    all,
    table,
    figures,
    draw_cells,
    study,


rule all:
    default_target: True
    input:
        get_final_output(),
