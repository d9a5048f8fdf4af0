"""``procvision-runner``: run the daemon (``serve``, ``quickstart``) and drive it over its HTTP API."""
