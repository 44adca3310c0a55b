"""The embedded `synthetic` source: procedural driving worlds as Occ3D scenes.

Entry point: `pipelines.data.synthetic.generate.generate_scene(seed, index, config, rig)`.
Modules, in pipeline order: `config` (knobs and fixed sizes), `roads` (road grid, lanes,
T-junctions), `signals` (traffic-light plans), `paths` (lines/arcs/lane shifts, vehicle and
pedestrian routes), `world` (blocks, street furniture, static instances), `traffic` (agents,
spawning, packing for the simulator), `sim` (the compiled collision-free simulation), `ego` (the
ego manoeuvre and lights timed for it), `voxelise` (static raster, ego-frame grids, instance
rasterisation), `generate` (orchestration and scene metadata).
"""
