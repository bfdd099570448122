"""Assemble the vault from the store, the environment and the config, once, at start-up.

Secrets (provider client secrets, vault keys) are read here, at the edge, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx2

from executor.audit_recorder import Recorder
from executor.provider_client import ProviderClient, resolve_secret
from executor.sealing import Sealer, load_keys
from executor.vault import Vault
from registry.config import VaultConfig
from registry.store import Store


def default_key_path(database: str | Path) -> Path:
    return Path(f"{database}.vault-key")


def build_vault(store: Store, *, base_url: str, env: Mapping[str, str], config: VaultConfig,
                database: str | Path, http: httpx2.AsyncClient, generate_key: bool = True,
                audit: Recorder | None = None) -> Vault:
    sealer = Sealer(load_keys(env, config.key_env, config.key_file, default_key_path(database),
                              generate=generate_key))
    providers = {p.name: ProviderClient(p, resolve_secret(p, env), http) for p in store.list_providers()}
    return Vault(store, sealer, providers, base_url, audit=audit)
