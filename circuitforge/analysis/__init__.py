"""Classic analyses beside the trained interventions: activation and attribution patching,
direct logit attribution, logit lens."""
