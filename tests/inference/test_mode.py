"""wavediff.inference.mode: engine modes refuse the settings of another mode and bad block sizes."""
from __future__ import annotations

import pytest

from wavediff.errors import WavediffError
from wavediff.inference import EngineMode


def test_engine_modes_refuse_settings_of_another_mode_and_bad_blocks():
    with pytest.raises(WavediffError, match="chunk_samples=100 is for chunks, not stream"):
        EngineMode("stream", chunk_samples=100)
    with pytest.raises(WavediffError, match="block_rows=8 is for streaming, not chunks"):
        EngineMode("chunks", chunk_samples=100, block_rows=8)
    with pytest.raises(WavediffError, match="block_rows=0"):
        EngineMode.stream(0)
    with pytest.raises(WavediffError, match=r"engine mode 'windows'.*\['one-pass', 'chunks', 'stream'\]"):
        EngineMode("windows")
    assert str(EngineMode.chunks(100)) == "chunks of 100 samples" and EngineMode() == EngineMode.one_pass()
