"""Package data: the shipped demo weights (`demo/world-small`) and their recipe, read through
`importlib.resources` so that they are found in a checkout and in an installed wheel alike."""
