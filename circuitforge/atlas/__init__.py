"""Activation atlas: exact streaming top-k contexts per unit, their export, and Vector X."""
