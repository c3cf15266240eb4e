"""Stand-ins for the hub's models, SAEs and datasets, laid out as the Hugging Face cache holds them.

Used by `scripts/rehearse_hub_runs.py` to run the hub configs offline before a first GPU run:
real repository names, file names and tensor shapes, random weights, generated on the spot.
"""
