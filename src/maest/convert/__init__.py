"""Checkpoint converters: official MAE-ST / SlowFast, VideoMAE (original repos) and Hugging Face
VideoMAE into maest, and maest into a Hugging Face VideoMAE folder. Every source key is consumed
and every target key filled, or the conversion fails listing what is left."""

from maest.convert.accounting import ConversionError, KeyMap
from maest.convert.hf_videomae import export_hf_videomae, from_hf_videomae
from maest.convert.official import from_official
from maest.convert.videomae import from_videomae

__all__ = ["ConversionError", "KeyMap", "export_hf_videomae", "from_hf_videomae", "from_official", "from_videomae"]
