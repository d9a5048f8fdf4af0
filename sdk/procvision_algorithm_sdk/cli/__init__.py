"""``procvision-cli``: scaffold, check, run and package ProcVision algorithm projects."""
