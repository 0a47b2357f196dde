# Each job's resolved settings, one file per job (the job reads it with --config): a changed setting
# reruns exactly the jobs it concerns.
rule settings:
    output:
        settings=f"{plan.SETTINGS}/{{job}}.json",
    log:
        "logs/settings/{job}.log",
    localrule: True
    conda:
        "../../envs/metantk-nas.yaml"
    params:
        settings=lambda wildcards: plan.settings_of_file(
            config, f"{plan.SETTINGS}/{wildcards.job}.json"
        ),
    script:
        "../scripts/write_settings.py"
