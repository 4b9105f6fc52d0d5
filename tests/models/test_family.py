"""wavediff.models.family: the registry holds the built-in family, names the known ones when
asked for another, and a family refuses a conditioning it does not train."""
from __future__ import annotations

import pytest

from wavediff.config import load_config
from wavediff.errors import WavediffError
from wavediff.models.family import family_names, get_family
from wavediff.training.trainer import Trainer


def test_the_builtin_family_and_a_bad_name(toy, micro_config):
    assert "diffwave" in family_names() and get_family("diffwave").name == "diffwave"
    assert micro_config.family == "diffwave"
    with pytest.raises(WavediffError, match=r"family='hifi' is not a known model family; choose one of \[.*'diffwave'"):
        get_family("hifi")
    with pytest.raises(WavediffError, match="does not train model.conditioning='class'"):
        Trainer(load_config("sc09-class-cpu", ["family=toy-gan"]), "unused", "unused", progress=False)
