"""gdrive pipelines: all logic of the toolkit, importable without the command line."""

__version__ = "0.1.0"
