"""The production stack file as shipped: its placeholders stop a preview before anything runs."""

import pytest
from pulumi import automation as auto

from tests.engine.harness import program_copy, stack

pytestmark = pytest.mark.engine


def test_preview_of_prod_with_placeholders_names_every_key_to_fill_and_applies_nothing(tmp_path):
    project = program_copy(tmp_path, stack_files=("Pulumi.prod.yaml",))
    with stack(project, "prod", tmp_path / "state") as st:
        for key in ("nexusAdminPassword", "pullPassword", "pushPassword"):
            st.set_config(f"nexus-cutover:{key}", auto.ConfigValue("not-used-" + key, secret=True))
        with pytest.raises(auto.CommandError) as failed:
            st.preview()
        message = str(failed.value)
        assert "the stack settings have 16 problem(s); nothing was applied" in message
        for key in (
            "nexusUrl",
            "dockerGroupUrl",
            "nodes[0].host",
            "nodes[0].hostKey",
            "nodes[4].role",
            "nodes[5].hostKey",
        ):
            assert f"nexus-cutover:{key}: still a <FILL: ...> placeholder" in message
        assert "Traceback" not in message
        assert st.export_stack().deployment.get("resources") in (None, [])
