"""The worker side of the ProcVision protocol: ``python -m procvision_algorithm_sdk.adapter``.

Kept import-light: ``__main__`` must guard the protocol stream before anything heavy loads.
"""
