"""Plug-ins named by "module:Attribute" strings, loaded when used."""

from __future__ import annotations

import pytest

from hakeeper.errors import ConfigError
from hakeeper.model.plugin import load_plugin
from hakeeper.model.text import control_paths


def test_a_plugin_is_the_attribute_its_target_names() -> None:
    assert load_plugin("hakeeper.model.text:control_paths", "the text check") is control_paths


def test_a_plugin_whose_module_is_missing_names_the_plugin_the_module_and_the_fix() -> None:
    with pytest.raises(
        ConfigError, match=r"^the thing needs hakeeper\.nowhere, which is not installed; reinstall"
    ):
        load_plugin("hakeeper.nowhere:Thing", "the thing")
