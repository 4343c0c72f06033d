"""Annotation projection: multilingual OIE training data from parallel text, without an LLM.

English tuples (gold, or silver from a trained English model) are projected onto human translations:
parallel paragraphs are split into sentences and paired (:mod:`.pairing`), words are aligned
SimAlign-style with the embedded multilingual encoder (:mod:`.align`), and each tuple's subject,
relation and objects become contiguous target spans or a reject with its reason (:mod:`.project`).
The output has the layout and record schema of ``molora annotate`` (:mod:`.pipeline`).

The ``projected`` corpus loader (:mod:`.corpus`: ``molora project`` output, or the vendored XQuAD projection) is
registered lazily by :mod:`molora_adapters.data`; :mod:`.sources` registers the ``xquad`` parallel source.
This package never imports the OIE layer: the silver extractor, the evaluation sentences of the leak check and the
``reoie2016`` gold source come from :mod:`molora_adapters.oie.projection`, which ``molora project`` passes in.
Public names load their module on first access.
"""

from ...utils.lazy import lazy_exports

_LAZY = {
    "AlignMethod": ".align",
    "EncodedSentence": ".align",
    "EncoderAligner": ".align",
    "PARALLEL_SOURCES": ".sources",
    "PairOutcome": ".pairing",
    "PairingConfig": ".pairing",
    "ParallelUnit": ".sources",
    "ProjectConfig": ".pipeline",
    "ProjectReport": ".pipeline",
    "ProjectedTuple": ".project",
    "ProjectionReject": ".project",
    "RejectReason": ".project",
    "Sentence": ".sentences",
    "SilverExtractor": ".pipeline",
    "VENDORED_PROJECTED": ".corpus",
    "WordAlignment": ".align",
    "eval_overlap": ".leaks",
    "export_projected": ".corpus",
    "find_leaks": ".leaks",
    "itermax": ".align",
    "load_parallel_source": ".sources",
    "load_projected": ".corpus",
    "mutual_argmax": ".align",
    "pair_sentences": ".pairing",
    "project": ".pipeline",
    "project_tuple": ".project",
    "register_parallel_source": ".sources",
    "split_sentences": ".sentences",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
