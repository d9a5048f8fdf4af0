"""Compare the current image of a part with its guide (reference) image, ProcVision execute-only style."""
