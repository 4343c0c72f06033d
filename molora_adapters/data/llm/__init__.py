"""LLM-generated multilingual training data (translate, then annotate)."""
