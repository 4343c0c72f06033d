"""Open Information Extraction: heads, decoding, pipeline and ``benchmarks`` (the scorers)."""
