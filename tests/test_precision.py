"""wavediff.precision: one set of names, checked the same way everywhere."""
from __future__ import annotations

import argparse

import pytest
import torch

import wavediff.precision as precision
from wavediff.cli import build_parser
from wavediff.config import TrainConfig
from wavediff.errors import WavediffError


def test_compute_dtypes_and_element_sizes_match_torch():
    for name, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16),
                        ("int8", torch.bfloat16)]:
        assert precision.compute_dtype(name) is dtype
        assert precision.element_bytes(name) == torch.empty(0, dtype=dtype).element_size()


def test_a_bad_name_is_refused_naming_the_value_and_the_allowed_set():
    with pytest.raises(WavediffError, match=r"precision='half'.*\['auto', 'fp32', 'bf16', 'int8'\]"):
        precision.resolve_precision("half", "cpu")
    with pytest.raises(WavediffError, match=r"precision='int8'.*\['auto', 'fp32', 'bf16', 'fp16'\]"):
        precision.resolve_precision("int8", "cpu", precision.TRAINING_PRECISIONS)
    with pytest.raises(WavediffError, match=r"train.precision='int8'"):
        TrainConfig(precision="int8")


def test_auto_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    assert precision.resolve_precision("int8", "cpu") == "int8"


def test_every_cli_precision_choice_list_is_one_of_the_vocabulary_tuples():
    vocab = {precision.TRAINING_PRECISIONS, precision.ENGINE_PRECISIONS, precision.GENERATION_PRECISIONS,
             precision.WEIGHT_FORMATS}
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = 0
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest in ("precision", "weights"):
                assert tuple(action.choices) in vocab, (name, action.choices)
                seen += 1
    assert seen == 7   # train, vocode (precision, weights), generate, evaluate-generation, evaluate, search-schedule
