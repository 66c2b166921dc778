"""Model zoo: the MAE-ST pre-training model and the video ViT classifier."""

from maest.models.mae import MAEOutput, MaskedAutoencoderViT
from maest.models.registry import create_model, list_models, register_model

__all__ = ["MAEOutput", "MaskedAutoencoderViT", "create_model", "list_models", "register_model"]
