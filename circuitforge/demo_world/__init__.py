"""The embedded default: a small world (corpus, tokenizer, model, SAEs) the project trains itself.

`corpus.py` writes the text, `tokenizer.py` learns its vocabulary, `architecture.py` says what the
model looks like, `evaluation.py` measures what it learned, `sae_training.py` trains its SAEs.
"""
