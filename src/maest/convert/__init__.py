"""Checkpoint converters: official MAE-ST / SlowFast, VideoMAE (original repos) and Hugging Face
VideoMAE into maest, and maest into safetensors or a Hugging Face VideoMAE folder. Every source key
is consumed and every target key filled, the model is rebuilt from a fully resolved config, and
anything without an exact counterpart is refused with a one-line reason."""

from maest.convert.accounting import ConversionError, KeyMap
from maest.convert.hf_videomae import export_hf_videomae, hf_export_problems, read_hf
from maest.convert.official import from_official_state
from maest.convert.run import convert, detect_format
from maest.convert.spec import Imported, build_config
from maest.convert.videomae import read_videomae

__all__ = ["ConversionError", "Imported", "KeyMap", "build_config", "convert", "detect_format", "export_hf_videomae",
           "from_official_state", "hf_export_problems", "read_hf", "read_videomae"]
