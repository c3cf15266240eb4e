"""What the command line gets between the user and jsonargparse / LightningCLI.

- `our_error`: a constructor's error, which jsonargparse wraps in "Does not validate against any
  of the Union subtypes" and a Namespace dump, unwrapped so the user reads ours first and alone.
- `restore_command_line_nulls`: `--model.init_args.model.path null` reached a nested dataclass
  as the string "None" (jsonargparse 4.53); put back the None the user typed.
- `refuse_non_finite_settings`: `alpha: .nan` or `lr: .inf` are refused before anything runs.
- `run_from_command_line`: a user's error is printed as one message, not a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from lightning.fabric.utilities.exceptions import MisconfigurationException

from circuitforge.atomic_files import WriteFailed
from circuitforge.hub import HubUnavailableError
from circuitforge.manifest import CorruptFileError
from circuitforge.results import non_finite_fields

REPO = Path(__file__).resolve().parents[1]
USER_ERRORS = (
    MisconfigurationException,  # Lightning's own word for a user's error (max_epochs < resumed)
    ValueError,
    FileNotFoundError,
    FloatingPointError,
    WriteFailed,
    HubUnavailableError,
    CorruptFileError,
)
TRACEBACK_VARIABLE = "CIRCUITFORGE_TRACEBACK"


def raised_in_our_code(error: BaseException) -> bool:
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    file = Path(tb.tb_frame.f_code.co_filename).resolve()
    return REPO in file.parents and ".venv" not in file.parts and "site-packages" not in file.parts


def our_error(error: BaseException) -> BaseException:
    """The outermost exception of `error`'s chain that our code raised (else `error`)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        if raised_in_our_code(current):
            return current
        seen.append(current)
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or context
    return error


def null_arguments(args: list[str]) -> list[str]:
    """The keys given `null` on the command line (`--a.b=null` or `--a.b null`)."""
    keys, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            if "=" in arg:
                key, value = arg[2:].split("=", 1)
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                key, value = arg[2:], args[i + 1]
                i += 1
            else:
                key, value = arg[2:], ""
            if value.strip() in ("null", "~"):
                keys.append(key)
        i += 1
    return keys


def restore_command_line_nulls(config, args: list[str]) -> None:
    subcommand = config.get("subcommand")
    section = config.get(subcommand) if subcommand else config
    if section is None:
        return
    for key in null_arguments([str(a) for a in args]):
        try:
            value = section.get(key)
        except (KeyError, AttributeError, TypeError):
            continue
        if value == "None":
            section[key] = None


def refuse_non_finite_settings(config) -> None:
    subcommand = config.get("subcommand")
    section = config.get(subcommand) if subcommand else config
    if section is None:
        return
    bad = non_finite_fields(section.as_dict())
    if bad:
        raise ValueError(
            f"settings must be finite numbers: {'; '.join(bad)} (NaN or infinity given)"
        )


def run_from_command_line(main: Callable[[], object]) -> None:
    """Run `main()`; a user's error (bad setting, missing file, diverged run) becomes one
    message on stderr and exit status 1 (`CIRCUITFORGE_TRACEBACK=1` shows the traceback)."""
    try:
        main()
    except USER_ERRORS as error:
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        sys.stderr.write(
            f"error: {error}\n({type(error).__name__}; set {TRACEBACK_VARIABLE}=1 for the "
            "traceback)\n"
        )
        sys.exit(1)
