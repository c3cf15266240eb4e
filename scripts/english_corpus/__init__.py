"""The pieces of scripts/build_english_corpus.py (stdlib only)."""
