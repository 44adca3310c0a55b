"""Sensors from occupancy: ray casting (visibility masks, LiDAR) and camera rendering."""
