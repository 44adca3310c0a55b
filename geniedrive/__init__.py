"""geniedrive: physics-aware driving world models (the `gdrive` command line and its library).

The checkout's folders are this package's parts (setuptools `package-dir`, see pyproject.toml):
`pipelines/` is `geniedrive.pipelines` (all logic, importable without the command line),
`geniedrive_cli/` is `geniedrive.cli` (the `gdrive` command), `assets/` is `geniedrive.assets`
(the demo weights and recipes, package data).
"""

from .pipelines import __version__

__all__ = ["__version__"]
