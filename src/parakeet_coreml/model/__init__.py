"""Pure-PyTorch Parakeet (FastConformer + TDT/RNNT) following NeMo's module tree."""

from .encoder import ConformerEncoder
from .joint import RNNTJoint
from .parakeet import ParakeetModel
from .prediction import RNNTDecoder
from .preprocessor import AudioToMelSpectrogramPreprocessor, mel_filterbank

__all__ = [
    "AudioToMelSpectrogramPreprocessor",
    "ConformerEncoder",
    "ParakeetModel",
    "RNNTDecoder",
    "RNNTJoint",
    "mel_filterbank",
]
