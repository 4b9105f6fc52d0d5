"""wavediff.training.distributed: outside torchrun a single-process context whose collectives are
the identity; torchrun's variables checked with named errors; other ranks log warnings only;
end_process flushes logs and streams and skips interpreter finalisation. (Several processes are
tested in tests/integration/test_distributed.py.)"""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from wavediff.errors import WavediffError
from wavediff.training.distributed import ENV_VARS, configure_rank_logging, init_distributed, launched_by_torchrun


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_outside_torchrun_one_process_whose_collectives_are_the_identity(no_torchrun):
    assert not launched_by_torchrun()
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.enabled) == (0, 1, True, False)
    values = torch.tensor([1.5, -2.0])
    assert ctx.all_reduce_sum(values).tolist() == [1.5, -2.0] and ctx.all_reduce_sum(values).dtype == torch.float64
    assert ctx.all_reduce_max(torch.tensor([3, 7])).tolist() == [3, 7]
    assert ctx.all_gather(values).shape == (1, 2)
    ctx.barrier()
    ctx.shutdown()


def test_a_world_of_one_under_torchrun_needs_no_group(monkeypatch):
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    assert launched_by_torchrun()
    ctx = init_distributed("cpu")
    assert ctx.world_size == 1 and not ctx.enabled


def test_bad_torchrun_variables_are_named(monkeypatch):
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "two"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(WavediffError, match="WORLD_SIZE='two' must be an integer"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(WavediffError, match=r"RANK=2 must be in \[0, WORLD_SIZE=2\)"):
        init_distributed("cpu")


def test_other_ranks_keep_warnings_only_with_their_rank(monkeypatch):
    root = logging.getLogger()
    handler = logging.StreamHandler()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)
    configure_rank_logging(0)
    assert root.level == logging.INFO and handler.formatter is None
    configure_rank_logging(3)
    assert root.level == logging.WARNING
    record = logging.LogRecord("wavediff", logging.WARNING, __file__, 1, "slow", None, None)
    assert handler.format(record).startswith("[rank 3] ") and handler.format(record).endswith("wavediff: slow")


def test_end_process_flushes_logs_and_streams_and_exits_with_the_code(tmp_path):
    script = f"""
import logging, sys
from wavediff.training.distributed import end_process
logging.basicConfig(filename={str(tmp_path / 'run.log')!r}, level=logging.INFO)
logging.getLogger('wavediff').info('last line of the log')
sys.stdout.write('buffered, no newline')
import atexit
atexit.register(lambda: print('atexit ran'))
end_process(3)
print('not reached')
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 3
    assert done.stdout == "buffered, no newline"           # flushed; no finalisation (atexit did not run)
    assert "last line of the log" in (tmp_path / "run.log").read_text()
