"""Files generated from the settings classes are current: the workflow schema and the config/README.md tables."""

from __future__ import annotations

from _workflow_helpers import REPO
from metantk_nas.plan import schema


def test_workflow_schema_is_generated_from_the_settings_classes():
    current = (REPO / schema.SCHEMA_FILE).read_text(encoding="utf-8")
    assert current == schema.schema_text(), "stale: run `python -m metantk_nas.plan.schema --write`"


def test_config_readme_tables_are_generated_from_the_settings_classes():
    current = (REPO / schema.README_FILE).read_text(encoding="utf-8")
    assert current == schema.readme_text(current), "stale: run `python -m metantk_nas.plan.schema --write`"


def test_a_setting_is_one_line_everywhere():
    """Every workflow key of a settings class is in the schema, the README table and the command's flags."""
    from metantk_nas.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    text = (REPO / schema.README_FILE).read_text(encoding="utf-8")
    generated = schema.workflow_schema()
    for section, cls in schema.SECTIONS.items():
        flags = {option for action in commands[section]._actions for option in action.option_strings}
        for key in cls.workflow_keys():
            assert key in generated["properties"][section]["properties"], (section, key)
            assert f"| `{key}` |" in text, (section, key)
            assert "--" + key.replace("_", "-") in flags, (section, key)
