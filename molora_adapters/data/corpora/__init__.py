"""Built-in loaders of OIE training corpora, each returning a `datasets.Dataset` in ``OIE_FEATURES``.

=============  ==========================================================  =======================
name           format                                                      default path
=============  ==========================================================  =======================
``oie2016``    OIE2016 ``train.oie`` (``sent<TAB>('rel', [i])<TAB>...``)   vendored train split
               or the ``.oie.conll`` BIO table
``imojie``     IMoJIE subsets in CycleOIE's T5 text format                 vendored subsets
``lsoie-gpt``  GPT-annotated LSOIE ``lsoie-g-1.0.tsv`` (same T5 format)    vendored
``lsoie``      LSOIE ``.oie`` files (``sent<TAB>pred<TAB>arg0<TAB>...``)   path required
``openie4``    OpenIE4 output as in the AI2 TupleInf markdown dump         path required
``jsonl``      one :class:`OIERecord` dict per line                        path required
=============  ==========================================================  =======================

Text-only tuple parts are aligned to word positions with :mod:`molora_adapters.data.alignment`. Dropped
tuples are counted by reason in an :class:`AlignmentReport` (pass ``report=`` to receive it; a summary
is logged) and listed per sentence in ``meta["rejected"]``.

One module per format; :mod:`.records` holds the alignment and record building they share. Importing this
package registers every built-in loader.
"""

from .jsonl import load_jsonl
from .lsoie import load_lsoie
from .oie2016 import load_oie2016
from .openie4 import load_openie4
from .records import EVAL_OVERLAP_PREFIXES, MAX_EXTRA_ARGS, RESOURCES, align_tuple, build_records
from .t5 import load_imojie, load_lsoie_gpt, parse_t5_target

__all__ = [
    "EVAL_OVERLAP_PREFIXES",
    "MAX_EXTRA_ARGS",
    "RESOURCES",
    "align_tuple",
    "build_records",
    "load_imojie",
    "load_jsonl",
    "load_lsoie",
    "load_lsoie_gpt",
    "load_oie2016",
    "load_openie4",
    "parse_t5_target",
]
