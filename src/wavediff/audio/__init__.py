"""Audio input/output, mel front-ends and the Griffin-Lim baseline."""
from wavediff.audio.io import AUDIO_EXTENSIONS, load_audio, save_audio
from wavediff.audio.mel import MelFrontend

__all__ = ["AUDIO_EXTENSIONS", "load_audio", "save_audio", "MelFrontend"]
