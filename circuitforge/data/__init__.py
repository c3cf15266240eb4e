"""Text corpora and the statistics computed over them (the residual baseline)."""
