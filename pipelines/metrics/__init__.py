"""Metrics: occupancy (mIoU conventions, IoU), control adherence, LiDAR, video."""
