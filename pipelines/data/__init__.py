"""Scene data: the Occ3D contract, sources, the dataset API, the packed cache and loaders."""
