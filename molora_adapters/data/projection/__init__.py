"""Annotation projection: multilingual OIE training data from parallel text, without an LLM.

English tuples (gold, or silver from a trained English model) are projected onto human translations:
parallel paragraphs are split into sentences and paired (:mod:`.pairing`), words are aligned
SimAlign-style with the embedded multilingual encoder (:mod:`.align`), and each tuple's subject,
relation and objects become contiguous target spans or a reject with its reason (:mod:`.project`).
The output has the layout and record schema of ``molora annotate`` (:mod:`.pipeline`).

The ``projected`` corpus loader (:mod:`.corpus`: ``molora project`` output, or the vendored XQuAD projection) is
registered lazily by :mod:`molora_adapters.data`; importing this package registers the ``xquad`` parallel source.
This package never imports the OIE layer: the silver extractor, the evaluation sentences of the leak check and the
``reoie2016`` gold source come from :mod:`molora_adapters.oie.projection`, which ``molora project`` passes in.
"""

from .align import AlignMethod, EncodedSentence, EncoderAligner, WordAlignment, itermax, mutual_argmax
from .corpus import VENDORED_PROJECTED, export_projected, load_projected
from .leaks import eval_overlap, find_leaks
from .pairing import PairingConfig, PairOutcome, pair_sentences
from .pipeline import ProjectConfig, ProjectReport, SilverExtractor, project
from .project import ProjectedTuple, ProjectionReject, RejectReason, project_tuple
from .sentences import Sentence, split_sentences
from .sources import PARALLEL_SOURCES, ParallelUnit, load_parallel_source, register_parallel_source

__all__ = [
    "AlignMethod",
    "EncodedSentence",
    "EncoderAligner",
    "PARALLEL_SOURCES",
    "PairOutcome",
    "PairingConfig",
    "ParallelUnit",
    "ProjectConfig",
    "ProjectReport",
    "ProjectedTuple",
    "ProjectionReject",
    "RejectReason",
    "Sentence",
    "SilverExtractor",
    "VENDORED_PROJECTED",
    "WordAlignment",
    "eval_overlap",
    "export_projected",
    "find_leaks",
    "itermax",
    "load_parallel_source",
    "load_projected",
    "mutual_argmax",
    "pair_sentences",
    "project",
    "project_tuple",
    "register_parallel_source",
    "split_sentences",
]
