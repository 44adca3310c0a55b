"""geniedrive: physics-aware driving world models (the `gdrive` command line and its library).

The checkout's folders are this package's parts (setuptools `package-dir`, see pyproject.toml):
`pipelines/` is `geniedrive.pipelines` (all logic, importable without the command line),
`geniedrive_cli/` is `geniedrive.cli` (the `gdrive` command), `assets/` is `geniedrive.assets`
(the demo weights and recipes, package data).

The Python API (`geniedrive.pipelines.api`) is reachable from here: `geniedrive.forecast`,
`geniedrive.WorldModel`, ... It is imported on first use, so `gdrive --version` does not pay for
torch.
"""

from .pipelines import __version__

__all__ = ["__version__"]


def __getattr__(name: str):
    from .pipelines import api

    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'geniedrive' has no attribute '{name}'")


def __dir__() -> list[str]:
    from .pipelines import api

    return sorted(set(__all__) | set(api.__all__))
