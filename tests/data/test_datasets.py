"""wavediff.data.datasets: vocoder crops aligned to mel frames and cached, clips padded or cropped
to length, and peak normalisation of both (mels computed by hand from the scaled audio)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.audio.mel import MelFrontend
from wavediff.config import MEL_PRESETS
from wavediff.data.datasets import ClipDataset, VocoderDataset
from wavediff.data.labels import read_labelled_entries
from wavediff.data.manifest import read_entries

from helpers import CLIP, CLIP_SR, SR


def test_crops_are_aligned_to_mel_frames_and_cached_in_the_run(tmp_path, audio_dir):
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    entries = read_entries(audio_dir)
    cache = tmp_path / "run" / "cache"
    ds = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache)
    audio, mel = ds.crop(3, start_frame=5)
    assert audio.shape == (8 * 256,) and mel.shape == (80, 8)
    full = fe(torch.from_numpy(ds.audio(3)))
    torch.testing.assert_close(mel, full[:, 5:13])
    np.testing.assert_array_equal(audio.numpy(), ds.audio(3)[5 * 256:13 * 256])
    for i in range(len(entries)):
        ds.check(i)
    assert len(list(cache.glob("*.npy"))) == len(entries)
    assert not list(audio_dir.glob("*.npy"))  # nothing written beside the user's audio
    again = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache)  # from the cache
    np.testing.assert_array_equal(again.mel(3), ds.mel(3))


def test_short_clips_are_padded_not_dropped(audio_dir):
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    entries = read_entries(audio_dir)
    ds = VocoderDataset(entries, fe, crop_frames=16)
    short = [i for i, e in enumerate(entries) if e.path.name == "short.wav"][0]
    assert len(ds) == len(entries)
    audio, mel = ds.crop(short, torch.Generator().manual_seed(0))
    assert audio.shape == (16 * 256,) and mel.shape == (80, 16)
    assert torch.count_nonzero(audio[int(0.05 * SR) + 1:]) == 0  # zero padding after the clip
    b_audio, b_mel = ds.batch([0, short, 2], torch.Generator().manual_seed(0))
    assert b_audio.shape == (3, 4096) and b_mel.shape == (3, 80, 16)


def test_clip_dataset_pads_short_and_crops_long_clips(digits):
    entries = read_labelled_entries(digits)
    ds = ClipDataset(entries, CLIP_SR, CLIP, labels=list(range(len(entries))))
    lengths = [ds.check(i).num_samples for i in range(len(ds))]
    assert lengths == [sf.info(e.path).frames for e in entries]
    short = next(i for i, e in enumerate(entries) if sf.info(e.path).frames < CLIP)
    clip = ds.clip(short)
    n = sf.info(entries[short].path).frames
    assert torch.equal(clip[n:], torch.zeros(CLIP - n))             # zero-padded at the end
    long = next(i for i, e in enumerate(entries) if sf.info(e.path).frames > CLIP)
    full = torch.from_numpy(sf.read(entries[long].path, dtype="float32")[0])
    g = torch.Generator().manual_seed(0)
    for _ in range(5):                                              # a random crop of the clip
        c = ds.clip(long, g)
        starts = [s for s in range(len(full) - CLIP + 1) if torch.equal(full[s:s + CLIP], c)]
        assert starts
    assert torch.equal(ds.clip(long, random_offset=False), full[:CLIP])
    audio, labels = ds.batch([0, long], g)
    assert audio.shape == (2, CLIP) and labels.tolist() == [0, long]


def test_vocoder_crops_and_mels_come_from_the_scaled_utterance(tmp_path, audio_dir):
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    entries = read_entries(audio_dir)
    cache = tmp_path / "cache"
    plain = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache)
    scaled = VocoderDataset(entries, fe, crop_frames=8, cache_dir=cache, peak_level=0.95)
    raw = plain.audio(4)
    gain = 0.95 / float(np.abs(raw).max())
    assert scaled.gain(4) == pytest.approx(gain)
    audio, mel = scaled.crop(4, start_frame=3)
    np.testing.assert_allclose(audio.numpy(), raw[3 * 256:11 * 256] * gain, rtol=1e-6)
    want = fe(torch.from_numpy(raw * np.float32(gain)))[:, 3:11]
    torch.testing.assert_close(mel, want)
    assert float(np.abs(scaled.audio(4)).max()) == pytest.approx(0.95, rel=1e-5)
    # both caches live side by side: the normalised entry does not overwrite the plain one
    _, plain_mel = plain.crop(4, start_frame=3)
    assert not torch.allclose(plain_mel, mel)
    torch.testing.assert_close(plain_mel, fe(torch.from_numpy(raw))[:, 3:11])
    assert len(list(cache.glob("*.npy"))) == 2
    # gains survive keep() (what screening does) with the indices remapped
    kept = scaled.keep([4, 0])
    assert kept.gain(0) == pytest.approx(gain)


def test_clips_are_scaled_to_the_peak(audio_dir):
    entries = read_entries(audio_dir)
    ds = ClipDataset(entries, SR, 4000, peak_level=0.5)
    plain = ClipDataset(entries, SR, 4000)
    clip = ds.clip(2, random_offset=False)
    raw = plain.clip(2, random_offset=False)
    full, _ = sf.read(entries[2].path, dtype="float32")
    np.testing.assert_allclose(clip.numpy(), raw.numpy() * 0.5 / np.abs(full).max(), rtol=1e-6)
