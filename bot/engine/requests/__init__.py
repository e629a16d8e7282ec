"""Requests and results of every task: plain dataclasses, validated in the bot process.

Torch-free on purpose: the bot process imports these and never loads torch.
"""

from .base import Failure, Request
from .fill_mask import FillCandidate, FillMaskRequest, FillMaskResult
from .generation import GenerationRequest, GenerationResult
from .learned_labels import (
    EvaluateLabelsRequest,
    Example,
    LabelEvaluation,
    LabelMessageRequest,
    LabelMessageResult,
    LinearHead,
    TrainedLabels,
    TrainLabelsRequest,
)
from .sentiment import SentenceSentiment, SentimentRequest, SentimentResult
from .tokenize import TokenizeRequest, TokenizeResult
from .zero_shot import ZeroShotRequest, ZeroShotResult

__all__ = [
    "Failure",
    "Request",
    "FillCandidate",
    "FillMaskRequest",
    "FillMaskResult",
    "GenerationRequest",
    "GenerationResult",
    "SentenceSentiment",
    "SentimentRequest",
    "SentimentResult",
    "TokenizeRequest",
    "TokenizeResult",
    "ZeroShotRequest",
    "ZeroShotResult",
    "EvaluateLabelsRequest",
    "Example",
    "LabelEvaluation",
    "LabelMessageRequest",
    "LabelMessageResult",
    "LinearHead",
    "TrainedLabels",
    "TrainLabelsRequest",
]
