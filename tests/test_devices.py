"""wavediff.devices: device names checked once at the edge, with the allowed set in the error."""
from __future__ import annotations

import pytest
import torch

from wavediff.devices import cpu_name, pick_device
from wavediff.errors import WavediffError


def test_auto_and_explicit_names():
    assert pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "mps", "CPU", "cuda0"])
def test_a_bad_name_is_refused_naming_the_allowed_ones(name):
    with pytest.raises(WavediffError, match=rf"device='{name}' is not allowed; choose auto, cpu, cuda or cuda:N"):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_refused(name):
    with pytest.raises(WavediffError, match="CUDA is not available"):
        pick_device(name)


def test_the_cpu_has_a_name():
    assert isinstance(cpu_name(), str) and cpu_name().strip()
