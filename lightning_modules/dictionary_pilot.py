"""DictionaryPilot: `DictionaryTraining` with recipe switches for pilots (issue 25's pilot table).

The long run's module keeps its settings fixed (a new argument would stop it resuming), so the
switches a pilot sweep compares live here: `centre_decoder_bias: false` leaves `b_dec` at
sae-lens's zero start instead of the data mean (the input scale is measured the same way).
Everything else is `DictionaryTraining`'s.
"""

from __future__ import annotations

from lightning_modules.dictionary_training import DictionaryTraining


class DictionaryPilot(DictionaryTraining):
    EXPERIMENT = "dictionary_pilot"

    def __init__(self, *args, centre_decoder_bias: bool = True, **kwargs) -> None:
        """Args:
        centre_decoder_bias: start `b_dec` at the data mean (as `DictionaryTraining` always
            does); false: at zero, sae-lens's own start.
        *args, **kwargs: `DictionaryTraining`'s.
        """
        super().__init__(*args, **kwargs)
        self.centre = centre_decoder_bias
