"""The corruption engine: imagecorruptions' 15 corruptions (faithful, seeded), their fast paths, and the
resumable on-disk cache of corrupted eval sets."""
