"""Clear, fast errors when the Hugging Face hub cannot be reached.

Without a network, hub libraries retry for about 24 s before failing with an obscure message.
We check first: is the thing already in the local cache, is the hub reachable at all?
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


class HubUnavailableError(RuntimeError):
    """A model, SAE or dataset must come from the hub, and the hub cannot be reached."""


def hub_is_reachable(timeout_s: float = 2.0) -> bool:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def is_cached(repo_id: str, filename: str, repo_type: str = "model") -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, repo_type=repo_type)
    return isinstance(found, str)


def require_hub(what: str, instead: str) -> None:
    """Raise at once, with what to do instead, when `what` would need an unreachable hub."""
    if not hub_is_reachable():
        raise HubUnavailableError(
            f"{what} is not in the local Hugging Face cache and the hub cannot be reached "
            f"(no network, or HF_HUB_OFFLINE=1). {instead}"
        )
