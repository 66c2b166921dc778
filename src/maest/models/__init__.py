"""Models: the video ViT encoder, the MAE-ST pre-training model and the classifier, each built from
its dataclass config; named configs in the zoo."""

from maest.models.encoder import EncoderConfig, VideoEncoder
from maest.models.factory import create_model, describe_model, list_models, model_config
from maest.models.mae import DecoderConfig, MAEConfig, MAEOutput, MaskedAutoencoderViT
from maest.models.vit import ClassifierConfig, VisionTransformer

__all__ = ["ClassifierConfig", "DecoderConfig", "EncoderConfig", "MAEConfig", "MAEOutput", "MaskedAutoencoderViT",
           "VideoEncoder", "VisionTransformer", "create_model", "describe_model", "list_models",
           "model_config"]
