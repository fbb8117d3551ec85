"""The settings reference: rendered from the config models, every key described, none stale."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from pydantic import BaseModel, Field

from ugro import config
from ugro.checks import registry
from ugro.config import settings

if TYPE_CHECKING:
    from types import ModuleType

HOOK = Path(__file__).resolve().parents[2] / "docs" / "hooks" / "settings_reference.py"


def load_hook() -> ModuleType:
    """The mkdocs hook, imported from its path as mkdocs imports it."""
    spec = importlib.util.spec_from_file_location("settings_reference", HOOK)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would: its dataclass looks itself up there.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hook = load_hook()


def page_rows() -> dict[tuple[str, str], list[str]]:
    """The rendered page's table rows, by (section anchor, key): the other cells."""
    rows: dict[tuple[str, str], list[str]] = {}
    anchor = ""
    for line in hook.render().splitlines():
        heading = re.match(r"## .* \{ #([\w-]+) \}$", line)
        if heading:
            anchor = heading[1]
        elif line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[anchor, cells[0].strip("`")] = cells[1:]
    return rows


def nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """Every model a part of cluster.yaml is validated with, from this one down."""
    found = {model}
    for info in model.model_fields.values():
        annotations = [info.annotation]
        while annotations:
            annotation = annotations.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found |= nested_models(annotation)
            annotations.extend(getattr(annotation, "__args__", ()))
    return found


def test_every_part_of_the_file_has_a_section() -> None:
    """A new nested section of cluster.yaml (a model) is on the page, or this fails."""
    shown = {section.model for section in hook.sections()}
    assert shown == nested_models(settings.ClusterConfig) | {settings.NodeSettings}
    assert len(shown) == len(hook.sections())


def test_every_key_is_a_row_with_a_description() -> None:
    """Each field of each section is one row, and its meaning is not empty."""
    rows = page_rows()
    for section in hook.sections():
        for name in hook.own_fields(section.model):
            cells = rows[section.anchor, name]
            assert cells[-1], f"{section.path}.{name} has no meaning"
    expected = sum(len(hook.own_fields(s.model)) for s in hook.sections())
    assert len(rows) == expected


def test_no_description_names_a_field_that_is_gone() -> None:
    """DESCRIPTIONS holds exactly the fields the sections list (a check's timeout is derived)."""
    described = {
        f"{section.model.__name__}.{name}"
        for section in hook.sections()
        for name in hook.own_fields(section.model)
        if not (section.model is settings.Timeouts and name in config.ALL_CHECKS)
    }
    assert set(hook.DESCRIPTIONS) == described


def test_a_worker_lists_only_what_it_adds() -> None:
    """The node settings are listed once; a worker's and the whole file's sections add to them."""
    rows = page_rows()
    assert ("every-node", "gpus") in rows
    assert ("workers", "gpus") not in rows
    assert ("top-level-only", "gpus") not in rows
    assert ("workers", "name") in rows
    assert ("top-level-only", "scheduler") in rows


def test_the_default_checks_are_the_registry() -> None:
    """The `checks` row lists the default checks in order, as cluster.yaml would write them."""
    type_cell, default_cell, limits_cell, _ = page_rows()["every-node", "checks"]
    assert type_cell == "list of check names"
    listed = re.fullmatch(r"`\[([^\]]*)\]`", default_cell)
    assert listed
    assert tuple(listed[1].split(", ")) == config.DEFAULT_CHECKS
    assert limits_cell == "at least 1 item(s)"


def test_each_check_timeout_is_its_registry_default() -> None:
    """`timeouts` has connect, then one row per check with the check's own default."""
    rows = page_rows()
    timeout_keys = [key for anchor, key in rows if anchor == "timeouts"]
    assert timeout_keys == ["connect", *registry()]
    for name, check in registry().items():
        _, default_cell, limits_cell, meaning = rows["timeouts", name]
        assert default_cell == f"`{check.default_timeout_s:g}`"
        assert limits_cell == "> 0, ≤ 3600"
        assert f"`{name}`" in meaning


@pytest.mark.parametrize(
    ("anchor", "key", "cells"),
    [
        ("monitor", "interval_s", ["number", "`30`", "> 0, ≤ 86400"]),
        ("master", "port", ["integer", "`29500`", "≥ 1, ≤ 65535"]),
        ("every-node", "host_key_policy", ["one of `strict`, `accept-new`, `off`", "`strict`", ""]),
        ("every-node", "ssh_port", ["integer or unset", "unset", "≥ 1, ≤ 65535"]),
        ("every-node", "master", ["[`master`](#master) or unset", "unset", ""]),
        ("every-node", "timeouts", ["[`timeouts`](#timeouts)", "see its section", ""]),
        ("workers", "name", ["text", "required", ""]),
        (
            "alerts",
            "sinks",
            ["list of [`alerts.sinks[]`](#alerts-sinks)", "none", "at most 100 items"],
        ),
        ("alerts-sinks", "headers", ["map of text to text", "none", "at most 100 items"]),
        ("exporter", "enabled", ["true or false", "`true`", ""]),
        ("recovery-actions", "check", ["a check name", "required", ""]),
    ],
)
def test_rows_say_the_model(anchor: str, key: str, cells: list[str]) -> None:
    """Type, default and limits of a few keys, as the models give them."""
    assert page_rows()[anchor, key][:3] == cells


class Probe(BaseModel):
    """A model the renderer has never seen: what it says comes from the model alone."""

    ratio: float = Field(default=0.25, gt=0, lt=1)
    names: list[str] = Field(default_factory=lambda: ["a", "b"], min_length=2)
    mode: Literal["fast", "slow"] | None = None


def test_a_new_field_is_rendered_from_its_model() -> None:
    """Bounds, factories, literals and optional values, read from the field."""
    fields = Probe.model_fields
    assert hook.type_name(fields["ratio"].annotation) == "number"
    assert hook.default(fields["ratio"]) == "`0.25`"
    assert hook.limits(fields["ratio"]) == "> 0, < 1"
    assert hook.type_name(fields["names"].annotation) == "list of texts"
    assert hook.default(fields["names"]) == "`[a, b]`"
    assert hook.limits(fields["names"]) == "at least 2 item(s)"
    assert hook.type_name(fields["mode"].annotation) == "one of `fast`, `slow` or unset"
    assert hook.default(fields["mode"]) == "unset"


def test_a_field_without_a_description_is_refused() -> None:
    """A key nobody described fails the build, saying where to describe it; never an empty cell."""
    with pytest.raises(hook.UndocumentedSettingError, match=r"^Probe\.ratio: no description; add"):
        hook.description(Probe, "ratio")


class Holder(BaseModel):
    """A model with a nested part the page has no section for."""

    probe: Probe = Probe()


def test_a_nested_part_without_a_section_is_refused() -> None:
    """A new nested section of cluster.yaml fails the build until the page has a section for it."""
    with pytest.raises(hook.UndocumentedSettingError, match=r"^Probe: a part of cluster\.yaml"):
        hook.type_name(Holder.model_fields["probe"].annotation)


def test_a_pipe_in_a_cell_does_not_split_the_table() -> None:
    """Every row of the page has exactly the five cells of its header."""
    for line in hook.render().splitlines():
        if line.startswith("|"):
            assert len(re.split(r"(?<!\\)\|", line.strip().strip("|"))) == 5, line
