"""The operator's console: a browser page served by the daemon at ``/``.

sessions.py (signed-in browsers), cookie_auth.py (cookie + CSRF checks api/auth.py uses),
recent_calls.py (the last calls, bounded), health_series.py (per-second call/error/latency buckets),
thumbnails.py (small copies of call images, PNG on demand), call_log.py (what the execute route
feeds), sizes.py (disk use of versions), routes.py (the page and its few routes), static/ (the page).
"""
