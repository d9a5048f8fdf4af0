"""Package trust: who may ship code to this station.

``store`` keeps the trusted keys and CA certificates (``<root>/trust/``), ``verify`` checks a package's
signature against them, ``modes`` decide what a failed check means (require / warn / off; auto picks
one), and ``gate`` is what the installer and the activation path call.
"""
