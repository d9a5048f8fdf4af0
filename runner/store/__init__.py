"""On-disk state under the runtime root: paths, atomic files, locks, the registry."""
