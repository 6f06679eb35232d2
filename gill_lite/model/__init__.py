"""GILL's model: a frozen LM and the small trainable parts around it."""
from .decision import CLASSES, GENERATE, RETRIEVE, DecisionHead
from .gill import CheckpointMismatchError, GillModel
from .img_tokens import IMAGE_MARKER, ImgTokens, add_img_tokens, img_token_names
from .mapper import GillMapper
from .prefix import VisualPrefix
from .retrieval import RetrievalHeads

__all__ = ["CLASSES", "GENERATE", "RETRIEVE", "CheckpointMismatchError", "DecisionHead", "GillMapper", "GillModel",
           "IMAGE_MARKER", "ImgTokens", "RetrievalHeads", "VisualPrefix", "add_img_tokens", "img_token_names"]
